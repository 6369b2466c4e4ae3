"""The PyFlink stream job: Kafka events -> keyed fold -> Redis snapshots and change topics.

Run locally with ``atp job``; on a cluster, submit this module with ``flink run -py``.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Duration, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee, Sink
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaSink,
    KafkaSource,
)
from pyflink.java_gateway import get_gateway

from pipelines.stream_channels import (
    CHANNEL_UPDATE,
    POLICY_STATE,
    ChannelAvailability,
    FanOutToChannels,
)
from pipelines.stream_config import CONNECTOR_JAR, JVM_JAR, REDIS_JARS, ROOT, JobConfig
from pipelines.stream_functions import (
    DEAD_LETTERS,
    EXCEPTIONS,
    KEYED_EVENT,
    KEYED_RECORD,
    SNAPSHOT_CHANGE,
    DecodeEvents,
    FoldByKey,
)
from state.serving import CAS_SCRIPT, ITEMS_KEY, locations_key, snapshot_key

# An embedded MiniCluster (``atp job``) listens on loopback only; on a cluster, the
# cluster's own configuration decides.
_LOCAL_ONLY = {
    "rest.bind-address": "127.0.0.1",
    "rest.address": "127.0.0.1",
    "jobmanager.bind-host": "127.0.0.1",
    "taskmanager.bind-host": "127.0.0.1",
    "taskmanager.host": "127.0.0.1",
}


_PROMETHEUS_REPORTER = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def _jars() -> list[Path]:
    return [CONNECTOR_JAR, JVM_JAR, *sorted(REDIS_JARS.glob("*.jar"))]


def flink_configuration(config: JobConfig, local: bool = False) -> Configuration:
    conf = Configuration()
    settings = {
        "python.execution-mode": "thread",  # 17x faster than process mode here
        # The interpreter that runs the job is the one the workers must embed.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        # Thread mode embeds the base interpreter, which does not read the virtualenv's
        # site-packages by itself (nor its .pth files, hence the project root too).
        "python.pythonpath": f"{sysconfig.get_paths()['purelib']}:{ROOT}",
        "execution.checkpointing.interval": f"{config.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": config.checkpoint_dir,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": config.state_backend,
        "restart-strategy.type": "exponential-delay",
        "parallelism.default": str(config.parallelism),
        # Chained JVM operators hand records on without copying; none keeps a reference.
        "pipeline.object-reuse": "true",
        "pipeline.jars": ";".join(jar.as_uri() for jar in _jars()),
    }
    if local:
        settings.update(_LOCAL_ONLY)
        if config.prometheus_port is not None:
            # The reporter comes from the Flink distribution's plugins/ folder; it has no
            # bind-address option and listens on every interface (docs/security.md).
            settings["metrics.reporter.prom.factory.class"] = _PROMETHEUS_REPORTER
            settings["metrics.reporter.prom.port"] = str(config.prometheus_port)
            # Label values as Flink names them (job_name="atp-stream"), as the alerts expect.
            settings["metrics.reporter.prom.filterLabelValueCharacters"] = "false"
    if config.restore_from:
        settings["execution.state-recovery.path"] = config.restore_from
    settings.update(config.flink_settings)
    for key, value in settings.items():
        conf.set_string(key, value)
    return conf


def _sink(config: JobConfig, topic: str, name: str) -> KafkaSink:
    """An exactly-once sink of rows whose first two fields are the Kafka key and value."""
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(config.bootstrap_servers)
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .set_transactional_id_prefix(f"{config.transactional_id_prefix}-{name}")
        .set_property("transaction.timeout.ms", str(config.transaction_timeout_ms))
    )
    for key, value in config.kafka_properties.items():
        builder.set_property(key, value)
    # A Java serializer (pipelines/jvm): PyFlink's builder gives key and value schemas
    # the same element, so it cannot key records by a field.
    serializer = get_gateway().jvm.org.atpstream.flink.KeyedRecordSerializer(topic, 0, 1)
    builder._j_builder.setRecordSerializer(serializer)
    return builder.build()


def _redis_sink(config: JobConfig) -> Sink:
    """Snapshots to Redis in pipelined compare-and-set batches, flushed before every
    checkpoint barrier (pipelines/jvm); the layout and script are the serving store's."""
    fields = {name: SNAPSHOT_CHANGE.get_field_names().index(name) for name in _REDIS_FIELDS}
    return Sink(
        get_gateway().jvm.org.atpstream.flink.RedisSnapshotSink(
            config.redis_url,
            CAS_SCRIPT,
            snapshot_key("%1$s", "%2$s"),
            locations_key("%1$s"),
            ITEMS_KEY,
            *fields.values(),
            config.redis_batch,
            config.redis_max_delay_ms,
            config.redis_password_file,
        )
    )


_REDIS_FIELDS = ("item_id", "location_id", "revision", "snapshot")


def _keyed_by_first_field(stream: DataStream, value_type: Any) -> KeyedStream:
    """``key_by`` on the rows' first field, selected on the JVM.

    PyFlink's ``key_by`` adds a Python operator that wraps every record as
    ``Row(key, record)`` for its JVM key selector, which takes field 0; our rows already
    are ``Row(key, value)``, so the same selector applies to them directly, and the keyed
    Python function receives ``value`` (field 1), as it would the wrapped record.
    """
    j_keyed = stream._j_data_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info()
    )
    return KeyedStream(j_keyed, value_type, stream)


