"""The job's Kafka topics and their settings, created idempotently.

Creating never changes a topic that exists: its partition count bounds the job's useful
parallelism and its keys' placement, so a difference is reported, not "fixed".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from pipelines.stream_config import Topics

# The events topic is the system of record for replays and backfills: never expire it.
RETAIN_FOREVER = {"retention.ms": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int  # as found after creating, 0 when creating it failed
    created: bool
    error: str | None = None

    def mismatch(self, spec: TopicSpec) -> bool:
        return self.error is None and self.partitions != spec.partitions


def job_topic_specs(topics: Topics, partitions: int) -> list[TopicSpec]:
    """What the job expects: the policy topic is one compacted partition (its last record
    is the policy, read whole by every task); the others share the events topic's count."""
    return [
        TopicSpec(topics.events, partitions, RETAIN_FOREVER),
        TopicSpec(topics.dead_letters, partitions),
        TopicSpec(topics.exceptions, partitions),
        TopicSpec(topics.atp_changes, partitions),
        TopicSpec(topics.channel_atp, partitions),
        TopicSpec(topics.policy, 1, {"cleanup.policy": "compact"}),
    ]


def ensure_topics(
    config: Mapping[str, Any], specs: Iterable[TopicSpec], replication: int = 1
) -> list[TopicState]:
    """Creates each missing topic; returns every topic's state, in the order given."""
    specs = list(specs)
    admin = AdminClient({"log_level": 0, **config})
    existing = admin.list_topics(timeout=30).topics
    missing = [
        NewTopic(s.name, s.partitions, replication, config=dict(s.config))
        for s in specs
        if s.name not in existing
    ]
    errors: dict[str, str] = {}
    if missing:
        for name, future in admin.create_topics(
            missing, operation_timeout=30, request_timeout=30
        ).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    errors[name] = str(exc.args[0].str())
    found = admin.list_topics(timeout=30).topics
    created = {t.topic for t in missing}
    return [
        TopicState(
            s.name,
            len(found[s.name].partitions) if s.name in found else 0,
            s.name in created and s.name not in errors,
            errors.get(s.name),
        )
        for s in specs
    ]


def create_topics(
    config: Mapping[str, Any], specs: Iterable[TopicSpec], replication: int = 1
) -> None:
    """``ensure_topics`` that raises on the first topic it could not create."""
    for state in ensure_topics(config, specs, replication):
        if state.error is not None:
            raise RuntimeError(f"creating topic {state.name} failed: {state.error}")
