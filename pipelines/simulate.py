"""A seeded, realistic distributor event log: DCs and stores, thousands of SKUs, OMS
orders and cart holds with expiry, WMS waves and shipments, EDI ASNs with confidence,
transfers, cycle counts, returns, quality holds, redeliveries and malformed records.

The same config and seed always give the same bytes.
"""

from __future__ import annotations

import heapq
import itertools
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from transforms import events as ev
from transforms.timeutil import DAY_MS, HOUR_MS, format_iso, parse_iso

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class SimConfig:
    events: int = 100_000
    seed: int = 7
    skus: int = 2_000
    dcs: int = 3
    stores: int = 12
    start: int = parse_iso("2026-05-01T00:00:00Z")
    days: float = 14.0
    duplicate_rate: float = 0.02
    malformed_rate: float = 0.005
    late_rate: float = 0.03

    @property
    def dc_ids(self) -> list[str]:
        return [f"DC{i + 1}" for i in range(self.dcs)]

    @property
    def store_ids(self) -> list[str]:
        return [f"ST{i + 1:03d}" for i in range(self.stores)]


def sample_policy(config: SimConfig) -> dict[str, Any]:
    """A channel policy over the simulated network, for the run command and tests."""
    dcs, stores = config.dc_ids, config.store_ids
    return {
        "channels": [
            {"channel": "web", "locations": dcs, "share": 0.8, "buffer": 2},
            {"channel": "marketplace", "locations": dcs[:2], "share": 0.3, "buffer": 5},
            {"channel": "stores-pickup", "locations": stores, "share": 1.0, "buffer": 1},
        ]
    }


# Scenario mix: name and relative weight.
_SCENARIOS = (
    ("order", 30),
    ("cart", 20),
    ("asn", 6),
    ("transfer", 6),
    ("cycle_count", 6),
    ("adjustment", 4),
    ("return", 5),
    ("hold", 3),
    ("safety", 2),
    ("po_receipt", 4),
)
_CONFIDENCES = (1.0, 1.0, 0.95, 0.9, 0.85, 0.8, 0.6, 0.4)
_CHANNELS = ("web", "web", "marketplace", "b2b")


