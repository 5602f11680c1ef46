"""The gateway benchmark's load generator: raw asyncio HTTP/1.1 keep-alive clients (stdlib only).

One TCP connection per simulated client, requests written as prebuilt bytes and answers parsed
by hand (``Content-Length`` or chunked), so the generator costs a few microseconds a request and
is not what the benchmark measures (httpx or requests would be). Latency is taken with
``time.perf_counter`` around each request.

Two modes:

- ``closed``: each client sends its next request as soon as the previous answer is in, for
  ``--warmup`` + ``--seconds``; throughput and latency count the answers that arrive in the
  measured window (after the warm-up).
- ``open``: a fixed offered load of ``--rate`` requests/s in total, spread evenly over the
  clients, each on a fixed schedule (client ``i`` starts ``i / rate`` s in, then every
  ``clients / rate`` s). A request that has to wait for its connection (the previous answer came
  late) is timed from its *scheduled* send time, so queueing is not hidden (no coordinated
  omission); one sent on time is timed from its actual send (timer jitter of the generator's own
  event loop is not charged to the server).

Run as a process of its own; prints one JSON document on stdout::

    python benchmarks/_loadgen.py --port 8000 --body-file req.json \
        --header "authorization: Bearer K" --clients 50 --mode closed --seconds 5 --warmup 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

perf_counter = time.perf_counter


class ConnectionGone(Exception):
    """The server closed the connection (or it broke) before a full answer came."""


class Client(asyncio.Protocol):
    """One keep-alive connection; :meth:`request` writes bytes and waits for one answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.head_end = -1
        self.status = 0
        self.length = -1  # -1: not known yet; -2: chunked
        self.close_after = False
        self.last_error_body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionGone(str(exc) if exc else "closed by the server"))

    def request(self, data: bytes) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.transport is None:
            fut.set_exception(ConnectionGone("not connected"))
            return fut
        self.waiter = fut
        self.transport.write(data)
        return fut

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._parse()

    def _parse(self) -> None:
        buf = self.buf
        if self.head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head_end = end + 4
            head = bytes(buf[:end]).split(b"\r\n")
            self.status = int(head[0].split(b" ", 2)[1])
            self.length = 0
            self.close_after = False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    self.length = int(value.strip())
                elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                    self.length = -2
                elif lname == b"connection" and value.strip().lower() == b"close":
                    self.close_after = True
        if self.length == -2:
            total = _chunked_end(buf, self.head_end)
            if total < 0:
                return
        else:
            total = self.head_end + self.length
            if len(buf) < total:
                return
        status = self.status
        if status != 200:
            self.last_error_body = bytes(buf[self.head_end : total])[:500]
        del buf[:total]
        self.head_end = -1
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(status)
        if self.close_after and self.transport is not None:
            self.transport.close()


def _chunked_end(buf: bytearray, pos: int) -> int:
    """Where a chunked body starting at ``pos`` ends (after its trailer), or -1 if incomplete."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return -1
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", pos - 2)
            return -1 if trailer_end < 0 else trailer_end + 4
        pos += size + 2
        if pos > len(buf):
            return -1


class Stats:
    def __init__(self, window_start: float, window_end: float) -> None:
        self.window_start = window_start
        self.window_end = window_end
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.error_samples: dict[str, str] = {}
        self.late = 0
        self.total = 0  # every answer, warm-up included (for CPU time per request)

    def record(self, start: float, end: float, status: int, client: Client) -> None:
        self.total += 1
        if self.window_start <= end <= self.window_end:
            self.latencies.append(end - start)
            key = str(status)
            self.statuses[key] += 1
            if status != 200 and key not in self.error_samples:
                self.error_samples[key] = client.last_error_body.decode("utf-8", "replace")

    def failure(self, end: float, reason: str) -> None:
        if self.window_start <= end <= self.window_end:
            self.statuses["conn_error"] += 1
            self.error_samples.setdefault("conn_error", reason)


async def _connect(host: str, port: int) -> Client:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Client, host, port)
    return proto


async def _reconnect(host: str, port: int, stats: Stats) -> Client | None:
    """A new connection after the server dropped one; None once the window is over."""
    while perf_counter() < stats.window_end:
        try:
            return await _connect(host, port)
        except OSError as exc:
            stats.failure(perf_counter(), f"connect: {exc}")
            await asyncio.sleep(0.05)
    return None


async def _closed(host: str, port: int, req: bytes, stats: Stats, client: Client) -> None:
    end_at = stats.window_end
    while True:
        t0 = perf_counter()
        if t0 >= end_at:
            return
        try:
            status = await client.request(req)
        except ConnectionGone as exc:
            stats.failure(perf_counter(), str(exc))
            again = await _reconnect(host, port, stats)
            if again is None:
                return
            client = again
            continue
        stats.record(t0, perf_counter(), status, client)


async def _open(
    host: str, port: int, req: bytes, stats: Stats, client: Client, first: float, period: float
) -> None:
    scheduled = first
    previous_done = 0.0
    while scheduled < stats.window_end:
        now = perf_counter()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        t_send = perf_counter()
        # waited for the previous answer past the schedule: time it from the schedule
        start = scheduled if previous_done > scheduled else t_send
        if previous_done > scheduled:
            stats.late += 1
        try:
            status = await client.request(req)
        except ConnectionGone as exc:
            previous_done = perf_counter()
            stats.failure(previous_done, str(exc))
            again = await _reconnect(host, port, stats)
            if again is None:
                return
            client = again
        else:
            previous_done = perf_counter()
            stats.record(start, previous_done, status, client)
        scheduled += period


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    body = Path(args.body_file).read_bytes() if args.body_file else b"{}"
    headers = [f"{args.method} {args.path} HTTP/1.1", f"host: {args.host}:{args.port}"]
    headers += ["content-type: application/json", "accept: application/json"]
    headers += list(args.header)
    headers.append(f"content-length: {len(body)}")
    req = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    clients = [await _connect(args.host, args.port) for _ in range(args.clients)]
    start = perf_counter()
    stats = Stats(start + args.warmup, start + args.warmup + args.seconds)
    if args.mode == "closed":
        tasks = [_closed(args.host, args.port, req, stats, c) for c in clients]
    else:
        period = args.clients / args.rate
        tasks = [
            _open(args.host, args.port, req, stats, c, start + i / args.rate, period)
            for i, c in enumerate(clients)
        ]
    await asyncio.gather(*tasks)
    for c in clients:
        if c.transport is not None:
            c.transport.close()
    lat = sorted(stats.latencies)
    ms = 1000.0
    return {
        "mode": args.mode,
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "offered_rps": args.rate if args.mode == "open" else None,
        "count": len(lat),
        "total_count": stats.total,
        "ok": stats.statuses.get("200", 0),
        "rps": len(lat) / args.seconds,
        "ok_rps": stats.statuses.get("200", 0) / args.seconds,
        "statuses": dict(stats.statuses),
        "error_samples": stats.error_samples,
        "late_sends": stats.late,
        "latency_ms": {
            "mean": sum(lat) / len(lat) * ms if lat else math.nan,
            "p50": _percentile(lat, 50) * ms,
            "p90": _percentile(lat, 90) * ms,
            "p99": _percentile(lat, 99) * ms,
            "p999": _percentile(lat, 99.9) * ms,
            "max": lat[-1] * ms if lat else math.nan,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", default="POST")
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--body-file", help="the request body (JSON)")
    parser.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=150.0, help="open loop: total requests/s")
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
