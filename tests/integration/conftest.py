"""Real services for integration tests, started by the project's own infra scripts.

A service that cannot be started fails the test run; it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from pipelines.stream_config import REGISTRY_URL
from tests.integration.secured import (
    SASL_KAFKA_ENV,
    SECURE_REDIS_ENV,
    SECURED_FLINK_ENV,
    SECURED_FLINK_REST_PORT,
    SaslKafka,
    SecureRedis,
)

if TYPE_CHECKING:
    from tests.integration.jobs import FlinkCluster

ROOT = Path(__file__).resolve().parents[2]
# A database of its own, so a developer's local job on db 0 is untouched (override it to
# run two test sessions side by side).
TEST_DB = int(os.environ.get("ATP_TEST_REDIS_DB", "15"))


def _infra(script: str, *args: str, check: bool = True, env: Mapping[str, str] = {}) -> int:
    result = subprocess.run(
        [str(ROOT / "infra" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    if check and result.returncode != 0:
        pytest.fail(f"infra/{script} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.returncode


def _service(
    script: str, env: Mapping[str, str] = {}, stop: tuple[str, ...] = ("stop",)
) -> Iterator[None]:
    """Start a service for the session; stop it afterwards if this session started it.
    ``env`` selects another instance (ports, home directory) than the shared one."""
    already_running = _infra(script, "status", check=False, env=env) == 0
    _infra(script, "start", env=env)
    yield
    if not already_running:
        _infra(script, *stop, check=False, env=env)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real redis-server on loopback (installed and started if needed)."""
    for _ in _service("redis.sh"):
        yield f"redis://127.0.0.1:6379/{TEST_DB}"


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[str]:
    """Bootstrap servers of a real single-node KRaft broker on loopback."""
    _infra("fetch-jars.sh")
    for _ in _service("kafka.sh"):
        yield "127.0.0.1:9092"


@pytest.fixture(scope="session")
def registry_server() -> Iterator[str]:
    """URL of a real Confluent-compatible schema registry on loopback."""
    for _ in _service("registry.sh"):
        yield REGISTRY_URL


@pytest.fixture(scope="session")
def flink_cluster() -> Iterator[FlinkCluster]:
    """The shared standalone cluster (infra/flink.sh: a JobManager, a TaskManager with two
    slots, REST on 8081), for jobs submitted with ``flink run``."""
    from tests.integration.jobs import FlinkCluster  # it imports this module

    _infra("fetch-jars.sh")
    for _ in _service("flink.sh"):
        yield FlinkCluster()


@pytest.fixture(scope="session")
def secure_redis() -> Iterator[SecureRedis]:
    """A Redis of its own with the default user off, ACL users and TLS only."""
    for _ in _service("redis.sh", SECURE_REDIS_ENV, ("stop", "--purge")):
        yield SecureRedis()


@pytest.fixture(scope="session")
def sasl_kafka() -> Iterator[SaslKafka]:
    """A broker of its own with a SCRAM-SHA-512 listener."""
    _infra("fetch-jars.sh")
    for _ in _service("kafka.sh", SASL_KAFKA_ENV, ("stop", "--purge")):
        yield SaslKafka()


@pytest.fixture(scope="session")
def secured_flink(secure_redis: SecureRedis, sasl_kafka: SaslKafka) -> Iterator[FlinkCluster]:
    """A standalone cluster of its own with the Prometheus reporter, whose TaskManagers trust
    the secure Redis's CA and whose processes hold the Kafka password in their environment
    (as the chart's pods do)."""
    from tests.integration.jobs import FlinkCluster  # it imports this module

    env = {
        **SECURED_FLINK_ENV,
        "FLINK_SETTINGS": f"env.java.opts.taskmanager=-Djavax.net.ssl.trustStore="
        f"{secure_redis.truststore}",
        "ATP_KAFKA_SASL_PASSWORD": sasl_kafka.password(),
    }
    for _ in _service("flink.sh", env, ("stop", "--purge")):
        yield FlinkCluster(SECURED_FLINK_REST_PORT, env)
