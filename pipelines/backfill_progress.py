"""Progress of a local backfill, across worker processes.

Workers write small counter files into a progress directory (at most one write per
second each); the launching process sums them into two bars on stderr: input read
and events folded. Wall-clock time here paces the display only, never the logic.
Runs on a distributed runner report the same counts as Beam metrics instead.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Final

from tqdm import tqdm

_INTERVAL: Final = 1.0


class ProgressWriter:
    """One reader's or folder's count, in a file of its own (nothing when disabled)."""

    def __init__(self, directory: str | None, name: str) -> None:
        self.path = None if directory is None else Path(directory) / name
        self._last = 0.0

    def _write(self, text: str, force: bool) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._last < _INTERVAL:
            return
        self._last = now
        partial = self.path.with_suffix(".partial")
        partial.write_text(text)
        os.replace(partial, self.path)

    def units(self, done: int) -> None:
        """Input read so far (bytes or records)."""
        self._write(f"{done} 0", force=False)

    def finish(self, done: int, events: int) -> None:
        """Input read and events admitted, once a split is done."""
        self._write(f"{done} {events}", force=True)

    def folded(self, events: int, force: bool = False) -> None:
        self._write(f"{events} 0", force)


def _sums(directory: Path) -> tuple[int, int, int]:
    """(units read, events admitted by finished splits, events folded)."""
    read = admitted = folded = 0
    for path in directory.iterdir():
        try:
            first, second = (int(v) for v in path.read_text().split())
        except (OSError, ValueError):  # being replaced right now: next time
            continue
        if path.name.startswith("read-"):
            read += first
            admitted += second
        elif path.name.startswith("fold-"):
            folded += first
    return read, admitted, folded


class ProgressView:
    """Two bars on stderr, refreshed from the progress directory while the pipeline runs."""

    def __init__(self, directory: str, total_units: int, unit: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.read = tqdm(
            total=total_units,
            unit=unit,
            unit_scale=True,
            desc="read",
            file=sys.stderr,
            position=0,
        )
        self.fold = tqdm(
            total=None, unit="ev", unit_scale=True, desc="fold", file=sys.stderr, position=1
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _refresh(self) -> None:
        read, admitted, folded = _sums(self.directory)
        self.read.n = min(read, self.read.total or read)
        self.read.refresh()
        if read >= (self.read.total or 0) and self.fold.total != admitted:
            self.fold.total = admitted
        self.fold.n = folded
        self.fold.refresh()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._refresh()

    def __enter__(self) -> ProgressView:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._refresh()
        self.read.close()
        self.fold.close()
