"""How ``atp status`` shows a ``Status``: a live terminal view (rich), plain lines, JSON."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pipelines.job_status import Checkpoint, Status


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "size unknown"
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate(status: Status) -> str:
    rate = status.events_per_s
    return "-" if rate is None else f"{rate:,.0f}"


def checkpoint_line(checkpoint: Checkpoint | None, now: float) -> str:
    if checkpoint is None:
        return "none completed yet"
    parts = [f"#{checkpoint.id}", f"{checkpoint.age_s(now):.1f}s ago"]
    if checkpoint.duration_ms is not None:
        parts.append(f"took {checkpoint.duration_ms} ms")
    if checkpoint.size_bytes is not None:
        parts.append(_size(checkpoint.size_bytes))
    if checkpoint.completed is not None:
        parts.append(f"{checkpoint.completed:,} completed, {checkpoint.failed or 0} failed")
    return ", ".join(parts)


def _job_line(status: Status) -> str:
    job = status.job
    if job is None:
        return "job: no REST API (--rest-url)"
    if job.started_at_ms is None:
        return f"job: {job.state}"
    return f"job: {job.state}, up {_duration(status.now - job.started_at_ms / 1000)}"


def render(status: Status) -> RenderableType:
    """The live view: one frame, redrawn every refresh. It fits a 24-line terminal."""
    lag = status.lag
    title = Text.assemble(
        ("atp-stream", "bold"),
        f" · {status.topic}, group {status.group_id} · ",
        (_job_line(status), "cyan"),
    )
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="bold")
    figures.add_column()
    figures.add_row("events/s", _rate(status))
    figures.add_row("consumed", f"{lag.consumed:,} of {lag.produced:,}")
    per_partition = "  ".join(f"p{p.partition} {p.lag:,}" for p in lag.partitions)
    figures.add_row(
        "lag",
        Text.assemble(
            (f"{lag.total:,}", "green" if lag.total == 0 else "yellow"), f"  ({per_partition})"
        ),
    )
    figures.add_row("checkpoint", checkpoint_line(status.checkpoint, status.now))
    figures.add_row("store", f"{status.items:,} items, {status.keys:,} keys")
    if status.undecodable_changes:
        figures.add_row(
            "undecodable",
            f"{status.undecodable_changes:,} change records (last: {status.last_change_error})",
        )
    parts: list[RenderableType] = [figures]
    if status.top is not None:
        window = f"{status.window_s:.0f}s" if status.window_s is not None else "window"
        top = Table(
            title=f"top items by change (last {window}: {status.changes_in_window:,} changes)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        top.add_column("item")
        top.add_column("changes", justify="right")
        top.add_column("locations", justify="right")
        top.add_column("net available", justify="right")
        for activity in status.top:
            top.add_row(
                activity.item_id,
                f"{activity.changes:,}",
                str(activity.locations),
                f"{activity.net_available:+,}",
            )
        parts.append(top)
    return Panel(Group(*parts), title=title, title_align="left")


def as_lines(status: Status) -> list[str]:
    """Plain ``atp status`` output, one figure per line."""
    lag = status.lag
    partitions = {p.partition: p.lag for p in lag.partitions}
    lines = [f"lag:        {lag.total} events ({partitions})"]
    if status.job is not None:
        lines.append(f"{_job_line(status).replace('job: ', 'job:        ', 1)}")
    lines.append(f"checkpoint: {checkpoint_line(status.checkpoint, status.now)}")
    lines.append(f"store:      {status.items} items, {status.keys} keys")
    return lines


def as_json(status: Status) -> dict[str, Any]:
    lag = status.lag
    checkpoint = status.checkpoint
    return {
        "lag": {"total": lag.total, "partitions": {p.partition: p.lag for p in lag.partitions}},
        "consumed": lag.consumed,
        "produced": lag.produced,
        "events_per_s": status.events_per_s,
        "job": None if status.job is None else status.job.state,
        "checkpoint": None
        if checkpoint is None
        else {
            "id": checkpoint.id,
            "age_s": round(checkpoint.age_s(status.now), 1),
            "duration_ms": checkpoint.duration_ms,
            "size_bytes": checkpoint.size_bytes,
            "source": checkpoint.source,
        },
        "items": status.items,
        "keys": status.keys,
    }


def summary(first: Status, last: Status, elapsed_s: float) -> str:
    """The line printed when ``--until-caught-up`` ends."""
    consumed = last.lag.consumed - first.lag.consumed
    rate = consumed / elapsed_s if elapsed_s > 0 else 0.0
    return (
        f"caught up: {last.lag.consumed:,} of {last.lag.produced:,} events of {last.topic} "
        f"consumed; {consumed:,} in {_duration(elapsed_s)} ({rate:,.0f} events/s); "
        f"checkpoint {checkpoint_line(last.checkpoint, last.now)}; "
        f"store {last.items:,} items, {last.keys:,} keys"
    )
