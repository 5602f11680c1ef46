"""Benchmark: how fast modelseal hashes a release, against anchors measured in the same run.

Scenarios (each on freshly generated random files in a temporary directory, page cache warm):

- ``a``: a few large files (default 8 x 256 MiB), like a sharded checkpoint;
- ``b``: many small files (default 10,000 x 4 KiB) spread over a few sub-directories;
- ``cached``: (with ``a``) a second ``hash_release`` reusing a DigestCache, against the first;
- ``c``: one large file (default 2 GiB), like a single-file GGUF: SHA-256 is sequential within a
  file, so here modelseal's ``sha256`` can only match one core; ``--algorithm blake3`` is timed
  against a single-thread BLAKE3 to show it uses every core.

Anchors: a single-thread ``hashlib.sha256`` loop (1 MiB reads, files in sorted order) and
model-signing's hashing API (``model_signing.hashing.Config`` with its default SHA-256 file
serialization). Every digest from modelseal and model-signing is checked against hashlib's, so a
fast but wrong result cannot pass.

Run: ``python benchmarks/bench_hash.py [--scenario a|b|all] [--repeat 3] [--json] [--strict]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelseal.release import DigestCache, default_jobs, hash_release

try:
    import model_signing
except ImportError:
    model_signing = None

MiB = 1 << 20
GEN_CHUNK = 16 * MiB
Digests = dict[str, str]  # release-relative POSIX path -> hex SHA-256


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_large(root: Path, count: int, size_mb: int) -> None:
    root.mkdir()
    size = size_mb * MiB
    for n in range(count):
        log(f"  writing large file {n + 1}/{count} ({size_mb} MiB)")
        with open(root / f"model-{n + 1:05d}-of-{count:05d}.safetensors", "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(GEN_CHUNK, left))
                f.write(chunk)
                left -= len(chunk)


def build_small(root: Path, count: int, size_kb: int, subdirs: int = 8) -> None:
    root.mkdir()
    for d in range(subdirs):
        (root / f"part{d}").mkdir()
    log(f"  writing {count} small files ({size_kb} KiB each) in {subdirs} sub-directories")
    for n in range(count):
        (root / f"part{n % subdirs}" / f"shard-{n:06d}.bin").write_bytes(os.urandom(size_kb * 1024))


def list_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def warm(files: list[Path]) -> None:
    """Flush the freshly written files to disk (no writeback during timing), then read them."""
    os.sync()
    buf = bytearray(8 * MiB)
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def busy_cpus(seconds: float = 1.0) -> float | None:
    """How many CPUs other processes keep busy now (from /proc/stat; None where unavailable)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    cpus = os.cpu_count() or 1
    return cpus * (1 - (idle1 - idle0) / max(1, total1 - total0))


def run_modelseal(root: Path) -> Digests:
    return {e.path: e.digest for e in hash_release(root).files}


def run_hashlib(root: Path) -> Digests:
    """The single-thread anchor: sequential 1 MiB reads over the files in sorted order."""
    buf = bytearray(MiB)
    view = memoryview(buf)
    out: Digests = {}
    for path in list_files(root):
        h = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
        out[path.relative_to(root).as_posix()] = h.hexdigest()
    return out


def run_model_signing(root: Path) -> Digests:
    assert model_signing is not None
    config = model_signing.hashing.Config().use_file_serialization(hashing_algorithm="sha256")
    manifest = config.hash(root)
    return {d.identifier: d.digest.digest_hex for d in manifest.resource_descriptors()}


def check_same(name: str, got: Digests, expected: Digests) -> None:
    """Raise (not ``assert``: this must hold under ``python -O`` too) unless the digests agree."""
    if got != expected:
        missing = len(expected.keys() - got.keys())
        wrong = sum(1 for k, v in got.items() if expected.get(k) != v)
        raise AssertionError(
            f"{name} digests differ from hashlib's: {len(got)} files (expected {len(expected)}), "
            f"{missing} missing, {wrong} wrong or extra"
        )


