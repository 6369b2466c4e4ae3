"""The job's topic layout, as ``atp topics`` creates it."""

from __future__ import annotations

from pipelines.stream_config import Topics
from pipelines.topic_admin import RETAIN_FOREVER, TopicSpec, TopicState, job_topic_specs


def test_job_topics_share_the_partition_count_but_the_policy_topic() -> None:
    specs = {spec.name: spec for spec in job_topic_specs(Topics.with_prefix("t."), 6)}
    assert set(specs) == set(vars(Topics.with_prefix("t.")).values())
    assert specs["t.policy"] == TopicSpec("t.policy", 1, {"cleanup.policy": "compact"})
    assert specs["t.events"].config == RETAIN_FOREVER  # the log replays and backfills read
    others = set(specs) - {"t.policy"}
    assert {specs[name].partitions for name in others} == {6}
    assert all(not specs[name].config for name in others - {"t.events"})


def test_a_partition_count_other_than_asked_is_a_mismatch_unless_creation_failed() -> None:
    spec = TopicSpec("t.events", 4)
    assert TopicState("t.events", 3, created=False).mismatch(spec)
    assert not TopicState("t.events", 4, created=True).mismatch(spec)
    assert not TopicState("t.events", 0, created=False, error="denied").mismatch(spec)
