"""The read API on a real Redis (as its read-only ACL user), through the ASGI app.

Snapshots come from ``atp replay`` of a small simulated log, written with
``SnapshotStore.write``; promise answers are checked against ``transforms.promise`` on
the same snapshots.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import load_tokens
from api.settings import Settings
from pipelines.usage import policy_file
from state.serving import SnapshotStore, snapshot_key
from state.snapshot_json import snapshot_from_json
from tests.integration.api_data import (
    API_USER,
    PROMISE_TOKEN,
    READ_TOKEN,
    ReplayedLog,
    api_db_url,
    api_password,
    free_port,
    load_into_redis,
    replay_small_log,
    tokens_file,
)
from transforms.promise import BACKORDER, promise
from transforms.snapshot import QUANTITY_FIELDS, Snapshot
from transforms.sourcing import CLASS_RANK
from transforms.timeutil import DAY_MS, format_iso, parse_iso

pytestmark = pytest.mark.integration

PROMISE = {"Authorization": f"Bearer {PROMISE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture(scope="module")
def store_url(redis_server: str) -> str:
    return api_db_url(redis_server)


@pytest.fixture(scope="module")
def replayed(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayedLog]:
    log = replay_small_log(tmp_path_factory.mktemp("api"))
    load_into_redis(store_url, log)
    yield log
    redis.Redis.from_url(store_url).flushdb()


def settings_for(url: str, log: ReplayedLog, folder: Path) -> Settings:
    return Settings(
        tokens=load_tokens(tokens_file(folder)),
        redis_url=url,
        redis_user=API_USER,
        redis_password=api_password(),
        policy=policy_file(str(log.policy_path)),
        redis_timeout_s=0.5,
    )


@pytest.fixture(scope="module")
def client(
    store_url: str, replayed: ReplayedLog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    app = create_app(settings_for(store_url, replayed, tmp_path_factory.mktemp("tokens")))
    with TestClient(app) as test_client:
        yield test_client


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def used(snapshots: list[Snapshot]) -> list[dict[str, Any]]:
    return [
        {
            "location_id": s.location_id,
            "version": s.version,
            "revision": s.revision,
            "as_of": None if s.as_of is None else format_iso(s.as_of),
        }
        for s in sorted(snapshots, key=lambda s: s.location_id)
    ]


def expected_answer(snapshot: Snapshot, quantity: int, at: int, threshold: float) -> dict[str, Any]:
    p = promise(snapshot, quantity, at, threshold)
    return {
        "class": p.promise_class,
        "date": None if p.date is None else format_iso(p.date),
        "location_id": None if p.promise_class == BACKORDER else snapshot.location_id,
        "quantity": quantity,
        "available": p.available,
        "supply_used": list(p.supply_used),
    }


def picked(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: answer[k] for k in ("class", "date", "location_id", "quantity", "available")} | {
        "supply_used": answer["supply_used"]
    }


def test_a_snapshot_is_the_stored_one_with_its_as_of_and_age(
    client: TestClient, replayed: ReplayedLog
) -> None:
    for stored in replayed.snapshots[::97]:
        before = now_ms()
        response = client.get(f"/v1/atp/{stored['item_id']}/{stored['location_id']}", headers=READ)
        after = now_ms()
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["snapshot"] == stored
        assert body["as_of"] == stored["as_of"] == replayed.clock
        as_of = parse_iso(body["as_of"])
        assert before - as_of <= body["age_ms"] <= after - as_of


def test_an_item_has_every_location_and_the_network_totals(
    client: TestClient, replayed: ReplayedLog
) -> None:
    for item in replayed.items()[::7]:
        rows = [s for s in replayed.snapshots if s["item_id"] == item]
        body = client.get(f"/v1/atp/{item}", headers=READ).json()
        assert [entry["snapshot"] for entry in body["locations"]] == rows
        assert body["network"] == {f: sum(r[f] for r in rows) for f in QUANTITY_FIELDS}
        assert body["as_of"] == replayed.clock


def test_promises_at_one_location_equal_the_contracts_promise(
    client: TestClient, replayed: ReplayedLog
) -> None:
    clock = parse_iso(replayed.clock)
    lines, expected = [], []
    for stored in replayed.snapshots[::23]:
        snapshot = snapshot_from_json(stored)
        walk = snapshot.available + snapshot.in_transit + snapshot.inbound
        for quantity in {1, snapshot.available, snapshot.available + 1, walk, walk + 1}:
            for at in (clock, clock + 3 * DAY_MS):
                for threshold in (0.5, 0.8, 1.0):
                    if quantity < 1:
                        continue
                    lines.append(
                        {
                            "item_id": snapshot.item_id,
                            "quantity": quantity,
                            "locations": [snapshot.location_id],
                            "at": format_iso(at),
                            "confidence": threshold,
                        }
                    )
                    expected.append((snapshot, expected_answer(snapshot, quantity, at, threshold)))
    classes = set()
    for start in range(0, len(lines), 500):
        response = client.post(
            "/v1/promise:batch", json={"lines": lines[start : start + 500]}, headers=PROMISE
        )
        assert response.status_code == 200, response.text
        for answer, (snapshot, want) in zip(
            response.json()["lines"], expected[start : start + 500], strict=True
        ):
            assert picked(answer) == want
            assert answer["snapshots"] == used([snapshot])
            classes.add(answer["class"])
    assert classes == set(CLASS_RANK), "the sample should reach every class"
    # The single-line endpoint answers the same.
    for line, (snapshot, want) in list(zip(lines, expected, strict=True))[::41]:
        answer = client.post("/v1/promise", json=line, headers=PROMISE).json()
        assert picked(answer) == want
        assert answer["snapshots"] == used([snapshot])


def rank(snapshot: Snapshot, quantity: int, at: int, threshold: float) -> tuple[bool, int, int]:
    p = promise(snapshot, quantity, at, threshold)
    return (p.date is None, p.date or 0, CLASS_RANK[p.promise_class])


def test_a_network_promise_comes_from_the_best_location(
    client: TestClient, replayed: ReplayedLog
) -> None:
    clock = parse_iso(replayed.clock)
    for item in replayed.items()[::3]:
        snapshots = [snapshot_from_json(s) for s in replayed.snapshots if s["item_id"] == item]
        most = max(s.available for s in snapshots)
        for quantity in (1, most, most + 1, most + 500):
            line = {"item_id": item, "quantity": quantity, "at": replayed.clock}
            answer = client.post("/v1/promise", json=line, headers=PROMISE).json()
            assert answer["snapshots"] == used(snapshots)
            if answer["class"] == BACKORDER:
                assert all(rank(s, quantity, clock, 0.8)[0] for s in snapshots)
                assert answer["location_id"] is None and answer["date"] is None
                continue
            chosen = next(s for s in snapshots if s.location_id == answer["location_id"])
            assert picked(answer) == expected_answer(chosen, quantity, clock, 0.8)
            assert all(
                rank(chosen, quantity, clock, 0.8) <= rank(s, quantity, clock, 0.8)
                for s in snapshots
            )


def test_a_channel_promise_is_capped_by_the_channels_atp(
    client: TestClient, replayed: ReplayedLog
) -> None:
    clock = parse_iso(replayed.clock)
    policy = policy_file(str(replayed.policy_path))
    replay_channels = {(c["channel"], c["item_id"]): c["available"] for c in replayed.channels}
    by_key = replayed.by_key()
    for channel in policy.channels:
        for item in replayed.items()[::5]:
            cap = replay_channels.get((channel.channel, item), 0)
            for quantity in (1, max(cap, 1), cap + 1):
                line = {"item_id": item, "quantity": quantity, "channel": channel.channel}
                answer = client.post(
                    "/v1/promise", json={**line, "at": replayed.clock}, headers=PROMISE
                ).json()
                assert answer["channel_available"] == cap  # the same as atp replay's channel ATP
                snapshots = {
                    loc: snapshot_from_json(by_key[(item, loc)])
                    for loc in channel.locations
                    if (item, loc) in by_key
                }
                assert answer["snapshots"] == used(list(snapshots.values()))
                if answer["class"] == BACKORDER:
                    continue
                assert answer["location_id"] in channel.locations
                chosen = snapshots[answer["location_id"]]
                capped = dataclasses.replace(chosen, available=min(chosen.available, cap))
                assert picked(answer) == expected_answer(capped, quantity, clock, 0.8)
                if quantity > cap:
                    assert answer["class"] != "IMMEDIATE"


def test_a_batch_answers_each_line_and_the_ship_complete_date(
    client: TestClient, replayed: ReplayedLog
) -> None:
    first, second = replayed.snapshots[0], replayed.snapshots[-1]
    lines = [
        {"item_id": first["item_id"], "quantity": 1, "locations": [first["location_id"]]},
        {"item_id": second["item_id"], "quantity": 1, "channel": "web"},
    ]
    body = client.post(
        "/v1/promise:batch", json={"lines": lines, "at": replayed.clock}, headers=PROMISE
    ).json()
    assert len(body["lines"]) == 2
    dates = [line["date"] for line in body["lines"]]
    if None in dates:
        assert body["ship_complete_date"] is None
    else:
        assert body["ship_complete_date"] == max(dates, key=parse_iso)
    huge = {"lines": [*lines, {"item_id": first["item_id"], "quantity": 10**9}]}
    body = client.post("/v1/promise:batch", json=huge, headers=PROMISE).json()
    assert body["lines"][2]["class"] == BACKORDER
    assert body["ship_complete_date"] is None


def test_tokens_and_scopes(client: TestClient, replayed: ReplayedLog) -> None:
    path = f"/v1/atp/{replayed.snapshots[0]['item_id']}"
    line = {"item_id": replayed.snapshots[0]["item_id"], "quantity": 1}
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"] == "missing bearer token"
    unknown = client.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == "unknown bearer token"
    assert client.get(path, headers={"Authorization": f"Basic {READ_TOKEN}"}).status_code == 401
    assert client.get(path, headers=READ).status_code == 200
    forbidden = client.post("/v1/promise", json=line, headers=READ)
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == "token 'dashboard' lacks scope 'promise'"
    assert client.post("/v1/promise", json=line, headers=PROMISE).status_code == 200
    assert client.post("/v1/promise", json=line).status_code == 401


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"item_id": "SKU-1", "quantity": 0}, "body.quantity", "greater than or equal to 1"),
        ({"item_id": "SKU-1"}, "body.quantity", "Field required"),
        ({"item_id": "", "quantity": 1}, "body.item_id", "at least 1 character"),
        ({"item_id": "SKU-1", "quantity": 1, "qty": 2}, "body.qty", "Extra inputs"),
        ({"item_id": "SKU-1", "quantity": 1, "at": "soon"}, "body.at", "not an ISO-8601 time"),
        ({"item_id": "SKU-1", "quantity": 1, "at": 1.5e9}, "body.at", "valid string"),
        (
            {"item_id": "SKU-1", "quantity": 1, "at": "0001-01-01T00:00:00+14:00"},
            "body.at",
            "years 1 to 9999 UTC",
        ),
        ({"item_id": "SKU-1", "quantity": "5"}, "body.quantity", "valid integer"),
        ({"item_id": "SKU-1", "quantity": 5.0}, "body.quantity", "valid integer"),
        ({"item_id": "SKU-1", "quantity": True}, "body.quantity", "valid integer"),
        ({"item_id": "SKU-1", "quantity": 1, "confidence": 2}, "body.confidence", "less than"),
        ({"item_id": "SKU-1", "quantity": 1, "locations": []}, "body.locations", "at least 1"),
        (
            {"item_id": "SKU-1", "quantity": 1, "locations": ["DC1", "DC1"]},
            "body.locations",
            "locations lists a location twice",
        ),
        (
            {"item_id": "SKU-1", "quantity": 1, "channel": "fax"},
            "body.channel",
            "unknown channel 'fax' (the policy's channels: web, marketplace, stores-pickup)",
        ),
        (
            {"item_id": "SKU-1", "quantity": 1, "channel": "marketplace", "locations": ["DC3"]},
            "body.locations",
            "location 'DC3' does not serve channel 'marketplace'",
        ),
    ],
)
def test_invalid_requests_answer_422_naming_the_field(
    client: TestClient, body: dict[str, Any], loc: str, message: str
) -> None:
    response = client.post("/v1/promise", json=body, headers=PROMISE)
    assert response.status_code == 422
    answer = response.json()
    assert any(e["loc"] == loc and message in e["message"] for e in answer["errors"]), answer
    assert answer["detail"].startswith("invalid request: ")
    assert message in answer["detail"]
    batch = client.post("/v1/promise:batch", json={"lines": [body]}, headers=PROMISE).json()
    assert any(e["loc"] == loc.replace("body", "body.lines[0]") for e in batch["errors"]), batch


def test_a_batch_is_bounded_and_a_body_must_be_json(client: TestClient) -> None:
    lines = [{"item_id": "SKU-1", "quantity": 1}] * 501
    response = client.post("/v1/promise:batch", json={"lines": lines}, headers=PROMISE)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "body.lines"
    broken = client.post(
        "/v1/promise",
        content=b'{"item_id": "SKU-1",',
        headers={**PROMISE, "Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["type"] == "json_invalid"


def test_unknown_keys_answer_404(client: TestClient, replayed: ReplayedLog) -> None:
    item = replayed.snapshots[0]["item_id"]
    response = client.get(f"/v1/atp/{item}/NOWHERE", headers=READ)
    assert response.status_code == 404
    assert response.json()["detail"] == f"no snapshot for item {item!r} at 'NOWHERE'"
    assert client.get("/v1/atp/NO-SUCH-ITEM", headers=READ).status_code == 404
    # A promise still answers: a location without a snapshot counts as zero.
    answer = client.post(
        "/v1/promise", json={"item_id": "NO-SUCH-ITEM", "quantity": 1}, headers=PROMISE
    ).json()
    assert (answer["class"], answer["snapshots"]) == (BACKORDER, [])


def test_correlation_ids_are_returned_and_made_when_absent(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Correlation-ID": "order-42/line-1"})
    assert given.headers["x-correlation-id"] == "order-42/line-1"
    made = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-correlation-id"])
    unusable = client.get("/healthz", headers={"X-Correlation-ID": "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", unusable.headers["x-correlation-id"])
    error = client.get("/v1/atp/SKU-1", headers={"X-Correlation-ID": "cid-7"})
    assert error.status_code == 401
    assert error.json()["correlation_id"] == error.headers["x-correlation-id"] == "cid-7"


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_latency_by_route_answers_by_class_and_errors(
    client: TestClient, replayed: ReplayedLog
) -> None:
    before = client.get("/metrics").text
    item = replayed.snapshots[0]["item_id"]
    client.post("/v1/promise", json={"item_id": item, "quantity": 1}, headers=PROMISE)
    client.post("/v1/promise", json={"item_id": item, "quantity": 10**9}, headers=PROMISE)
    client.post("/v1/promise", json={"item_id": item, "quantity": 0}, headers=PROMISE)
    client.get(f"/v1/atp/{item}")
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")

    def grew(name: str, by: float, **labels: str) -> None:
        assert metric(after.text, name, **labels) - metric(before, name, **labels) == by

    count = "atp_api_request_duration_seconds_count"
    grew(count, 3, route="/v1/promise", method="POST")
    grew(count, 1, route="/v1/atp/{item_id}", method="GET")
    grew("atp_api_promise_answers_total", 1, **{"class": "IMMEDIATE"})
    grew("atp_api_promise_answers_total", 1, **{"class": "BACKORDER"})
    grew("atp_api_errors_total", 1, route="/v1/promise", status="422")
    grew("atp_api_errors_total", 1, route="/v1/atp/{item_id}", status="401")
    bucket = "atp_api_request_duration_seconds_bucket"
    assert metric(after.text, bucket, route="/v1/promise", le="+Inf") >= 3


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_an_unreachable_store_answers_503_and_not_ready(
    replayed: ReplayedLog, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/15"  # nothing listens there
    with TestClient(create_app(settings_for(url, replayed, tmp_path))) as down:
        assert down.get("/healthz").status_code == 200
        ready = down.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        response = down.get("/v1/atp/SKU-1/DC1", headers=READ)
        assert response.status_code == 503
        assert response.json()["detail"].startswith("serving store unavailable")


def test_the_api_user_reads_atp_keys_and_cannot_write(
    store_url: str, replayed: ReplayedLog
) -> None:
    reader = redis.Redis.from_url(store_url, username=API_USER, password=api_password())
    first = replayed.snapshots[0]
    key = snapshot_key(first["item_id"], first["location_id"])
    assert cast(bytes, reader.hget(key, "revision")) == str(first["revision"]).encode()
    denied = redis.exceptions.NoPermissionError
    with pytest.raises(denied):
        reader.hset(key, "revision", "999999")
    with pytest.raises(denied):
        reader.set("atp:anything", "1")
    with pytest.raises(denied):
        reader.delete(key)
    with pytest.raises(denied):
        reader.flushdb()
    with pytest.raises(denied):
        reader.get("other:key")  # outside atp:*
    with pytest.raises(redis.exceptions.ResponseError):
        reader.eval("return redis.call('DEL', KEYS[1])", 1, key)
    with pytest.raises(redis.exceptions.ResponseError):
        SnapshotStore(reader).write([{**first, "revision": first["revision"] + 1}])
    assert redis.Redis.from_url(store_url).hget(key, "snapshot") is not None
    reader.close()


def test_a_bad_path_id_answers_422(client: TestClient) -> None:
    response = client.get("/v1/atp/SKU%01X/DC1", headers=READ)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == "path.item_id"
    assert client.get(f"/v1/atp/{'x' * 201}", headers=READ).status_code == 422
