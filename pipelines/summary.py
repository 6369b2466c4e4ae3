"""Print a short summary of a replay's output folder (used by ``make run``)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "none"


def summarize(folder: Path) -> str:
    snapshots = _lines(folder / "snapshots.jsonl")
    dead = Counter(d["reason"] for d in _lines(folder / "dead_letters.jsonl"))
    exceptions = Counter(e["kind"] for e in _lines(folder / "exceptions.jsonl"))
    channels = _lines(folder / "channels.jsonl")
    out = [f"{len(snapshots)} keys; as of {snapshots[0]['as_of'] if snapshots else '-'}"]
    out.append("busiest keys (by version):")
    out.extend(
        f"  {snap['item_id']:<12} {snap['location_id']:<6} version {snap['version']:>6}  "
        f"on_hand {snap['on_hand']:>6}  available {snap['available']:>6}  "
        f"reserved {snap['reserved']:>4}  inbound {snap['inbound']:>5}"
        for snap in sorted(snapshots, key=lambda s: -s["version"])[:5]
    )
    out.append(f"dead letters: {_counts(dead)}")
    out.append(f"exceptions: {_counts(exceptions)}")
    per_channel: Counter[str] = Counter()
    for value in channels:
        per_channel[value["channel"]] += value["available"]
    out.append(f"channel ATP, units over all items: {_counts(per_channel)}")
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1] if len(sys.argv) > 1 else "var/sample")))