def build(env: StreamExecutionEnvironment, config: JobConfig) -> None:
    """Wire the job's operators into ``env``."""
    source_builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(config.bootstrap_servers)
        .set_topics(config.topics.events)
        .set_group_id(config.group_id)
        .set_starting_offsets(
            KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        )
        .set_property("isolation.level", "read_committed")
    )
    for key, value in config.kafka_properties.items():
        source_builder.set_property(key, value)
    # (partition, offset, value) rows, so dead letters can say where a record came from
    # (pipelines/jvm); PyFlink's Python builder only offers value-only deserializers.
    source_builder._j_builder.setDeserializer(
        get_gateway().jvm.org.atpstream.flink.SourceRecordDeserializer()
    )
    # Watermarks per Kafka partition, from the record timestamps, which producers set to
    # occurred_at (``atp produce`` does). Generated after a merge of partitions instead,
    # a partition read late would hold events behind a watermark that has already moved
    # past their timers.
    # Aligned: a partition more than max_drift_ms of event time ahead of the others pauses.
    # A transfer's destination key hears from two partitions; unaligned, one read days
    # ahead (catching up, a backfill) moves the key's clock past the dedup horizon of a
    # redelivery still waiting in the other, and the redelivery applies again.
    watermarks = (
        WatermarkStrategy.for_bounded_out_of_orderness(
            Duration.of_millis(config.out_of_orderness_ms)
        )
        .with_idleness(Duration.of_millis(config.idleness_ms))
        .with_watermark_alignment(
            "events", Duration.of_millis(config.max_drift_ms), Duration.of_millis(200)
        )
    )
    # Every stateful operator has a fixed uid, so savepoints restore into a changed job.
    raw = env.from_source(source_builder.build(), watermarks, "events").uid("events-source")

    decoded = (
        raw.process(DecodeEvents(config.topics, config.registry_url), output_type=KEYED_EVENT)
        .name("decode")
        .uid("decode")
    )
    decoded.get_side_output(DEAD_LETTERS).sink_to(
        _sink(config, config.topics.dead_letters, "dlq")
    ).name("dead letters").uid("dead-letters-sink")

    changes = (
        _keyed_by_first_field(decoded, Types.STRING())
        .process(FoldByKey(config.topics, config.registry_url), output_type=SNAPSHOT_CHANGE)
        .name("fold")
        .uid("fold")
    )
    changes.get_side_output(EXCEPTIONS).sink_to(
        _sink(config, config.topics.exceptions, "exceptions")
    ).name("exceptions").uid("exceptions-sink")
    changes.sink_to(_redis_sink(config)).name("redis").uid("redis-sink")
    _channel_stage(env, config, changes)
    changes.sink_to(_sink(config, config.topics.atp_changes, "changes")).name("atp changes").uid(
        "atp-changes-sink"
    )


def _channel_stage(env: StreamExecutionEnvironment, config: JobConfig, changes: Any) -> None:
    # The whole compacted policy topic, every time: its last record is the policy.
    policies = (
        KafkaSource.builder()
        .set_bootstrap_servers(config.bootstrap_servers)
        .set_topics(config.topics.policy)
        .set_group_id(f"{config.group_id}-policy")
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_value_only_deserializer(SimpleStringSchema())
        .set_properties(dict(config.kafka_properties))
        .build()
    )
    policy_stream = env.from_source(policies, WatermarkStrategy.no_watermarks(), "policy").uid(
        "policy-source"
    )
    updates = (
        changes.connect(policy_stream.broadcast(POLICY_STATE))
        .process(FanOutToChannels(config.policy), output_type=CHANNEL_UPDATE)
        .name("channel fan-out")
        .uid("channel-fan-out")
    )
    (
        _keyed_by_first_field(updates, Types.STRING())
        .process(
            ChannelAvailability(config.topics.channel_atp, config.registry_url),
            output_type=KEYED_RECORD,
        )
        .name("channel ATP")
        .uid("channel-atp")
        .sink_to(_sink(config, config.topics.channel_atp, "channels"))
        .name("channel changes")
        .uid("channel-atp-sink")
    )


def _reporter_on_classpath() -> None:
    """An embedded MiniCluster finds metric reporters on its JVM's classpath only, not in the
    plugins/ folder; PyFlink starts that JVM (on first use) with HADOOP_CLASSPATH appended."""
    import pyflink

    plugin = Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus"
    jars = sorted(plugin.glob("flink-metrics-prometheus-*.jar"))
    if not jars:
        raise RuntimeError(f"no flink-metrics-prometheus jar in {plugin}")
    classpath = [os.environ.get("HADOOP_CLASSPATH", ""), str(jars[-1])]
    os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(filter(None, classpath))


def run(config: JobConfig, local: bool = False) -> None:
    if local and config.prometheus_port is not None:
        _reporter_on_classpath()
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(config, local))
    build(env, config)
    env.execute("atp-stream")


if __name__ == "__main__":
    # On a cluster: `flink run [-d] -py pipelines/stream_job.py [the flags of atp job]`.
    import argparse

    from pipelines.commands import job as job_command
    from pipelines.usage import UsageError

    parser = argparse.ArgumentParser(prog="stream_job.py")
    job_command.register(parser.add_subparsers(dest="command", required=True))
    try:
        job_config = job_command.config_from(parser.parse_args(["job", *sys.argv[1:]]))
    except UsageError as err:
        print(f"stream_job.py: error: {err}", file=sys.stderr)
        sys.exit(2)
    run(job_config)
