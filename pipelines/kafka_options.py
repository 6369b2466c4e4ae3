"""Kafka client options shared by every command: bootstrap servers and pass-through settings
(``-X security.protocol=SASL_SSL``, ...), so secured clusters need no code change."""

from __future__ import annotations

import argparse
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
        help="a Kafka client setting, passed through (repeatable), e.g. security.protocol=SASL_SSL",
    )


def add_registry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry-url",
        default=REGISTRY_URL,
        help="Confluent-compatible schema registry of the topics' Avro schemas",
    )


def kafka_settings(args: argparse.Namespace) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in args.kafka_settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-X expects KEY=VALUE, got {item!r}")
        settings[key] = value
    return settings


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": args.bootstrap_servers, **kafka_settings(args), **extra}
