"""Kafka client options shared by every command: bootstrap servers and pass-through settings
(``-X security.protocol=SASL_SSL``, ...), so secured clusters need no code change."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipelines.stream_config import REGISTRY_URL
from pipelines.usage import UsageError


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers", default="127.0.0.1:9092", help="Kafka bootstrap servers"
    )
    parser.add_argument(
        "-X",
        dest="kafka_settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Kafka client setting, passed through (repeatable), e.g. security.protocol="
        "SASL_SSL; a value @FILE is read from FILE (e.g. sasl.password=@/run/secrets/kafka)",
    )


def add_registry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry-url",
        default=REGISTRY_URL,
        help="Confluent-compatible schema registry of the topics' Avro schemas",
    )


def kafka_settings(args: argparse.Namespace, resolve_files: bool = True) -> dict[str, str]:
    """The ``-X`` settings. A value ``@FILE`` is the content of FILE (trailing newline
    dropped), so a password stays off the command line; ``@@`` starts a literal ``@``.
    Without ``resolve_files`` (the stream job, whose settings travel inside the job graph),
    a ``@FILE`` value is a usage error."""
    settings: dict[str, str] = {}
    for item in args.kafka_settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-X expects KEY=VALUE, got {item!r}")
        if value.startswith("@@"):
            value = value[1:]
        elif value.startswith("@"):
            if not resolve_files:
                raise UsageError(
                    f"-X {key}=@FILE is for the command-line clients; the job's Java clients "
                    "resolve secrets themselves with a config provider (docs/security.md)"
                )
            try:
                value = Path(value[1:]).read_text().rstrip("\r\n")
            except OSError as err:
                raise UsageError(f"-X {key}: cannot read {value[1:]}: {err.strerror}") from None
        settings[key] = value
    return settings


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": args.bootstrap_servers, **kafka_settings(args), **extra}
