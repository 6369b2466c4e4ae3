"""Configuration of the stream job: topics, services, checkpoints, watermarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
JARS: Final = ROOT / ".cache" / "jars"
CONNECTOR_JAR: Final = JARS / "flink" / "flink-sql-connector-kafka-5.0.0-2.2.jar"
# The job's own JVM classes (pipelines/jvm), built by infra/build-jvm.sh.
JVM_JAR: Final = JARS / "flink" / "atp-jvm.jar"
# Jedis and its dependencies, for the job's Redis snapshot sink.
REDIS_JARS: Final = JARS / "redis"
REGISTRY_URL: Final = "http://127.0.0.1:8085/apis/ccompat/v7"


@dataclass(frozen=True)
class Topics:
    events: str = "atp.events"
    dead_letters: str = "atp.dead-letters"
    exceptions: str = "atp.exceptions"
    atp_changes: str = "atp.atp-changes"
    channel_atp: str = "atp.channel-atp"
    policy: str = "atp.policy"

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """The same topics under another prefix than ``atp.`` (tests, benchmarks, tenants)."""
        return cls(
            **{name: prefix + topic.removeprefix("atp.") for name, topic in vars(cls()).items()}
        )


@dataclass(frozen=True)
class JobConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "atp-stream"
    # The ACL user goes in the URL (redis://atp-writer@host:6379/0, rediss:// for TLS); its
    # password is read where the sink runs: ATP_REDIS_PASSWORD, else this file.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password_file: str | None = None
    registry_url: str = REGISTRY_URL
    topics: Topics = field(default_factory=Topics)
    parallelism: int = 1
    checkpoint_interval_ms: int = 5_000
    checkpoint_dir: str = (ROOT / "var" / "checkpoints").as_uri()
    state_backend: str = "hashmap"  # or "rocksdb"
    out_of_orderness_ms: int = 5_000
    idleness_ms: int = 30_000
    # How far (event time) one partition may read ahead of the slowest; far below the
    # dedup horizon (7 days) and the expiry windows that matter.
    max_drift_ms: int = 3_600_000
    transactional_id_prefix: str = "atp-stream"
    # Below the broker's transaction.max.timeout.ms (15 min), far above a checkpoint
    # interval plus a restart.
    transaction_timeout_ms: int = 600_000
    # Redis writes go in pipelined batches of up to this many snapshots, sent after at
    # most redis_max_delay_ms and always before a checkpoint barrier.
    redis_batch: int = 500
    redis_max_delay_ms: int = 20
    restore_from: str | None = None
    policy: str | None = None  # the channel policy document (JSON) to start with
    kafka_properties: dict[str, str] = field(default_factory=dict)
    # Flink's Prometheus reporter on this port (an embedded MiniCluster only: a cluster's
    # own configuration enables its reporters).
    prometheus_port: int | None = None
    # Flink settings over the job's own (tuning: bundle sizes, network buffers, ...).
    flink_settings: dict[str, str] = field(default_factory=dict)