class _Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.items = [f"SKU-{i + 1:06d}" for i in range(config.skus)]
        # Zipf-like popularity: a few SKUs carry most of the movement.
        ranks = range(1, config.skus + 1)
        self.item_weights = list(itertools.accumulate(1 / r**0.7 for r in ranks))
        self.dcs, self.stores = config.dc_ids, config.store_ids
        self.stock: dict[tuple[str, str], int] = {}
        self.queue: list[tuple[int, int, bytes]] = []  # (log time, tie-break, line)
        self.seq = itertools.count()
        self.ids = itertools.count(1)
        total = sum(w for _, w in _SCENARIOS)
        self.scenario_names = [name for name, _ in _SCENARIOS]
        self.scenario_weights = list(itertools.accumulate(w / total for _, w in _SCENARIOS))
        # About three events per scenario, spread over the configured span.
        self.mean_gap_ms = config.days * DAY_MS / max(1, config.events / 3)

    # -- helpers -----------------------------------------------------------------------
    def item(self) -> str:
        return self.items[bisect(self.item_weights, self.rng.random() * self.item_weights[-1])]

    def location(self, dc_share: float = 0.7) -> str:
        pool = self.dcs if self.rng.random() < dc_share or not self.stores else self.stores
        return self.rng.choice(pool)

    def ref(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids):09d}"

    def emit(self, at: int, record: dict[str, Any], late_ok: bool = True) -> None:
        """Schedule a record at event time ``at``; some arrive late, some twice."""
        record["event_id"] = f"{record['source_system']}-{next(self.ids):010d}"
        record["occurred_at"] = format_iso(at)
        line = orjson.dumps(record)
        rng = self.rng
        log_at = at
        if late_ok and rng.random() < self.cfg.late_rate:
            log_at += rng.randint(1, 10) * MINUTE_MS  # reaches the log after later events
        heapq.heappush(self.queue, (log_at, next(self.seq), line))
        if rng.random() < self.cfg.duplicate_rate:
            redelivery_at = log_at + rng.randint(1_000, 30 * MINUTE_MS)
            heapq.heappush(self.queue, (redelivery_at, next(self.seq), line))

    def event(
        self, at: int, kind: str, source: str, item: str, loc: str, qty: int, **extra: Any
    ) -> None:
        record: dict[str, Any] = {
            "event_id": None,
            "event_type": kind,
            "source_system": source,
            "occurred_at": None,
            "item_id": item,
            "location_id": loc,
            "quantity": qty,
        }
        record.update({k: v for k, v in extra.items() if v is not None})
        self.emit(at, record)

    def ensure_stocked(self, at: int, item: str, loc: str) -> None:
        """The first touch of a key is an opening count, as when a site goes live."""
        if (item, loc) not in self.stock:
            qty = self.rng.randint(50, 500) if loc.startswith("DC") else self.rng.randint(5, 40)
            self.stock[(item, loc)] = qty
            self.event(at - 1, ev.CYCLE_COUNT, "WMS", item, loc, qty)

    def moved(self, item: str, loc: str, delta: int) -> None:
        self.stock[(item, loc)] = self.stock.get((item, loc), 0) + delta

    # -- scenarios ---------------------------------------------------------------------
    def order(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), self.location()
        self.ensure_stocked(t, item, loc)
        ref, qty = self.ref("ORD"), rng.choice((1, 1, 1, 2, 2, 3, 5, 10, 24))
        corr = f"corr-{ref}"
        expires = t + 3 * DAY_MS if rng.random() < 0.3 else None
        channel = rng.choice(_CHANNELS)
        self.event(
            t,
            ev.RESERVATION_CREATED,
            "OMS",
            item,
            loc,
            qty,
            reference_id=ref,
            expires_at=None if expires is None else format_iso(expires),
            channel=channel,
            correlation_id=corr,
        )
        fate = rng.random()
        if fate < 0.8:
            wave = t + rng.randint(1, 8) * HOUR_MS
            self.event(
                wave, ev.ALLOCATION, "WMS", item, loc, qty, reference_id=ref, correlation_id=corr
            )
            ship = wave + rng.randint(2, 24) * HOUR_MS
            self.event(
                ship, ev.SHIPMENT, "TMS", item, loc, qty, reference_id=ref, correlation_id=corr
            )
            self.moved(item, loc, -qty)
        else:  # canceled, or released by the OMS
            self.event(
                t + rng.randint(30, 720) * MINUTE_MS,
                ev.ORDER_CANCELED if fate < 0.9 else ev.RESERVATION_RELEASED,
                "OMS",
                item,
                loc,
                qty,
                reference_id=ref,
                correlation_id=corr,
            )

    def cart(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), self.location(dc_share=0.9)
        self.ensure_stocked(t, item, loc)
        ref, qty = self.ref("CART"), rng.choice((1, 1, 1, 2, 3))
        ttl = rng.randint(20, 60) * MINUTE_MS
        self.event(
            t,
            ev.RESERVATION_CREATED,
            "ECOM",
            item,
            loc,
            qty,
            reference_id=ref,
            expires_at=format_iso(t + ttl),
            channel="web",
        )
        if rng.random() < 0.4:  # checked out or emptied before the hold lapses
            self.event(
                t + rng.randint(1, ttl // MINUTE_MS - 1) * MINUTE_MS,
                ev.RESERVATION_RELEASED,
                "ECOM",
                item,
                loc,
                qty,
                reference_id=ref,
            )

    def asn(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), rng_choice(self.rng, self.dcs)
        self.ensure_stocked(t, item, loc)
        ref, qty = self.ref("ASN"), rng.randint(2, 40) * 12
        expected = t + rng.randint(2, 10) * DAY_MS
        confidence = rng.choice(_CONFIDENCES)
        receipt_first = rng.random() < 0.05  # the 856 reaches us after the truck
        asn_at = expected + HOUR_MS if receipt_first else t
        self.event(
            asn_at,
            ev.ASN,
            "EDI",
            item,
            loc,
            qty,
            reference_id=ref,
            expected_at=format_iso(expected),
            confidence=confidence,
        )
        if rng.random() < 0.15:  # the supplier revises the ASN
            qty = max(12, qty + rng.randint(-3, 3) * 12)
            expected += rng.randint(-1, 2) * DAY_MS
            self.event(
                asn_at + DAY_MS,
                ev.ASN,
                "EDI",
                item,
                loc,
                qty,
                reference_id=ref,
                expected_at=format_iso(expected),
                confidence=confidence,
            )
        fate = rng.random()
        if fate < 0.85:
            arrive = expected + rng.randint(-12, 12) * HOUR_MS
            self.event(arrive, ev.RECEIPT, "WMS", item, loc, qty, reference_id=ref)
            self.moved(item, loc, qty)
        elif fate < 0.95:
            part = qty * rng.randint(6, 9) // 10
            self.event(expected, ev.RECEIPT, "WMS", item, loc, part, reference_id=ref)
            self.event(
                expected + rng.randint(1, 4) * DAY_MS,
                ev.RECEIPT,
                "WMS",
                item,
                loc,
                qty - part,
                reference_id=ref,
            )
            self.moved(item, loc, qty)
        elif fate < 0.99:  # later than the grace period: overdue first
            self.event(
                expected + rng.randint(3, 6) * DAY_MS,
                ev.RECEIPT,
                "WMS",
                item,
                loc,
                qty,
                reference_id=ref,
            )
            self.moved(item, loc, qty)

    def transfer(self, t: int) -> None:
        rng, item = self.rng, self.item()
        if not self.stores:
            return
        src, dst = rng.choice(self.dcs), rng.choice(self.stores)
        self.ensure_stocked(t, item, src)
        self.ensure_stocked(t, item, dst)
        ref, qty = self.ref("TRF"), rng.randint(1, 10) * 6
        expected = t + rng.randint(1, 3) * DAY_MS
        self.event(
            t,
            ev.TRANSFER_SHIPPED,
            "WMS",
            item,
            src,
            qty,
            reference_id=ref,
            to_location_id=dst,
            expected_at=format_iso(expected),
        )
        self.moved(item, src, -qty)
        late = rng.random() < 0.05
        arrive = expected + (rng.randint(3, 5) * DAY_MS if late else rng.randint(-6, 6) * HOUR_MS)
        self.event(
            max(arrive, t + HOUR_MS), ev.TRANSFER_RECEIVED, "WMS", item, dst, qty, reference_id=ref
        )
        self.moved(item, dst, qty)

    def cycle_count(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), self.location()
        self.ensure_stocked(t, item, loc)
        variance = rng.randint(-3, 3) if rng.random() < 0.1 else 0
        counted = max(0, self.stock[(item, loc)] + variance)
        self.stock[(item, loc)] = counted
        self.event(t, ev.CYCLE_COUNT, "WMS", item, loc, counted)

    def adjustment(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), self.location()
        self.ensure_stocked(t, item, loc)
        delta = -rng.randint(1, 4) if rng.random() < 0.8 else rng.randint(1, 3)
        self.event(t, ev.ADJUSTMENT, "ERP", item, loc, delta)
        self.moved(item, loc, delta)

    def return_(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), self.location(dc_share=0.5)
        self.ensure_stocked(t, item, loc)
        qty = rng.choice((1, 1, 2))
        self.event(
            t, ev.RETURN, rng.choice(("OMS", "ECOM")), item, loc, qty, reference_id=self.ref("RMA")
        )
        inspected = t + rng.randint(1, 3) * DAY_MS
        self.event(inspected, ev.QUALITY_RELEASE, "WMS", item, loc, qty)
        if rng.random() < 0.2:  # failed inspection: scrapped
            self.event(inspected + MINUTE_MS, ev.ADJUSTMENT, "ERP", item, loc, -qty)

    def hold(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), self.location()
        self.ensure_stocked(t, item, loc)
        qty = rng.randint(1, 20)
        self.event(t, ev.QUALITY_HOLD, "WMS", item, loc, qty)
        if rng.random() < 0.9:
            self.event(t + rng.randint(1, 5) * DAY_MS, ev.QUALITY_RELEASE, "WMS", item, loc, qty)

    def safety(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), self.location()
        self.ensure_stocked(t, item, loc)
        self.event(t, ev.SAFETY_STOCK_SET, "ERP", item, loc, rng.randint(0, 10))

    def po_receipt(self, t: int) -> None:
        rng, item, loc = self.rng, self.item(), rng_choice(self.rng, self.dcs)
        self.ensure_stocked(t, item, loc)
        qty = rng.randint(1, 20) * 6
        self.event(t, ev.RECEIPT, "ERP", item, loc, qty, reference_id=self.ref("PO"))
        self.moved(item, loc, qty)

    # -- malformed records -------------------------------------------------------------
    def malformed(self, t: int) -> bytes:
        rng = self.rng
        good: dict[str, Any] = {
            "event_id": f"BAD-{next(self.ids):010d}",
            "event_type": ev.RECEIPT,
            "source_system": "ERP",
            "occurred_at": format_iso(t),
            "item_id": self.item(),
            "location_id": rng.choice(self.dcs),
            "quantity": rng.randint(1, 50),
        }
        flaw = rng.randrange(10)
        if flaw == 0:
            return orjson.dumps(good)[: rng.randint(5, 40)]  # truncated
        if flaw == 1:
            del good["quantity"]
        elif flaw == 2:
            good["quantity"] = -good["quantity"]
        elif flaw == 3:
            good["event_type"] = "RECIEPT"
        elif flaw == 4:
            good["event_type"] = ev.ALLOCATION  # without reference_id
        elif flaw == 5:
            good.update(
                event_type=ev.ASN, reference_id="ASN-X", expected_at=format_iso(t), confidence=1.7
            )
        elif flaw == 6:
            good["quantity"] = str(good["quantity"])
        elif flaw == 7:
            del good["item_id"]
        elif flaw == 8:
            good.update(event_type=ev.TRANSFER_SHIPPED, reference_id="TRF-X")  # no destination
        else:
            good.update(event_type=ev.ASN, reference_id="ASN-Y")  # no expected_at
        return orjson.dumps(good)

    # -- main loop ---------------------------------------------------------------------
    def lines(self) -> Iterator[bytes]:
        cfg, rng, queue = self.cfg, self.rng, self.queue
        scenarios = {
            name: getattr(self, name if name != "return" else "return_")
            for name in self.scenario_names
        }
        t = cfg.start
        produced = 0
        while produced < cfg.events:
            t += int(rng.expovariate(1.0) * self.mean_gap_ms) + 1
            while queue and queue[0][0] <= t and produced < cfg.events:
                _, _, line = heapq.heappop(queue)
                yield line
                produced += 1
                if produced < cfg.events and rng.random() < cfg.malformed_rate:
                    yield self.malformed(t)
                    produced += 1
            name = self.scenario_names[bisect(self.scenario_weights, rng.random())]
            scenarios[name](t)


def rng_choice(rng: random.Random, pool: list[str]) -> str:
    return pool[rng.randrange(len(pool))]


def simulate(config: SimConfig) -> Iterator[bytes]:
    """Yield the log's lines (without newlines), exactly ``config.events`` of them."""
    return _Simulator(config).lines()
