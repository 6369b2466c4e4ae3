"""The I/O loop: consume changes, hand due pushes to per-channel worker threads, settle
their results, dead-letter what cannot be delivered, commit finished offsets.

Everything that decides (coalescing, rate, retries, what may be committed) is in the pure
modules; this one only moves records between Kafka, them and the sinks.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError

from pipelines.channel_sync import dead_letters
from pipelines.channel_sync.change import Change
from pipelines.channel_sync.config import ChannelConfig, SyncConfig
from pipelines.channel_sync.metrics import NO_CHANNEL, Metrics
from pipelines.channel_sync.offsets import OffsetTracker
from pipelines.channel_sync.pacing import (
    HTTP_STATUS,
    RETRIES_EXHAUSTED,
    Result,
    RetryPolicy,
    TokenBucket,
    Verdict,
    classify,
)
from pipelines.channel_sync.pending import ChannelQueue, Position, Push
from pipelines.channel_sync.sinks import Sink, make_sink
from pipelines.wire import WireFormat
from state.schemas import CHANNEL_ATP_CHANGE

IDLE_WAIT: Final = 0.5  # seconds a poll may block with nothing to do
BUSY_WAIT: Final = 0.02  # ... while pushes are in flight (their results arrive by queue)

# What reading a record's bytes can raise; anything else (the registry unreachable) is
# not the record's fault and stops the sync before it commits.
DECODE_ERRORS: Final = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    OverflowError,
    SchemaResolutionError,
)


@dataclass
class Channel:
    config: ChannelConfig
    queue: ChannelQueue
    bucket: TokenBucket
    policy: RetryPolicy
    sink: Sink
    pool: ThreadPoolExecutor

    @classmethod
    def start(cls, config: ChannelConfig, now: float, sink: Sink) -> Channel:
        return cls(
            config,
            ChannelQueue(config.coalesce_ms / 1000, config.concurrency),
            TokenBucket(config.rate, config.burst, now),
            RetryPolicy(
                config.max_attempts, config.backoff_ms / 1000, config.max_backoff_ms / 1000
            ),
            sink,
            ThreadPoolExecutor(config.concurrency, thread_name_prefix=f"push-{config.channel}"),
        )


Settled = tuple[Channel, Push, "Future[Result]"]


@dataclass
class ChannelSync:
    consumer: Consumer
    producer: Producer
    wire: WireFormat
    topic: str
    dead_letter_topic: str
    config: SyncConfig
    metrics: Metrics
    commit_interval: float = 1.0
    max_outstanding: int = 20_000
    clock: Callable[[], float] = time.monotonic
    sink_factory: Callable[[ChannelConfig], Sink] = make_sink
    channels: dict[str, Channel] = field(default_factory=dict)
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    at_end: dict[int, bool] = field(default_factory=dict)
    stopping: bool = False
    _results: queue.SimpleQueue[Settled] = field(default_factory=queue.SimpleQueue)
    _futures: set[Future[Result]] = field(default_factory=set)
    _paused: bool = False
    _failure: KafkaError | None = None
    _last_commit: float = 0.0

    def __post_init__(self) -> None:
        now = self.clock()
        for name, channel in self.config.channels.items():
            self.channels[name] = Channel.start(channel, now, self.sink_factory(channel))
        self._last_commit = now

    # -- rebalances --------------------------------------------------------------------

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.at_end[tp.partition] = False
        self._paused = False  # a new assignment starts unpaused

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what is finished; what is not is the next owner's to push (again).
        After a failed dead letter nothing more is committed: the error is on its way up."""
        if self._failure is None:
            self.commit()
        for tp in partitions:
            self.tracker.forget(tp.partition)
            self.at_end.pop(tp.partition, None)

    # -- records in ----------------------------------------------------------------------

    def handle(self, message: Message, now: float) -> None:
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None  # a consumed record has both
        position = (partition, offset)
        self.at_end[partition] = False
        self.tracker.consumed(partition, offset)
        self.metrics.record()
        raw = message.value() or b""
        try:
            change = Change.from_record(self.wire.decode(CHANNEL_ATP_CHANGE, self.topic, raw))
        except SchemaRegistryError as err:
            if err.http_status_code != 404:
                raise  # the registry failing, not the record
            self._undecodable(f"unknown schema: {err}", message, position)
            return
        except DECODE_ERRORS as err:
            self._undecodable(f"not a ChannelAtpChange: {err!r}", message, position)
            return
        channel = self.channels.get(change.channel)
        if channel is not None:
            if channel.queue.offer(change, position, now):
                self.metrics.coalesced(change.channel)
        elif change.channel in self.config.ignore:
            self.metrics.ignored(change.channel)
            self.tracker.done(partition, offset)
        else:
            letter = dead_letters.change_letter(
                dead_letters.UNCONFIGURED_CHANNEL,
                f"channel {change.channel!r} is neither configured nor ignored",
                change,
                self.topic,
                [position],
            )
            self._dead_letter(letter, change.channel, [position])

    def _undecodable(self, message: str, record: Message, position: Position) -> None:
        letter = dead_letters.undecodable_letter(
            message, record.value() or b"", record.key(), self.topic, position
        )
        self._dead_letter(letter, NO_CHANNEL, [position])

    # -- dead letters ------------------------------------------------------------------

    def _dead_letter(self, letter: dict[str, Any], channel: str, positions: list[Position]) -> None:
        """Produce the letter; its records count as finished once the broker has it."""

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                self._failure = error  # stop before committing past it
                return
            for partition, offset in positions:
                self.tracker.done(partition, offset)

        key = letter.get("key")
        self.producer.produce(
            self.dead_letter_topic,
            value=dead_letters.encode(letter),
            key=None if key is None else str(key).encode(),
            on_delivery=delivered,
        )
        self.metrics.dead_lettered(channel, str(letter["reason"]))

    # -- pushes ------------------------------------------------------------------------

    def dispatch(self, now: float) -> None:
        for channel in self.channels.values():
            for push in channel.queue.take(now, channel.bucket):
                future = channel.pool.submit(channel.sink.push, push.change, push.attempts)
                self._futures.add(future)
                future.add_done_callback(partial(self._finished, channel, push))

    def _finished(self, channel: Channel, push: Push, future: Future[Result]) -> None:
        """In the worker thread: hand the result to the loop."""
        self._results.put((channel, push, future))

    def collect(self) -> None:
        """Settle the pushes that have finished."""
        while True:
            try:
                self._settle_future(*self._results.get_nowait())
            except queue.Empty:
                return

    def _settle_future(self, channel: Channel, push: Push, future: Future[Result]) -> None:
        self._futures.discard(future)
        try:
            result = future.result()
        except Exception as err:  # a sink's bug is a failed attempt, not a crash
            result = Result(None, f"{type(err).__name__}: {err}")
        self.settle(channel, push, result, self.clock())

    def settle(self, channel: Channel, push: Push, result: Result, now: float) -> None:
        name = channel.config.channel
        verdict = classify(result)
        if verdict is Verdict.DELIVERED:
            channel.queue.finish(push)
            for partition, offset in push.positions:
                self.tracker.done(partition, offset)
            self.metrics.pushed(name)
            return
        if verdict is Verdict.RETRY and not channel.policy.exhausted(push.attempts):
            delay = channel.policy.delay(push.attempts, result.retry_after)
            if result.retry_after is not None:
                channel.bucket.block_until(now + delay)  # the receiver asked the channel to wait
            channel.queue.retry(push, now + delay)
            self.metrics.retried(name)
            return
        channel.queue.finish(push)
        if verdict is Verdict.RETRY:
            reason = RETRIES_EXHAUSTED
            what = result.detail if result.status is None else f"HTTP {result.status}"
            message = f"{push.attempts} attempts failed, the last: {what}"
        else:
            reason, message = HTTP_STATUS, f"HTTP {result.status}: {result.detail}"
        letter = dead_letters.change_letter(
            reason, message, push.change, self.topic, push.positions, result.status, push.attempts
        )
        self._dead_letter(letter, name, push.positions)

    # -- offsets -----------------------------------------------------------------------

    def commit(self) -> None:
        self.producer.poll(0)  # delivery reports finish dead-lettered records
        self._raise_failure()
        offsets = self.tracker.to_commit()
        if offsets:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())],
                asynchronous=False,
            )
            self.tracker.committed(offsets)
        self._last_commit = self.clock()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise KafkaException(self._failure)

    # -- the loop ----------------------------------------------------------------------

    def _wait(self, now: float) -> float:
        """How long the next poll may block: until a push is due or a result may arrive."""
        wait = BUSY_WAIT if self._futures else IDLE_WAIT
        for channel in self.channels.values():
            due = channel.queue.next_due(now, channel.bucket)
            if due is not None:
                wait = min(wait, due - now)
        return max(0.0, min(wait, self._last_commit + self.commit_interval - now))

    def _flow_control(self) -> None:
        """Stop reading while too many records are unfinished (a slow channel must not
        fill memory); read again once half of them are."""
        outstanding = self.tracker.outstanding
        if not self._paused and outstanding >= self.max_outstanding:
            self.consumer.pause(self.consumer.assignment())
            self._paused = True
        elif self._paused and outstanding < self.max_outstanding // 2:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False

    def finished(self) -> bool:
        """Every assigned partition read to its end and every record settled."""
        return (
            bool(self.at_end)
            and all(self.at_end.values())
            and self.tracker.outstanding == 0
            and not self._futures
        )

    def run(self, until_end: bool = False) -> None:
        while not self.stopping:
            self._flow_control()
            for message in self.consumer.consume(
                num_messages=500, timeout=self._wait(self.clock())
            ):
                error = message.error()
                if error is None:
                    self.handle(message, self.clock())
                elif error.code() == KafkaError._PARTITION_EOF:
                    self.at_end[message.partition() or 0] = True
                elif error.fatal():
                    raise KafkaException(error)
                else:  # transient: the client retries by itself
                    print(f"channel-sync: {error}", file=sys.stderr)
            self.producer.poll(0)
            self._raise_failure()
            self.collect()
            now = self.clock()
            self.dispatch(now)
            if now - self._last_commit >= self.commit_interval:
                self.commit()
            if until_end and self.finished():
                break
        self.drain()

    def drain(self) -> None:
        """Stop sending; let the pushes in flight finish (bounded by their timeouts),
        settle them, deliver the dead letters and commit. What was waiting is pushed by
        the next run, which starts at the first unfinished record."""
        while self._futures:  # each finishes: a sink's requests have a timeout
            self._settle_future(*self._results.get())
        self.producer.flush(30)
        self.commit()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.pool.shutdown(wait=True)
            channel.sink.close()
