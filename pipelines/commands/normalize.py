"""``atp normalize``: a source system's raw records to canonical events (docs/adapters.md).

Offline, a file in and JSON-lines events out, ready for ``atp replay`` or ``atp produce``.
Streaming, a raw topic in and the events topic out, exactly once (pipelines/normalize_stream.py).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import IO, Any

from confluent_kafka import Consumer, Producer

from pipelines.event_codec import EventCodec
from pipelines.jsonl import dumps, open_input, open_output
from pipelines.kafka_options import add_kafka_arguments, add_registry_argument, client_config
from pipelines.normalize_stream import StreamNormalizer, Tally, avro_events, dead_letter
from pipelines.usage import UsageError, existing_file
from pipelines.wire import WireFormat
from transforms.adapters import ADAPTERS, Adapter, Options
from transforms.adapters.common import zone


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "normalize",
        help="map a source system's raw records to canonical events",
        description=(
            "Map ERP goods movements, WMS status events, OMS orders and reservations, "
            "e-commerce cart holds, TMS shipment confirmations or EDI X12 856 ship notices "
            "to canonical events, following the mapping tables of docs/adapters.md. Raw "
            "input is JSON lines, except edi856 (X12 text, any number of interchanges). "
            "Records that cannot be mapped (unknown codes included) go to the dead letters "
            "with a reason; they never fail the run. With --input, a file in and JSON-lines "
            "events out; with --from-topic, a raw topic to the events topic, exactly once. "
            "Exit 0 when the run completed, 2 on a usage error."
        ),
    )
    parser.add_argument("--system", required=True, choices=sorted(ADAPTERS), help="source system")
    parser.add_argument("--input", help="raw records ('-' for stdin)")
    parser.add_argument("--output", help="canonical events as JSON lines ('-' for stdout)")
    parser.add_argument("--dlq", help="dead letters as JSON lines (default: counted only)")
    parser.add_argument("--from-topic", help="raw topic to normalize continuously")
    parser.add_argument("--to-topic", default="atp.events", help="events topic")
    parser.add_argument("--dlq-topic", default="atp.dead-letters", help="dead-letter topic")
    parser.add_argument("--group-id", help="consumer group (default: atp-normalize-SYSTEM)")
    parser.add_argument(
        "--transactional-id",
        help="producer transactional id, one per running instance "
        "(default: atp-normalize-SYSTEM-FROM_TOPIC)",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="stop once no raw record has arrived for this long (default: run until stopped)",
    )
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="IANA time zone of source times written without an offset "
        "(SAP creation date and time, X12 dates)",
    )
    parser.add_argument(
        "--skip-codes",
        default="",
        metavar="CODE,...",
        help="known codes of this system to map to nothing, because another system feeds "
        "that fact (e.g. --skip-codes 601 when the WMS reports shipments)",
    )
    add_kafka_arguments(parser)
    add_registry_argument(parser)
    parser.set_defaults(run=run)


def _options(args: argparse.Namespace, adapter: Adapter) -> Options:
    try:
        zone(args.timezone)
    except ValueError as err:
        raise UsageError(f"--timezone: {err}") from None
    skip = frozenset(code.strip() for code in args.skip_codes.split(",") if code.strip())
    unknown = sorted(skip - adapter.codes)
    if unknown:
        raise UsageError(
            f"--skip-codes: {', '.join(unknown)} not in the {adapter.system} mapping table"
        )
    return Options(timezone=args.timezone, skip_codes=skip)


def run(args: argparse.Namespace) -> int:
    adapter = ADAPTERS[args.system]
    if (args.input is None) == (args.from_topic is None):
        raise UsageError("give either --input (a file) or --from-topic (a Kafka topic)")
    if args.input is not None and args.output is None:
        raise UsageError("--input needs --output")
    if args.from_topic is not None and (args.output or args.dlq):
        raise UsageError("--output and --dlq are for --input; a topic goes to --to-topic")
    options = _options(args, adapter)
    tally = _file(args, adapter, options) if args.input else _stream(args, adapter, options)
    print(tally.summary(adapter.system), file=sys.stderr)
    return 0


@contextlib.contextmanager
def _maybe_output(path: str | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
    else:
        with open_output(path) as handle:
            yield handle


def _file(args: argparse.Namespace, adapter: Adapter, options: Options) -> Tally:
    existing_file(args.input)
    tally = Tally()
    where = {} if args.input == "-" else {"source_file": args.input}
    with (
        open_input(args.input) as handle,
        open_output(args.output) as out,
        _maybe_output(args.dlq) as dlq,
    ):
        units: Iterator[tuple[bytes, dict[str, Any]]]
        if adapter.line_oriented:
            units = ((raw.rstrip(b"\r\n"), {**where, "line": n}) for n, raw in enumerate(handle, 1))
        else:
            units = iter([(handle.read(), where)])
        for raw, source in units:
            if adapter.line_oriented and not raw.strip():
                tally.blank += 1
                continue
            for result in adapter.normalize(raw, options):
                tally.add(result)
                out.writelines(dumps(record) for record in result.events)
                if result.violations and dlq is not None:
                    dlq.write(dumps(dead_letter(result, source).to_json()))
    return tally


def _stream(args: argparse.Namespace, adapter: Adapter, options: Options) -> Tally:
    group = args.group_id or f"atp-normalize-{adapter.system}"
    transactional_id = args.transactional_id or f"atp-normalize-{adapter.system}-{args.from_topic}"
    consumer = Consumer(
        client_config(
            args,
            **{
                "group.id": group,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            },
        )
    )
    producer = Producer(
        client_config(
            args,
            **{"transactional.id": transactional_id, "enable.idempotence": True, "linger.ms": 20},
        )
    )
    wire = WireFormat(args.registry_url)
    normalizer = StreamNormalizer(
        adapter=adapter,
        options=options,
        consumer=consumer,
        producer=producer,
        from_topic=args.from_topic,
        to_topic=args.to_topic,
        dlq_topic=args.dlq_topic,
        encode_event=avro_events(EventCodec(wire, args.to_topic)),
        wire=wire,
    )

    def stop(_signum: int, _frame: object) -> None:  # finish the batch in hand, then stop
        normalizer.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return normalizer.run(args.exit_when_idle)
