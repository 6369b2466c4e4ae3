"""Real services for integration tests, started by the project's own infra scripts.

A service that cannot be started fails the test run; it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis

from pipelines.stream_config import REGISTRY_URL

ROOT = Path(__file__).resolve().parents[2]
TEST_DB = 15  # a database of its own, so a developer's local job on db 0 is untouched


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
