"""The secured platform of the integration tests: Redis with ACL users and TLS only, Kafka with
a SCRAM-SHA-512 listener, and a standalone Flink cluster whose job reaches both, each an
instance of its own on other ports than the shared services (docs/security.md).

Passwords come from the files the infra scripts generate under var/secrets; tests hand them
to clients in memory or as ``@FILE`` references, never on a command line."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from state.serving import SnapshotStore

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ROOT / "var" / "secrets"

SECURE_REDIS_PORT = 6389
SECURE_REDIS_ENV = {
    "REDIS_PORT": str(SECURE_REDIS_PORT),
    "REDIS_HOME_DIR": "var/redis-secure",
    "REDIS_ACL": "1",
    "REDIS_TLS": "1",
}
SASL_PORT = 9294
SASL_KAFKA_ENV = {
    "KAFKA_HOME_DIR": "var/kafka-sasl",
    "KAFKA_PORT": "9292",
    "KAFKA_CONTROLLER_PORT": "9293",
    "KAFKA_SASL_PORT": str(SASL_PORT),
    "KAFKA_SASL_TLS": "1",
}
SECURED_FLINK_REST_PORT = 8291
SECURED_FLINK_ENV = {
    "FLINK_HOME_DIR": "var/flink-secured",
    "FLINK_REST_PORT": str(SECURED_FLINK_REST_PORT),
    "FLINK_RPC_PORT": "6293",
    "FLINK_PROMETHEUS": "1",
    "FLINK_PROMETHEUS_PORTS": "9280-9289",
}
# The job's Kafka clients come shaded inside the connector jar: so do their class names.
SHADED = "org.apache.flink.kafka.shaded.org.apache.kafka.common"


@dataclass(frozen=True)
class SecureRedis:
    """The ACL and TLS instance: ``default`` off, users atp-api (reads), atp-writer (the
    compare-and-set write), atp-admin (administration)."""

    port: int = SECURE_REDIS_PORT
    home: Path = ROOT / "var" / "redis-secure"

    @property
    def ca(self) -> Path:
        return self.home / "tls" / "ca.crt"

    @property
    def truststore(self) -> Path:
        return self.home / "tls" / "truststore.p12"

    @staticmethod
    def password_file(role: str) -> Path:
        return SECRETS / f"redis-{role}.password"

    def url(self, user: str | None, db: int) -> str:
        """A URL naming the user, never its password."""
        who = f"{user}@" if user else ""
        return f"rediss://{who}127.0.0.1:{self.port}/{db}?ssl_ca_certs={self.ca}"

    def client(self, role: str | None, db: int = 0, **options: Any) -> redis.Redis:
        """A client as ``atp-<role>`` (``None``: the default user, no credentials)."""
        if role is None:
            return redis.Redis.from_url(self.url(None, db), **options)
        password = self.password_file(role).read_text().strip()
        return redis.Redis.from_url(self.url(f"atp-{role}", db), password=password, **options)

    def store(self, role: str, db: int) -> SnapshotStore:
        return SnapshotStore(self.client(role, db))


@dataclass(frozen=True)
class SaslKafka:
    """The broker's SASL_SSL listener (SCRAM-SHA-512, a certificate from a local CA) and its
    user."""

    bootstrap: str = f"127.0.0.1:{SASL_PORT}"
    user: str = "atp-client"
    ca: Path = ROOT / SASL_KAFKA_ENV["KAFKA_HOME_DIR"] / "tls" / "ca.crt"

    @property
    def password_file(self) -> Path:
        return SECRETS / f"kafka-{self.user}.password"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def client_config(self, password: str | None = None) -> dict[str, str | int | float | bool]:
        """librdkafka settings (the Python commands and the tests' own clients)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(self.ca),
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": self.user,
            "sasl.password": self.password() if password is None else password,
        }

    def cli_args(self) -> list[str]:
        """The flags of an ``atp`` Kafka command: the password as a file reference."""
        return [
            *("--bootstrap-servers", self.bootstrap),
            *("-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={self.ca}"),
            *("-X", "sasl.mechanism=SCRAM-SHA-512", "-X", f"sasl.username={self.user}"),
            *("-X", f"sasl.password=@{self.password_file}"),
        ]

    def job_args(self) -> list[str]:
        """The flags of the stream job: Java client settings, the password resolved in each
        Flink process from ATP_KAFKA_SASL_PASSWORD by Kafka's EnvVarConfigProvider."""
        jaas = (
            f"{SHADED}.security.scram.ScramLoginModule required "
            f'username="{self.user}" password="${{env:ATP_KAFKA_SASL_PASSWORD}}";'
        )
        return [
            *("--bootstrap-servers", self.bootstrap),
            *("-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanism=SCRAM-SHA-512"),
            # Java clients trust the local CA from its PEM file (no truststore password).
            *("-X", "ssl.truststore.type=PEM", "-X", f"ssl.truststore.location={self.ca}"),
            *("-X", "config.providers=env"),
            *("-X", f"config.providers.env.class={SHADED}.config.provider.EnvVarConfigProvider"),
            *("-X", f"sasl.jaas.config={jaas}"),
        ]


def atp(*args: str) -> subprocess.CompletedProcess[str]:
    """``atp ARGS``; fails the test with its stderr if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"atp {args[0]}: {result.stderr}"
    return result


def produce(kafka: SaslKafka, registry: str, log: Path, topic: str, *extra: str) -> None:
    """``atp produce`` over SASL, the password given as a file reference."""
    atp("produce", "--input", str(log), "--topic", topic, "--registry-url", registry,
        *kafka.cli_args(), *extra)  # fmt: skip


def job_args(
    kafka: SaslKafka, store: SecureRedis, registry: str, prefix: str, db: int, checkpoints: Path
) -> list[str]:
    """The stream job's flags on the secured platform: Kafka over SCRAM, Redis as atp-writer
    over TLS with its password file, topics, group and transactions under ``prefix``."""
    return [
        *kafka.job_args(),
        *("--registry-url", registry),
        *("--topic-prefix", prefix, "--group-id", prefix, "--transactional-id-prefix", prefix),
        *("--redis-url", f"rediss://atp-writer@127.0.0.1:{store.port}/{db}"),
        *("--redis-password-file", str(store.password_file("writer"))),
        *("--checkpoint-interval-ms", "1000", "--checkpoint-dir", checkpoints.as_uri()),
    ]
