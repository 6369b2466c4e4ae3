"""Shared data of the API tests: a small simulated log through ``atp replay``, in Redis."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

from pipelines.cli import main as atp
from state.serving import SnapshotStore
from tests.integration.conftest import ROOT

API_USER = "atp-api"
API_DB = 14  # not the fixture's 15: other suites flush that one between their tests


def api_db_url(redis_server: str) -> str:
    """The fixture's Redis, on the API tests' own database."""
    return f"{redis_server.rsplit('/', 1)[0]}/{API_DB}"


PASSWORD_FILE = ROOT / "var" / "secrets" / "redis-api.password"

# Test fixtures only: these tokens exist nowhere but in the tests' temporary files.
PROMISE_TOKEN = "test-promise-token-0123456789"
READ_TOKEN = "test-read-token-0123456789"


@dataclass(frozen=True)
class ReplayedLog:
    snapshots: list[dict[str, Any]]  # as atp replay writes them
    channels: list[dict[str, Any]]
    policy_path: Path
    clock: str  # the replay's clock: every snapshot's as_of

    def by_key(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(s["item_id"], s["location_id"]): s for s in self.snapshots}

    def items(self) -> list[str]:
        return sorted({s["item_id"] for s in self.snapshots})


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def replay_small_log(folder: Path) -> ReplayedLog:
    events, policy = folder / "events.jsonl", folder / "policy.json"
    snapshots, channels = folder / "snapshots.jsonl", folder / "channels.jsonl"
    simulate = ["simulate", "--events", "6000", "--skus", "40", "--output", str(events)]
    assert atp([*simulate, "--policy-output", str(policy)]) == 0
    replay = ["replay", "--input", str(events), "--output", str(snapshots)]
    assert atp([*replay, "--policy", str(policy), "--channel-output", str(channels)]) == 0
    rows = _lines(snapshots)
    return ReplayedLog(rows, _lines(channels), policy, max(r["as_of"] for r in rows))


def load_into_redis(url: str, log: ReplayedLog) -> None:
    """Write the snapshots as the stream job does (the default user may write)."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    assert SnapshotStore(client).write(log.snapshots) == len(log.snapshots)
    client.close()


def api_password() -> str:
    return PASSWORD_FILE.read_text().strip()


def tokens_file(folder: Path) -> Path:
    path = folder / "tokens.json"
    path.write_bytes(
        orjson.dumps(
            {
                "tokens": [
                    {"name": "oms", "token": PROMISE_TOKEN, "scopes": ["read", "promise"]},
                    {"name": "dashboard", "token": READ_TOKEN, "scopes": ["read"]},
                ]
            }
        )
    )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
