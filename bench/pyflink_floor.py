"""The cost of PyFlink itself here: the stream job's shape with no ATP work in it.

Reads a bounded Kafka topic with the job's source, then a Python process function (where
the job decodes), a key_by on the record key, a keyed Python process function reading and
writing a small ValueState and registering no timer (where the job folds), and a discard
sink. Prints "<records> <seconds>" from the first record to the end of input, so the stream
benchmark can set the job's rate against the rate PyFlink allows at all.

Usage: .venv/bin/python bench/pyflink_floor.py TOPIC [--parallelism 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Row, WatermarkStrategy
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, ProcessFunction, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import Sink
from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.java_gateway import get_gateway

from pipelines.stream_config import JobConfig
from pipelines.stream_job import flink_configuration

PAIR = Types.ROW_NAMED(["key", "value"], [Types.STRING(), Types.STRING()])


class Split(ProcessFunction):  # type: ignore[misc]
    def process_element(self, record: Row, ctx: Any) -> Iterator[Row]:
        value = record[2]
        yield Row(value[-12:], value)  # any cheap key spreads the records


class Touch(KeyedProcessFunction):  # type: ignore[misc]
    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("s", Types.STRING()))
        self.count = 0
        self.first = 0.0

    def process_element(self, row: Row, ctx: Any) -> Iterator[int]:
        if not self.count:
            self.first = time.perf_counter()
        self.count += 1
        self.state.update(row[1][:64] + (self.state.value() or "")[:64])
        yield self.count

    def close(self) -> None:
        if self.count:
            print(f"FLOOR {self.count} {time.perf_counter() - self.first:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--parallelism", type=int, default=1)
    args = parser.parse_args()
    config = JobConfig(parallelism=args.parallelism)
    env = StreamExecutionEnvironment.get_execution_environment(
        flink_configuration(config, local=True)
    )
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(args.bootstrap_servers)
        .set_topics(args.topic)
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_bounded(KafkaOffsetsInitializer.latest())
    )
    builder._j_builder.setDeserializer(
        get_gateway().jvm.org.atpstream.flink.SourceRecordDeserializer()
    )
    (
        env.from_source(builder.build(), WatermarkStrategy.no_watermarks(), "events")
        .process(Split(), output_type=PAIR)
        .key_by(lambda row: row[0], key_type=Types.STRING())
        .process(Touch(), output_type=Types.INT())
        .sink_to(
            Sink(
                get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
            )
        )
    )
    env.execute("pyflink-floor")


if __name__ == "__main__":
    main()
