"""Benchmark: ``atp replay`` throughput on simulated events, next to the bare fold.

Prints figures; asserts nothing (machines are shared and noisy). Every rate below is
measured in the same run on the same input, so the ratios are the figures to compare:

- replay (CLI):   ``atp replay`` end to end, in a subprocess: read, decode, validate,
                  fold, expire, write snapshots and dead letters;
- decode+validate: orjson + ``parse_event`` over the same lines, in process;
- bare fold:      ``Replayer.fold`` over pre-parsed events, in process.

Usage: .venv/bin/python bench/replay_throughput.py [--events 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from pipelines.replay import Replayer
from pipelines.simulate import SimConfig, simulate
from transforms.events import Event
from transforms.validation import parse_event

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"


def sample_log(events: int, seed: int) -> Path:
    """The simulated log, generated once per size and seed."""
    path = CACHE / f"sim-{events}-{seed}.jsonl"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            out.writelines(line + b"\n" for line in simulate(SimConfig(events=events, seed=seed)))
        partial.rename(path)
        print(f"generated {events:,} events in {time.perf_counter() - started:.1f}s -> {path}")
    return path


def time_cli(log: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "replay",
                "--input",
                str(log),
                "--output",
                f"{tmp}/snapshots.jsonl",
                "--dlq",
                f"{tmp}/dlq.jsonl",
                "--no-progress",
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    log = sample_log(args.events, args.seed)
    lines = log.read_bytes().splitlines()

    cli_seconds = time_cli(log)

    gc.disable()  # as the replay command does
    started = time.perf_counter()
    events: list[Event] = []
    for line in lines:
        try:
            parsed = parse_event(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, Event):
            events.append(parsed)
    decode_seconds = time.perf_counter() - started

    replayer = Replayer()
    started = time.perf_counter()
    for event in events:
        replayer.fold(event)
    replayer.finish()
    fold_seconds = time.perf_counter() - started
    gc.enable()

    n = len(lines)
    replay_rate = n / cli_seconds
    decode_rate = n / decode_seconds
    fold_rate = len(events) / fold_seconds
    size_mib = log.stat().st_size / 2**20
    print(f"input: {n:,} lines ({len(events):,} valid events), {size_mib:.0f} MiB")
    print(f"replay (CLI, end to end) : {replay_rate:>10,.0f} events/s  ({cli_seconds:.1f}s)")
    print(f"decode + validate        : {decode_rate:>10,.0f} events/s  ({decode_seconds:.1f}s)")
    print(f"bare fold                : {fold_rate:>10,.0f} events/s  ({fold_seconds:.1f}s)")
    print(f"replay / bare fold       : {replay_rate / fold_rate:>10.2f}")
    print("goal: replay >= 100,000 events/s on one core")


if __name__ == "__main__":
    main()
