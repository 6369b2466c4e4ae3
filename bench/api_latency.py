"""Benchmark: read API latency at fixed request rates, against a real ``atp serve``.

Prints figures; asserts nothing (machines are shared and noisy). Loopback only, and every
loop is bounded (``--duration`` seconds per endpoint and rate).

- Data: a simulated log through ``atp replay``, written to Redis (database ``--db``) with
  ``SnapshotStore.write``; requests use the keys and items it holds.
- Server: ``atp serve`` in a subprocess (uvicorn, one process), as the read-only user.
- Load: open loop. Request ``i`` is due at ``start + i / rate`` whether or not earlier
  ones have answered, and its latency runs from that due time (so a stalled server is
  not hidden by a client that waits for it). Requests go over ``--connections``
  keep-alive HTTP/1.1 connections with a minimal client on uvloop; a request whose
  due time finds every connection busy waits, and that wait counts.
- Variants (``--variants``): ``default`` (one process, uvloop, httptools, access log
  on), ``no-access-log``, ``asyncio-h11`` (the pure-Python loop and parser) and
  ``2-workers``, measured in the same run for the ratios.
- CPU per request: of the server (all its processes) and of this load generator, from
  /proc; unlike latency, it hardly depends on what else the machine runs.

Usage: .venv/bin/python bench/api_latency.py [--duration 5] [--rates 500 1000 2000]
       [--variants default no-access-log asyncio-h11] [--db 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
import uvloop

from pipelines.cli import main as atp
from state.serving import SnapshotStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "no-access-log": ["--no-access-log"],
    "asyncio-h11": ["--loop", "asyncio", "--http", "h11"],
    "2-workers": ["--workers", "2"],
}


@dataclass(frozen=True)
class Endpoint:
    name: str
    requests: list[bytes]  # whole HTTP/1.1 requests, encoded once


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children (uvicorn's workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(child)) for child in children)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_request(method: str, path: str, body: Any = None) -> bytes:
    payload = b"" if body is None else orjson.dumps(body)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def prepare_data(folder: Path, url: str, events: int, skus: int) -> list[dict[str, Any]]:
    log, policy, snapshots = folder / "events.jsonl", folder / "policy.json", folder / "s.jsonl"
    simulate = ["simulate", "--events", str(events), "--skus", str(skus), "--output", str(log)]
    assert atp([*simulate, "--policy-output", str(policy)]) == 0
    assert atp(["replay", "--input", str(log), "--output", str(snapshots)]) == 0
    rows = [orjson.loads(line) for line in snapshots.read_bytes().splitlines()]
    client = redis.Redis.from_url(url)
    client.flushdb()  # the benchmark's own database
    SnapshotStore(client).write(rows)
    client.close()
    return rows


def endpoints(rows: list[dict[str, Any]], count: int, seed: int) -> list[Endpoint]:
    rng = random.Random(seed)
    items = sorted({r["item_id"] for r in rows})
    keys = [(r["item_id"], r["location_id"], r["available"]) for r in rows]

    def line() -> dict[str, Any]:
        item, _, available = rng.choice(keys)
        return {"item_id": item, "quantity": rng.randint(1, available + 20)}

    return [
        Endpoint(
            "GET snapshot",
            [http_request("GET", f"/v1/atp/{i}/{loc}") for i, loc, _ in rng.choices(keys, k=count)],
        ),
        Endpoint(
            "GET item",
            [http_request("GET", f"/v1/atp/{i}") for i in rng.choices(items, k=count)],
        ),
        Endpoint(
            "POST promise",
            [http_request("POST", "/v1/promise", line()) for _ in range(count)],
        ),
        Endpoint(
            "POST promise web",
            [
                http_request("POST", "/v1/promise", {**line(), "channel": "web"})
                for _ in range(count)
            ],
        ),
        Endpoint(
            "POST batch 5",
            [
                http_request("POST", "/v1/promise:batch", {"lines": [line() for _ in range(5)]})
                for _ in range(count)
            ],
        ),
    ]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    start = head.lower().index(b"content-length:") + 15
    length = int(head[start : head.index(b"\r\n", start)])
    await reader.readexactly(length)
    return status


async def run_rate(
    port: int, endpoint: Endpoint, rate: int, seconds: float, connections: int
) -> dict[str, Any]:
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    total = int(rate * seconds)
    latencies: list[float] = []
    service: list[float] = []
    failures: Counter[str] = Counter()  # what went wrong: a status code or an exception
    clock: Callable[[], float] = time.perf_counter  # uvloop's loop.time() has 1 ms steps

    async def one(index: int, due: float) -> None:
        connection = await idle.get()
        sent = clock()
        try:
            status = await _exchange(*connection, endpoint.requests[index % len(endpoint.requests)])
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            failures[type(err).__name__] += 1
            connection = await asyncio.open_connection("127.0.0.1", port)
        else:
            done = clock()
            if status == 200:
                latencies.append(done - due)
                service.append(done - sent)
            else:
                failures[str(status)] += 1
        idle.put_nowait(connection)

    tasks = []
    start = clock() + 0.05
    for index in range(total):
        due = start + index / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    latencies.sort()
    service.sort()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")

    return {
        "sent": total,
        "achieved": len(latencies) / elapsed,
        "errors": sum(failures.values()),
        "failures": failures,
        "p50": pct(latencies, 0.50),
        "p99": pct(latencies, 0.99),
        "max": pct(latencies, 1.0),
        "service_p99": pct(service, 0.99),
    }


def start_server(port: int, url: str, folder: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    tokens = folder / "tokens.json"
    entry = {"name": "bench", "token": TOKEN, "scopes": ["read", "promise"]}
    tokens.write_bytes(orjson.dumps({"tokens": [entry]}))
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)]
    command += ["--redis-url", url, "--tokens", str(tokens)]
    command += ["--policy", str(folder / "policy.json")]
    log = (folder / f"serve-{port}.log").open("wb")
    process = subprocess.Popen([*command, *extra], cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"atp serve did not start; see {log.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate (5)")
    parser.add_argument("--rates", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument("--endpoints", nargs="+", help="names to run (default: all)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    # Its own database: 15 is the tests', 14 the API tests', 13 the stream benchmark's.
    parser.add_argument("--db", type=int, default=10, help="Redis database of the benchmark")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--skus", type=int, default=500)
    args = parser.parse_args()
    if args.duration > 30 or max(args.rates) > 10_000:
        raise SystemExit("bounded loops only: --duration <= 30, rates <= 10000")

    subprocess.run([str(ROOT / "infra" / "redis.sh"), "start"], check=True, capture_output=True)
    url = f"redis://127.0.0.1:6379/{args.db}"
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        folder = Path(tmp)
        rows = prepare_data(folder, url, args.events, args.skus)
        items = len({r["item_id"] for r in rows})
        print(
            f"data: {len(rows)} snapshots, {items} items; {args.duration:.0f} s per rate; "
            f"{os.cpu_count()} CPUs; load is the 1-minute load average after each run"
        )
        chosen = [
            e for e in endpoints(rows, 4000, 7) if not args.endpoints or e.name in args.endpoints
        ]
        print(f"{'variant':14} {'endpoint':18} {'rate':>6} {'achieved':>9} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'max ms':>7} {'svc p99':>7} {'errors':>6} "
              f"{'srv cpu/req':>11} {'gen cpu/req':>11} {'load':>5}")  # fmt: skip
        for variant in args.variants:
            port = free_port()
            server = start_server(port, url, folder, VARIANTS[variant])
            try:
                for endpoint in chosen:
                    # Warm up: connections, the script cache, the first JIT-free paths.
                    uvloop.run(run_rate(port, endpoint, 200, 0.5, args.connections))
                    for rate in args.rates:
                        server_cpu, own_cpu = cpu_seconds(server.pid), own_cpu_seconds()
                        r = uvloop.run(
                            run_rate(port, endpoint, rate, args.duration, args.connections)
                        )
                        server_ms = (cpu_seconds(server.pid) - server_cpu) * 1000 / r["sent"]
                        own_ms = (own_cpu_seconds() - own_cpu) * 1000 / r["sent"]
                        print(
                            f"{variant:14} {endpoint.name:18} {rate:>6} {r['achieved']:>9.0f} "
                            f"{r['p50']:>7.2f} {r['p99']:>7.2f} {r['max']:>7.1f} "
                            f"{r['service_p99']:>7.2f} {r['errors']:>6.0f} "
                            f"{server_ms:>8.3f} ms {own_ms:>8.3f} ms {os.getloadavg()[0]:>5.1f}",
                            flush=True,
                        )
                        if r["failures"]:
                            print(f"{'':14} failures: {dict(r['failures'])}", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=20)
        redis.Redis.from_url(url).flushdb()


if __name__ == "__main__":
    main()
