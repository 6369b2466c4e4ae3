"""Redis ACL users and TLS on a real redis-server (infra/redis.sh with REDIS_ACL=1 and
REDIS_TLS=1): the default user is refused, the API's user only reads, the job's writer only
runs the compare-and-set write on atp:* keys, and no password is written anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import orjson
import pytest
import redis

from tests.integration.secured import SecureRedis

pytestmark = pytest.mark.integration

DB = 0  # this module's database on the secure instance (the job tests use others)
SNAPSHOT = {"item_id": "SKU-1", "location_id": "DC1", "revision": 3, "available": 7}


@pytest.fixture
def writer(secure_redis: SecureRedis) -> Iterator[redis.Redis]:
    admin = secure_redis.client("admin", DB)
    admin.flushdb()
    client = secure_redis.client("writer", DB)
    yield client
    client.close()
    admin.flushdb()
    admin.close()


def _refused(client: redis.Redis, *command: str | int) -> str:
    """The NOPERM message of ``command``; fails if it ran."""
    with pytest.raises(redis.exceptions.NoPermissionError) as refused:
        client.execute_command(*command)  # type: ignore[no-untyped-call]
    return str(refused.value)


def test_default_user_is_refused(secure_redis: SecureRedis) -> None:
    anonymous = secure_redis.client(None, DB)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.execute_command("AUTH", "default", "anything")  # type: ignore[no-untyped-call]


def test_plaintext_connections_are_refused(secure_redis: SecureRedis) -> None:
    plain = redis.Redis(host="127.0.0.1", port=secure_redis.port, socket_timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()


def test_writer_runs_the_compare_and_set_write_and_nothing_else(
    secure_redis: SecureRedis, writer: redis.Redis
) -> None:
    store = secure_redis.store("writer", DB)
    assert store.write([SNAPSHOT]) == 1
    assert store.write([{**SNAPSHOT, "revision": 2, "available": 0}]) == 0  # older: ignored
    assert writer.ping()
    refused: list[tuple[str | int, ...]] = [
        ("FLUSHDB",),
        ("FLUSHALL",),
        ("CONFIG", "GET", "maxmemory"),
        ("KEYS", "*"),
        ("SCAN", 0),
        ("DEL", "atp:items"),
        ("SMEMBERS", "atp:items"),
        ("EVAL", "return 1", 0),
        ("ACL", "LIST"),
        ("SHUTDOWN", "NOSAVE"),
    ]
    for command in refused:
        assert "no permissions to run" in _refused(writer, *command), command
    # Its commands, on keys outside the store's prefix.
    outside: list[tuple[str | int, ...]] = [
        ("HSET", "other:x", "f", "1"),
        ("HGET", "other:x", "f"),
        ("SADD", "other:set", "x"),
    ]
    for command in outside:
        assert "no permissions to access" in _refused(writer, *command), command
    # A script it loaded runs with its rights, not more.
    sha = cast(str, writer.script_load("return redis.call('DEL', KEYS[1])"))
    with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
        writer.evalsha(sha, 1, "atp:items")


def test_api_user_reads_and_cannot_write(secure_redis: SecureRedis, writer: redis.Redis) -> None:
    secure_redis.store("writer", DB).write([SNAPSHOT])
    reader = secure_redis.store("api", DB)
    assert list(reader.all_snapshots()) == [SNAPSHOT]
    api = reader.client
    refused: list[tuple[str | int, ...]] = [
        ("HSET", "atp:{SKU-1}:snap:DC1", "revision", "9"),
        ("SADD", "atp:items", "SKU-2"),
        ("DEL", "atp:items"),
        ("EVAL", "return redis.call('DEL', KEYS[1])", 1, "atp:items"),
        ("EVALSHA", "0" * 40, 0),
        ("SCRIPT", "LOAD", "return 1"),
        ("FLUSHDB",),
        ("CONFIG", "GET", "maxmemory"),
    ]
    for command in refused:
        assert "no permissions to run" in _refused(api, *command), command
    # A read-only script may read, never write.
    assert api.eval_ro("return redis.call('HGET', KEYS[1], 'revision')", 1, "atp:{SKU-1}:snap:DC1")
    with pytest.raises(redis.exceptions.ResponseError):
        api.eval_ro("return redis.call('DEL', KEYS[1])", 1, "atp:items")
    assert list(reader.all_snapshots()) == [SNAPSHOT]


def test_commands_take_the_user_from_the_url_and_the_password_from_a_file(
    secure_redis: SecureRedis, writer: redis.Redis, tmp_path: Path
) -> None:
    secure_redis.store("writer", DB).write([SNAPSHOT])
    output = tmp_path / "dump.jsonl"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pipelines.cli", "dump"),
            *("--redis-url", secure_redis.url("atp-api", DB), "--output", str(output)),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if k != "ATP_REDIS_PASSWORD"},
            "ATP_REDIS_PASSWORD_FILE": str(secure_redis.password_file("api")),
        },
    )
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line) for line in output.read_bytes().splitlines()] == [SNAPSHOT]


def test_no_password_in_the_configuration_or_the_log(secure_redis: SecureRedis) -> None:
    written = [
        path.read_text(errors="replace")
        for path in (secure_redis.home / "redis.conf", secure_redis.home / "redis.log")
    ]
    for role in ("admin", "api", "writer"):
        password = secure_redis.password_file(role).read_text().strip()
        assert len(password) >= 32
        assert oct(secure_redis.password_file(role).stat().st_mode)[-3:] == "600"
        assert not any(password in text for text in written), role
