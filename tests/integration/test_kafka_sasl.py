"""Kafka over SASL (SCRAM-SHA-512) on a real broker (infra/kafka.sh with KAFKA_SASL_PORT): a
command publishes with the password given as ``-X sasl.password=@FILE``, a consumer and a
command that reads, with the same settings, get the records back, and a wrong password is
refused. (The stream job's
Java clients authenticate the same way in the observability and savepoint upgrade tests.)"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import fastavro
import orjson
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from tests.integration.secured import SaslKafka, atp, produce
from tests.integration.topics import decode, read_committed

pytestmark = pytest.mark.integration

EVENTS = [
    {
        "event_id": f"sasl-{n}",
        "event_type": "RECEIPT",
        "occurred_at": f"2026-05-11T08:00:0{n}Z",
        "item_id": "SKU-SASL",
        "location_id": "DC1",
        "quantity": n + 1,
    }
    for n in range(5)
]


def test_commands_publish_and_read_over_scram(
    sasl_kafka: SaslKafka, registry_server: str, tmp_path: Path
) -> None:
    prefix = f"sasl-{uuid.uuid4().hex[:8]}."
    # atp topics over SASL: creates the six topics and a raw one once, then finds them all.
    topics = ("topics", "--topic-prefix", prefix, "--raw-topic", prefix + "erp-raw")
    created = atp(*topics, *sasl_kafka.cli_args()).stdout
    assert created.count(", created") == 7, created
    again = atp(*topics, *sasl_kafka.cli_args()).stdout.splitlines()
    assert again == [line.removesuffix(", created") for line in created.splitlines()]
    assert f"{prefix}policy: 1 partition(s)" in again and f"{prefix}events: 4 partition(s)" in again
    assert f"{prefix}erp-raw: 4 partition(s)" in again
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in EVENTS))
    produce(sasl_kafka, registry_server, log, prefix + "events")

    config = sasl_kafka.client_config()
    messages = read_committed(sasl_kafka.bootstrap, prefix + "events", len(EVENTS), 30, 4, config)
    ids = sorted(str(decode(m, registry_server)["event_id"]) for m in messages)
    assert ids == sorted(str(e["event_id"]) for e in EVENTS)
    # A command that reads, with the same flags: the archive writes every event once.
    archive = tmp_path / "archive"
    atp(
        *("archive", "--topic", prefix + "events", "--output-dir", str(archive)),
        *("--group-id", prefix + "archive", "--until-end", "--registry-url", registry_server),
        *sasl_kafka.cli_args(),
    )
    archived = []
    for path in archive.glob("date=*/*.avro"):
        with path.open("rb") as avro:
            archived += [str(r["event_id"]) for r in fastavro.reader(avro) if isinstance(r, dict)]
    assert sorted(archived) == ids


def _first_error(config: dict[str, str | int | float | bool]) -> KafkaError:
    """The first error a consumer with ``config`` reports (within 30 s)."""
    errors: list[KafkaError] = []
    consumer = Consumer(
        {**config, "group.id": f"sasl-{uuid.uuid4().hex[:8]}", "error_cb": errors.append}
    )
    try:
        consumer.assign([TopicPartition("any", 0, 0)])
        deadline = time.monotonic() + 30
        while not errors and time.monotonic() < deadline:
            consumer.poll(0.5)
    finally:
        consumer.close()
    assert errors, "no error from the broker"
    return errors[0]


def test_a_wrong_password_is_refused(sasl_kafka: SaslKafka) -> None:
    error = _first_error(sasl_kafka.client_config(password="not-the-password"))
    assert error.code() == KafkaError._AUTHENTICATION, error


def test_the_listener_speaks_tls_with_the_local_ca_only(sasl_kafka: SaslKafka) -> None:
    """SASL_SSL for real: a client that does not trust the local CA, or that speaks SASL
    without TLS, never gets to log in."""
    untrusting = {k: v for k, v in sasl_kafka.client_config().items() if k != "ssl.ca.location"}
    untrusting["ssl.ca.location"] = "probe"  # the system's CAs, which do not include ours
    error = _first_error(untrusting)
    assert error.code() == KafkaError._SSL and "certificate verify failed" in error.str(), error
    plaintext = {**sasl_kafka.client_config(), "security.protocol": "SASL_PLAINTEXT"}
    del plaintext["ssl.ca.location"]
    # The broker hangs up on a client that does not start with a TLS handshake.
    assert _first_error(plaintext).code() == KafkaError._ALL_BROKERS_DOWN


def test_produce_fails_fast_on_a_wrong_password(
    sasl_kafka: SaslKafka, registry_server: str, tmp_path: Path
) -> None:
    """A refused login ends `atp produce` with a clear error, instead of retrying until the
    flush gives up."""
    topic = f"sasl-{uuid.uuid4().hex[:8]}.events"
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in EVENTS))
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    args = [a.replace(str(sasl_kafka.password_file), str(wrong)) for a in sasl_kafka.cli_args()]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "produce", "--input", str(log), "--topic", topic,
         "--registry-url", registry_server, *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "refused the client" in result.stderr and "uthentication" in result.stderr
    assert time.monotonic() - started < 50  # the flush alone would wait 60 s
