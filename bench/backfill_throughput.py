"""Benchmark: ``atp backfill`` throughput on simulated history, next to ``atp replay``.

Prints figures; asserts nothing (machines are shared and noisy). For each size, both
commands run end to end in subprocesses on the same cached input, one after the other,
so the ratio is the figure to compare:

- replay:   ``atp replay`` (one process, one core);
- backfill: ``atp backfill`` with its defaults (DirectRunner, two worker processes);
- backfill (in_memory): the same pipeline in one process, to show the runner's share.

CPU seconds (the command and its worker processes) are printed next to wall seconds:
on a busy machine wall time stretches, CPU time much less.

Usage: .venv/bin/python -m bench.backfill_throughput [--events 1000000 10000000]
       [--seed 7] [--modes multi_processing in_memory] [--split-mb 32]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.replay_throughput import sample_log

GOAL_EVENTS, GOAL_SECONDS = 10_000_000, 300


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the command and its children, its last stderr line."""
    cpu, started = _children_cpu(), time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{result.stderr.decode()[-2000:]}")
    last = result.stderr.decode().strip().splitlines()[-1]
    return wall, _children_cpu() - cpu, last


def run_size(events: int, seed: int, modes: list[str], split_mb: int) -> None:
    log = sample_log(events, seed)
    size_mib = log.stat().st_size / 2**20
    print(f"\ninput: {events:,} simulated events, {size_mib:,.0f} MiB, seed {seed}")
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--input", str(log), "--dlq", f"{tmp}/dlq.jsonl", "--no-progress"]
        wall, cpu, _ = timed(["replay", *common, "--output", f"{tmp}/replay.jsonl"])
        replay_rate = events / wall
        print(f"{'replay':<26}: {replay_rate:>9,.0f} events/s  {wall:7.1f}s wall {cpu:7.1f}s CPU")
        for mode in modes:
            wall, cpu, _ = timed(
                [
                    "backfill",
                    *common,
                    "--output",
                    f"{tmp}/backfill.jsonl",
                    "--running-mode",
                    mode,
                    "--split-mb",
                    str(split_mb),
                ]
            )
            rate = events / wall
            same = (
                Path(f"{tmp}/backfill.jsonl").read_bytes()
                == Path(f"{tmp}/replay.jsonl").read_bytes()
            )
            label = f"backfill ({mode})"
            print(
                f"{label:<26}: {rate:>9,.0f} events/s  {wall:7.1f}s wall {cpu:7.1f}s CPU  "
                f"ratio to replay {rate / replay_rate:.2f}  "
                f"{'identical snapshots' if same else 'SNAPSHOTS DIFFER'}"
            )
            if mode == "multi_processing":
                at_rate = GOAL_EVENTS / rate
                print(
                    f"{'':<26}  10M events at this rate: {at_rate:,.0f}s "
                    f"(goal {GOAL_SECONDS}s on 2 cores)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["multi_processing", "in_memory"],
        choices=["multi_processing", "multi_threading", "in_memory"],
    )
    parser.add_argument("--split-mb", type=int, default=32)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} (1 min)")
    for events in args.events:
        run_size(events, args.seed, args.modes, args.split_mb)


if __name__ == "__main__":
    main()
