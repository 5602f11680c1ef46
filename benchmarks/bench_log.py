"""Benchmark: the transparency log, against the published anchors of issue 5.

Measures, in one run:

- batched appends per second (batches of 1,000 entries of ~220 bytes, each batch one durable
  transaction with its signed checkpoint) on SQLite and on the local PostgreSQL;
- inclusion-proof generation and verification at 1,000,000 leaves (the SQLite log of 1M leaves
  is built once, then reused from ``--big-db``);
- checkpoint signing rate (Ed25519 signed notes).

Anchors: Tessera (the engine behind Sigstore's log) reports about 10,000 appends/s on NVMe
(transparency-dev/tessera docs/performance.md); the issue asks proof generation <= 1 ms at 1M
leaves. Ratios are ours / anchor (higher is better for rates, lower for times).

Run: ``python benchmarks/bench_log.py [--entries 100000] [--big-db /tmp/modelseal-bench-1m.db]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from modelseal.tlog.hashing import leaf_hash
from modelseal.tlog.log import Log, LogReader
from modelseal.tlog.merkle import verify_inclusion
from modelseal.tlog.note import Checkpoint, NoteSigner, generate_vkey_pair
from modelseal.tlog.store import open_store

TESSERA_APPENDS = 10_000.0
PROOF_TARGET_S = 0.001
BATCH = 1000
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def entries(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [json.dumps({"i": i, "pad": rng.randbytes(90).hex()}).encode() for i in range(n)]


def signer() -> NoteSigner:
    key, _ = generate_vkey_pair("bench.modelseal.local/log")
    return NoteSigner("bench.modelseal.local/log", key)


def appends(url: str, n: int, seed: int) -> float:
    log = Log(open_store(url), "bench.modelseal.local/log", signer())
    data = entries(n, seed)
    try:
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            log.append(data[i : i + BATCH])
        elapsed = time.perf_counter() - start
    finally:
        log.close()
    return n / elapsed


def postgres_appends(n: int) -> float | None:
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    url = f"{POSTGRES}?prefix={prefix}"
    try:
        rate = appends(url, n, 2)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could not measure
        print(f"  postgresql: not measured ({type(exc).__name__}: {exc})")
        return None
    store = open_store(url)
    try:
        drop = getattr(store, "drop_tables", None)
        if drop is not None:
            store.acquire_sequencer()
            drop()
    finally:
        store.close()
    return rate


def big_log(path: Path, size: int) -> None:
    url = f"sqlite:///{path}"
    if path.exists() and LogReader(open_store(url)).size() >= size:
        return
    if path.exists():
        path.unlink()
    log = Log(open_store(url), "bench.modelseal.local/log", signer())
    try:
        for i in range(0, size, 10_000):
            log.append(entries(min(10_000, size - i), 1000 + i))
    finally:
        log.close()


def proofs(path: Path, samples: int) -> tuple[float, float, float]:
    reader = LogReader(open_store(f"sqlite:///{path}"))
    try:
        size = reader.size()
        root = reader.root(size)
        rng = random.Random(7)
        gen: list[float] = []
        ver: list[float] = []
        for _ in range(samples):
            index = rng.randrange(size)
            start = time.perf_counter()
            proof = reader.inclusion_proof(index, size)
            gen.append(time.perf_counter() - start)
            leaf = leaf_hash(reader.entry(index))
            start = time.perf_counter()
            verify_inclusion(index, size, leaf, proof, root)
            ver.append(time.perf_counter() - start)
        gen.sort()
        return statistics.median(gen), gen[int(len(gen) * 0.99)], statistics.median(ver)
    finally:
        reader.close()


def signing_rate(n: int) -> float:
    s = signer()
    text = Checkpoint("bench.modelseal.local/log", 1_000_000, b"\x01" * 32).to_text()
    start = time.perf_counter()
    for _ in range(n):
        s.sign(text)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument(
        "--big-db", default=os.path.join(tempfile.gettempdir(), "modelseal-bench-1m.db")
    )
    parser.add_argument("--big-size", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite_appends_per_s"] = appends(f"sqlite:///{tmp}/log.db", args.entries, 1)
    out["postgresql_appends_per_s"] = postgres_appends(args.entries)
    big = Path(args.big_db)
    start = time.perf_counter()
    big_log(big, args.big_size)
    out["big_log_build_s"] = time.perf_counter() - start
    median, p99, verify = proofs(big, args.samples)
    out.update(proof_median_s=median, proof_p99_s=p99, verify_median_s=verify)
    out["checkpoint_signs_per_s"] = signing_rate(5000)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"appends/s, SQLite, batch {BATCH}: {out['sqlite_appends_per_s']:,.0f} "
        f"({out['sqlite_appends_per_s'] / TESSERA_APPENDS:.2f}x Tessera's ~10,000/s)"
    )
    if out["postgresql_appends_per_s"]:
        print(
            f"appends/s, PostgreSQL, batch {BATCH}: {out['postgresql_appends_per_s']:,.0f} "
            f"({out['postgresql_appends_per_s'] / TESSERA_APPENDS:.2f}x)"
        )
    print(
        f"inclusion proof at {args.big_size:,} leaves: median {median * 1e6:.0f} us, "
        f"p99 {p99 * 1e6:.0f} us ({median / PROOF_TARGET_S:.2f} of the 1 ms target)"
    )
    print(f"inclusion proof verification: median {verify * 1e6:.1f} us")
    print(f"checkpoint signing: {out['checkpoint_signs_per_s']:,.0f}/s")


if __name__ == "__main__":
    main()
