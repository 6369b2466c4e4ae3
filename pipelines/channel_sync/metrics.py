"""Prometheus counters per channel, on a registry of the sync's own (several syncs in one
process, as in tests, do not collide), plus plain totals for the closing summary."""

from __future__ import annotations

from collections import Counter as Totals
from typing import Final

from prometheus_client import CollectorRegistry, Counter, start_http_server

NO_CHANNEL: Final = "-"
"""The channel label of a record that could not be read."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.totals: Totals[str] = Totals()
        labels = ["channel"]
        self._records = Counter(
            "atp_channel_sync_records",
            "Records read from the channel topic",
            registry=self.registry,
        )
        self._pushed = Counter(
            "atp_channel_sync_pushed",
            "Pushes the channel's endpoint accepted (one per coalesced change)",
            labels,
            registry=self.registry,
        )
        self._coalesced = Counter(
            "atp_channel_sync_coalesced",
            "Changes folded into a newer version's push instead of being pushed themselves",
            labels,
            registry=self.registry,
        )
        self._retried = Counter(
            "atp_channel_sync_retried",
            "Attempts that failed and were scheduled again (408, 429, 5xx, transport errors)",
            labels,
            registry=self.registry,
        )
        self._dead_lettered = Counter(
            "atp_channel_sync_dead_lettered",
            "Dead letters written, by reason",
            [*labels, "reason"],
            registry=self.registry,
        )
        self._ignored = Counter(
            "atp_channel_sync_ignored",
            "Records of channels the channels file lists under 'ignore'",
            labels,
            registry=self.registry,
        )

    def record(self) -> None:
        self._records.inc()
        self.totals["records"] += 1

    def pushed(self, channel: str) -> None:
        self._pushed.labels(channel).inc()
        self.totals["pushed"] += 1

    def coalesced(self, channel: str) -> None:
        self._coalesced.labels(channel).inc()
        self.totals["coalesced"] += 1

    def retried(self, channel: str) -> None:
        self._retried.labels(channel).inc()
        self.totals["retried"] += 1

    def dead_lettered(self, channel: str, reason: str) -> None:
        self._dead_lettered.labels(channel, reason).inc()
        self.totals["dead_lettered"] += 1

    def ignored(self, channel: str) -> None:
        self._ignored.labels(channel).inc()
        self.totals["ignored"] += 1

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics (a daemon thread; it ends with the process)."""
        start_http_server(port, addr=host, registry=self.registry)

    def summary(self) -> str:
        names = ("records", "pushed", "coalesced", "retried", "dead_lettered", "ignored")
        return ", ".join(f"{self.totals[name]} {name.replace('_', ' ')}" for name in names)
