"""Metrics on a real Prometheus (Debian's package, started by infra/prometheus.sh) scraping a
standalone Flink cluster's Prometheus reporters while the stream job runs on the secured
platform: checkpoint, Kafka lag and the job's own metrics arrive with values that agree with
``atp replay`` of the log, the generated configuration passes ``promtool check config``, and
the chart's alert rules load, evaluate and select series that exist."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml  # type: ignore[import-untyped]

from tests.integration.conftest import ROOT, _service
from tests.integration.jobs import FlinkCluster, wait_for
from tests.integration.secured import (
    SaslKafka,
    SecureRedis,
    atp,
    job_args,
    produce,
)
from tests.integration.topics import new_job_topics

pytestmark = pytest.mark.integration

DB = 1  # this module's database on the secure Redis
PROMETHEUS_ENV = {
    "PROMETHEUS_PORT": "9098",
    "PROMETHEUS_HOME_DIR": "var/prometheus-test",
    "PROMETHEUS_SCRAPE_INTERVAL": "1s",
}
RULE_FILES = sorted((ROOT / "helm" / "atp-stream" / "rules").glob("*.yaml"))


@dataclass(frozen=True)
class Prometheus:
    url: str
    home: Path

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The value of a query that yields one number (an aggregation), if it yields one."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(secured_flink: FlinkCluster) -> Iterator[Prometheus]:
    # The Flink instance to scrape is the one the cluster's variables select.
    env = {**secured_flink.env, **PROMETHEUS_ENV}
    for _ in _service("prometheus.sh", env, ("stop", "--purge")):
        yield Prometheus(
            f"http://127.0.0.1:{PROMETHEUS_ENV['PROMETHEUS_PORT']}",
            ROOT / PROMETHEUS_ENV["PROMETHEUS_HOME_DIR"],
        )


@dataclass(frozen=True)
class RunningJob:
    job_id: str
    started_ms: int
    # Checkpoints triggered before every task runs fail ("not being executed at the moment"):
    # on two cores, the Python operators take a while to start.
    failed_at_start: int
    applied: int  # atp replay's figures for the log
    duplicates: int
    dead_letters: int
    revisions: int


@pytest.fixture(scope="module")
def running_job(
    secured_flink: FlinkCluster,
    prometheus: Prometheus,
    sasl_kafka: SaslKafka,
    secure_redis: SecureRedis,
    registry_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningJob]:
    """The stream job on the cluster, fed a simulated log (redeliveries, malformed records)."""
    tmp = tmp_path_factory.mktemp("observability")
    prefix = f"obs-{uuid.uuid4().hex[:8]}."
    new_job_topics(sasl_kafka.client_config(), prefix)
    secure_redis.client("admin", DB).flushdb()
    events, replayed = tmp / "events.jsonl", tmp / "replay.jsonl"
    atp("simulate", "--events", "3000", "--skus", "30", "--seed", "5", "--output", str(events))
    summary = atp("replay", "--input", str(events), "--output", str(replayed)).stderr
    found = re.search(r"(\d+) applied, (\d+) duplicates, (\d+) dead letters", summary)
    assert found, summary
    applied, duplicates, dead_letters = map(int, found.groups())
    assert duplicates and dead_letters, "the log has redeliveries and malformed records"
    revisions = sum(s["revision"] for s in map(orjson.loads, replayed.open("rb")))

    job_id = secured_flink.submit(
        job_args(sasl_kafka, secure_redis, registry_server, prefix, DB, tmp / "checkpoints")
    )
    try:
        secured_flink.until(
            job_id, "the job running", 180, lambda: secured_flink.running_since(job_id, 0)
        )
        started = int(secured_flink.get(f"/jobs/{job_id}")["timestamps"]["RUNNING"])
        secured_flink.until(
            job_id, "a checkpoint", 60, lambda: secured_flink.completed_since(job_id, 0)
        )
        failed = int(secured_flink.checkpoints(job_id)["counts"]["failed"])
        produce(sasl_kafka, registry_server, events, prefix + "events")
        yield RunningJob(job_id, started, failed, applied, duplicates, dead_letters, revisions)
    finally:
        secured_flink.cancel(job_id)


def test_generated_configuration_and_rules_pass_promtool(prometheus: Prometheus) -> None:
    config = subprocess.run(
        ["promtool", "check", "config", str(prometheus.home / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS" in config.stdout
    assert RULE_FILES, "no alert rules in helm/atp-stream/rules/"
    rules = subprocess.run(
        ["promtool", "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The configuration loads those same files.
    loaded = yaml.safe_load((prometheus.home / "prometheus.yml").read_text())["rule_files"]
    assert sorted(map(Path, loaded)) == RULE_FILES


def test_checkpoint_lag_and_job_metrics_arrive(
    prometheus: Prometheus, running_job: RunningJob
) -> None:
    job = f'job_id="{running_job.job_id}"'
    events_source = f'{job},operator_name="Source: events"'

    def operator_sum(metric: str) -> float | None:
        return prometheus.value(f"sum(flink_taskmanager_job_task_operator_{metric}{{{job}}})")

    last: list[dict[str, float | None]] = [{}]

    def arrived() -> dict[str, float | None] | None:
        # Counters are exported in batches (up to 128 increments or one second), so some
        # of the last increments may never show: the figures are bounded, not exact.
        figures = {
            "checkpoints": prometheus.value(
                f"max(flink_jobmanager_job_numberOfCompletedCheckpoints{{{job}}})"
            ),
            "applied": operator_sum("eventsApplied"),
            "duplicates": operator_sum("duplicates"),
            "dead letters": operator_sum("deadLetters"),
            "written": operator_sum("snapshotsWritten"),
            "pending": prometheus.value(
                f"sum(flink_taskmanager_job_task_operator_pendingRecords{{{events_source}}})"
            ),
        }
        last[0] = figures
        done = (
            (figures["checkpoints"] or 0) >= 2
            and (figures["applied"] or 0) > 0
            and (figures["duplicates"] or 0) >= 1
            and (figures["dead letters"] or 0) >= 1
            and (figures["written"] or 0) > 0
            and figures["pending"] == 0  # caught up with the log
        )
        return figures if done else None

    figures = wait_for(
        "the job's metrics in Prometheus", 240, arrived, lambda: f"last figures: {last[0]}"
    )
    assert 0 < (figures["applied"] or 0) <= running_job.applied
    assert 1 <= (figures["duplicates"] or 0) <= running_job.duplicates
    assert 1 <= (figures["dead letters"] or 0) <= running_job.dead_letters
    assert 0 < (figures["written"] or 0) <= running_job.revisions

    # Checkpoints: the last one completed after the job started, and took a duration.
    completed = prometheus.value(
        f"max(flink_jobmanager_job_lastCheckpointCompletedTimestamp{{{job}}})"
    )
    assert completed is not None and completed >= running_job.started_ms
    duration = prometheus.value(f"max(flink_jobmanager_job_lastCheckpointDuration{{{job}}})")
    assert duration is not None and duration >= 0
    # None failed once the job ran.
    failed = prometheus.value(f"max(flink_jobmanager_job_numberOfFailedCheckpoints{{{job}}})")
    assert failed == running_job.failed_at_start
    # Kafka lag: the consumer's own figure, per partition read, next to pendingRecords.
    lag = prometheus.query(
        f"flink_taskmanager_job_task_operator_KafkaSourceReader_KafkaConsumer_records_lag_max"
        f"{{{events_source}}}"
    )
    assert lag, "no Kafka consumer lag metric for the events source"
    # Event-time lag: wall clock minus the last applied event's time (simulated months ago).
    assert (prometheus.value(f"max(flink_taskmanager_job_task_operator_eventTimeLagMs{{{job}}})")
            or 0) > 0  # fmt: skip
    # Both reporters are scraped: the JobManager's and the TaskManager's.
    up = {r["metric"]["component"]: r["value"][1] for r in prometheus.query('up{job="flink"}')}
    assert up == {"jobmanager": "1", "taskmanager": "1"}


def _selectors(expr: str) -> list[str]:
    """The Flink series selectors of a rule's expression (metric name and label matchers)."""
    return re.findall(r"\bflink_[A-Za-z0-9_]+(?:\{[^}]*\})?", expr)