def best_times(
    root: Path, runners: dict[str, Callable[[Path], Digests]], repeat: int
) -> dict[str, float]:
    """Best wall time of each runner over ``repeat`` rounds (round-robin, checked every time)."""
    best = dict.fromkeys(runners, float("inf"))
    expected = run_hashlib(root)
    for r in range(repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            digests = run(root)
            elapsed = time.perf_counter() - start
            check_same(name, digests, expected)
            best[name] = min(best[name], elapsed)
            log(f"  round {r + 1}/{repeat}: {name:<14} {elapsed:8.3f} s")
    return best


def cached_times(root: Path, tmp: Path, repeat: int) -> dict[str, float]:
    """Best cold hash_release with a fresh DigestCache, and best re-hash trusting that cache."""
    cold = cached = float("inf")
    for r in range(repeat):
        cache = DigestCache(tmp / f"cache-{r}.sqlite3")
        try:
            start = time.perf_counter()
            first = hash_release(root, cache=cache)
            mid = time.perf_counter()
            second = hash_release(root, cache=cache, trust_cache=True)
            end = time.perf_counter()
        finally:
            cache.close()
        if first.root != second.root:
            raise AssertionError("cached re-hash gave a different root digest")
        cold, cached = min(cold, mid - start), min(cached, end - mid)
        log(
            f"  round {r + 1}/{repeat}: cold {mid - start:.3f} s, cached {(end - mid) * 1e3:.1f} ms"
        )
    return {"cold": cold, "cached": cached}


def blake3_times(root: Path, repeat: int) -> dict[str, float]:
    """Scenario c: one large file with BLAKE3, modelseal (every core) against one thread."""
    import blake3

    (path,) = list_files(root)
    best = {"modelseal_blake3": float("inf"), "blake3_1thread": float("inf")}
    for r in range(repeat):
        start = time.perf_counter()
        ours = hash_release(root, algorithm="blake3").files[0].digest
        mid = time.perf_counter()
        ref = blake3.blake3()
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(8 * MiB):
                ref.update(chunk)
        end = time.perf_counter()
        if ours != ref.hexdigest():
            raise AssertionError("modelseal's blake3 digest differs from the reference")
        best["modelseal_blake3"] = min(best["modelseal_blake3"], mid - start)
        best["blake3_1thread"] = min(best["blake3_1thread"], end - mid)
        log(
            f"  round {r + 1}/{repeat}: blake3 all cores {mid - start:.3f} s, "
            f"1 thread {end - mid:.3f} s"
        )
    return best


def run_scenario(label: str, root: Path, repeat: int, targets: dict[str, float]) -> dict[str, Any]:
    files = list_files(root)
    total = sum(p.stat().st_size for p in files)
    log(f"scenario {label}: warming the page cache ({len(files)} files, {total / MiB:.0f} MiB)")
    warm(files)
    busy = busy_cpus()
    if busy is not None and busy > 0.2:
        log(f"  WARNING: other processes keep {busy:.1f} CPUs busy; the timings will be skewed")
    runners: dict[str, Callable[[Path], Digests]] = {
        "modelseal": run_modelseal,
        "hashlib": run_hashlib,
    }
    if model_signing is not None:
        runners["model_signing"] = run_model_signing
    times = best_times(root, runners, repeat)
    ratios = []  # anchor_time / modelseal_time: how many times faster modelseal is
    for anchor in times.keys() - {"modelseal"}:
        ratio = times[anchor] / times["modelseal"]
        target = targets.get(anchor)
        met = None if target is None else ratio >= target
        ratios.append({"anchor": anchor, "ratio": ratio, "target": target, "met": met})
    ratios.sort(key=lambda r: r["anchor"])
    return {
        "files": len(files),
        "bytes": total,
        "busy_cpus": busy,
        "times_s": times,
        "ratios": ratios,
    }


def report(results: dict[str, Any]) -> None:
    print(f"modelseal hash benchmark: {results['cpus']} CPUs, jobs={results['jobs']}, warm cache")
    for label in ("a", "b", "c"):
        if label not in results:
            continue
        res = results[label]
        print(f"\nscenario {label}: {res['files']} files, {res['bytes'] / MiB:.0f} MiB")
        if res["busy_cpus"] is not None and res["busy_cpus"] > 0.2:
            print(f"  WARNING: {res['busy_cpus']:.1f} CPUs were busy with other work before timing")
        for name, t in res["times_s"].items():
            print(f"  {name:<14} {t:8.3f} s  {res['bytes'] / t / MiB:8.0f} MiB/s")
        for r in res["ratios"]:
            line = f"  {r['anchor']}_time / modelseal_time = {r['ratio']:.2f}x"
            if r["target"] is not None:
                line += f"  (target >= {r['target']:.1f}x: {'met' if r['met'] else 'MISSED'})"
            print(line)
    if "c_blake3" in results:
        t = results["c_blake3"]
        print(
            f"\nscenario c, --algorithm blake3: modelseal {t['modelseal_blake3']:.3f} s, "
            f"single-thread blake3 {t['blake3_1thread']:.3f} s = "
            f"{t['blake3_1thread'] / t['modelseal_blake3']:.2f}x (every core on one file)"
        )
    if "cached" in results:
        c = results["cached"]
        verdict = "met" if c["met"] else "MISSED"
        print(
            f"\nscenario a, cached re-hash: cold {c['cold_s']:.3f} s, cached {c['cached_s']:.4f} s"
        )
        print(f"  cached_time / cold_time = {c['percent']:.2f}%  (target <= 5%: {verdict})")
    if model_signing is None:
        print("\nmodel-signing anchor skipped (not installed)")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", help="parent of the temporary directory (default: system temp)")
    p.add_argument("--scenario", choices=("a", "b", "c", "all"), default="all")
    p.add_argument("--large-count", type=int, default=8, help="scenario a: number of files")
    p.add_argument("--large-mb", type=int, default=256, help="scenario a: MiB per file")
    p.add_argument("--small-count", type=int, default=10_000, help="scenario b: number of files")
    p.add_argument("--small-kb", type=int, default=4, help="scenario b: KiB per file")
    p.add_argument("--single-mb", type=int, default=2048, help="scenario c: MiB in one file")
    p.add_argument("--repeat", type=int, default=3, help="rounds per tool; the best is kept")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args()
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    if model_signing is None:
        log(
            "model-signing is not installed, so that anchor is skipped; install it with\n"
            "    pip install -e '.[bench]'    (model-signing==1.1.1 and pyOpenSSL)"
        )
    tmp = Path(tempfile.mkdtemp(prefix="modelseal-bench-", dir=args.dir))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "jobs": default_jobs()}
    try:
        if args.scenario in ("a", "all"):
            log(f"building scenario a in {tmp / 'a'}")
            build_large(tmp / "a", args.large_count, args.large_mb)
            results["a"] = run_scenario(
                "a", tmp / "a", args.repeat, {"hashlib": 1.8, "model_signing": 1.0}
            )
            log("scenario a: cold vs cached re-hash")
            cc = cached_times(tmp / "a", tmp, args.repeat)
            pct = 100 * cc["cached"] / cc["cold"]
            results["cached"] = {
                "cold_s": cc["cold"], "cached_s": cc["cached"], "percent": pct, "met": pct <= 5
            }  # fmt: skip
        if args.scenario in ("b", "all"):
            log(f"building scenario b in {tmp / 'b'}")
            build_small(tmp / "b", args.small_count, args.small_kb)
            results["b"] = run_scenario("b", tmp / "b", args.repeat, {"model_signing": 2.0})
        if args.scenario in ("c", "all"):
            log(f"building scenario c in {tmp / 'c'}")
            build_large(tmp / "c", 1, args.single_mb)
            results["c"] = run_scenario("c", tmp / "c", args.repeat, {})
            results["c_blake3"] = blake3_times(tmp / "c", args.repeat)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        log(f"removing {tmp}")
        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)
    met = [r["met"] for s in ("a", "b", "c") if s in results for r in results[s]["ratios"]]
    met = [m for m in met if m is not None]
    met += [results["cached"]["met"]] if "cached" in results else []
    return 1 if args.strict and not all(met) else 0


if __name__ == "__main__":
    sys.exit(main())
