"""Client secrets stay off command lines: ``-X key=@FILE`` reads a Kafka setting from a file
(refused by the stream job, whose settings travel inside the job graph), and a Redis URL that
names a user takes its password from the environment."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipelines.commands import job as job_command
from pipelines.kafka_options import add_kafka_arguments, kafka_settings
from pipelines.usage import UsageError
from state.serving import redis_client


def _args(*settings: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_kafka_arguments(parser)
    return parser.parse_args([arg for s in settings for arg in ("-X", s)])


def test_a_value_at_file_is_read_from_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka.password"
    secret.write_text("s3cret=x@y\n")
    settings = kafka_settings(_args("sasl.username=atp", f"sasl.password=@{secret}"))
    assert settings == {"sasl.username": "atp", "sasl.password": "s3cret=x@y"}


def test_a_double_at_is_a_literal_at() -> None:
    assert kafka_settings(_args("client.id=@@edge")) == {"client.id": "@edge"}


def test_an_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"sasl\.password: cannot read"):
        kafka_settings(_args(f"sasl.password=@{tmp_path / 'missing'}"))


def _job_args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    job_command.register(parser.add_subparsers())
    return parser.parse_args(["job", *extra])


def test_the_job_refuses_file_references(tmp_path: Path) -> None:
    secret = tmp_path / "kafka.password"
    secret.write_text("s3cret")
    with pytest.raises(UsageError, match="config provider"):
        job_command.config_from(_job_args("-X", f"sasl.password=@{secret}"))


def test_the_job_takes_a_password_file_path_never_its_content(tmp_path: Path) -> None:
    secret = tmp_path / "redis.password"
    secret.write_text("s3cret")
    config = job_command.config_from(
        _job_args(
            *("--redis-url", "rediss://atp-writer@redis:6380/0"),
            *("--redis-password-file", str(secret), "--prometheus-port", "9251"),
        )
    )
    assert config.redis_password_file == str(secret.resolve())
    assert "s3cret" not in repr(config)
    assert config.prometheus_port == 9251
    with pytest.raises(UsageError, match="password file not found"):
        job_command.config_from(_job_args("--redis-password-file", str(tmp_path / "missing")))


def test_redis_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "redis.password"
    secret.write_text("from-file\n")
    monkeypatch.delenv("ATP_REDIS_PASSWORD", raising=False)
    monkeypatch.setenv("ATP_REDIS_PASSWORD_FILE", str(secret))

    def kwargs(url: str) -> dict[str, object]:
        return dict(redis_client(url).connection_pool.connection_kwargs)

    assert kwargs("redis://atp-api@h:6379/2")["password"] == "from-file"
    monkeypatch.setenv("ATP_REDIS_PASSWORD", "from-env")
    assert kwargs("redis://atp-api@h:6379/2")["password"] == "from-env"
    # A URL without a user, or with its own password, is used as it is.
    assert kwargs("redis://h:6379/2").get("password") is None
    assert kwargs("redis://atp-api:inline@h:6379/2")["password"] == "inline"


def test_flink_settings_pass_through_and_a_bare_key_is_refused() -> None:
    config = job_command.config_from(
        _job_args(
            *("--flink-setting", "python.fn-execution.bundle.size=1000"),
            *("--flink-setting", "taskmanager.network.memory.buffer-debloat.enabled = true"),
        )
    )
    assert config.flink_settings == {
        "python.fn-execution.bundle.size": "1000",
        "taskmanager.network.memory.buffer-debloat.enabled": "true",
    }
    with pytest.raises(UsageError, match="KEY=VALUE"):
        job_command.config_from(_job_args("--flink-setting", "python.fn-execution.bundle.size"))