def test_alert_rules_evaluate_on_the_jobs_series(
    prometheus: Prometheus, running_job: RunningJob
) -> None:
    """Each rule loads and evaluates without error, every Flink series a rule selects exists
    while the job runs (a label that does not match, e.g. a job name spelt otherwise than
    the reporter spells it, would keep an alert silent for ever), and the job-missing alert
    stays quiet."""
    job = f'job_id="{running_job.job_id}"'
    wait_for(
        "checkpoints of the job in Prometheus",
        120,
        lambda: prometheus.value(
            f"max(flink_jobmanager_job_numberOfCompletedCheckpoints{{{job}}})"
        ),
    )

    def evaluated() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        # Prometheus reports a rule never evaluated with a zero time (year 1).
        done = rules and all(not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if done else None

    rules = wait_for("an evaluation of every rule", 60, evaluated)
    assert all(r["health"] == "ok" for r in rules), [
        (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
    ]
    empty = sorted(
        {
            selector
            for rule in rules
            for selector in _selectors(rule["query"])
            if not prometheus.query(f"count({selector})")
        }
    )
    assert not empty, f"rule selectors that match no series of the running job: {empty}"
    missing = [r for r in rules if r["name"] == "AtpJobMissing"]
    assert missing and all(r["state"] == "inactive" for r in missing)
