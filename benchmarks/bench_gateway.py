"""Benchmark: the modelseal gateway against the LiteLLM proxy and direct calls, in the same run.

Everything runs on loopback, each in a process of its own, against the same fast fake upstream
(``_fast_upstream.py``: a raw asyncio HTTP/1.1 server answering a fixed small chat completion at
once), driven by the same load generator (``_loadgen.py``: raw asyncio keep-alive connections, one
per simulated client, per-request ``perf_counter`` latency):

- ``direct``: the load generator calls the fake upstream itself;
- ``modelseal``: ``modelseal gateway`` (the real CLI) on a freshly sealed tiny release, default
  guards (size, secrets, PII, the trained classifiers, leak) on input and output, extraction
  statistics on, one API key with generous limits and a
  parameter policy, audit log on, signed receipts on;
- ``litellm``: the LiteLLM proxy CLI (``litellm[proxy]``, pinned below) with one model routed to
  the fake upstream as an OpenAI-compatible provider (``api_base``), a master key, its built-in
  ``litellm_content_filter`` guardrail on pre and post call with the patterns closest to
  modelseal's defaults, one worker, no database, message logging off.

Measured: (a) the maximum requests/s at each ``--levels`` concurrency (closed loop: each client
sends its next request as soon as the answer is in, ``--seconds`` after ``--warmup``), with the
server's CPU time per request; (b) latency p50/p99 at ``--clients`` clients under a fixed offered
load (open loop, scheduled send times, so queueing is not hidden): at ``--rate`` req/s for the
systems that can carry it, and, when a system saturates below ``--rate / 0.6``, at a common lower
rate (half the weakest system's maximum) for all three. The added latency of a proxy is its
p50/p99 minus direct's at the same rate. Every non-200 answer is counted and printed.

LiteLLM lives in its own virtual environment (created on first use, reused after:
``--litellm-venv``, default ``.cache/bench-litellm``) so its pinned dependencies never touch the
project's. Nothing needs the network at run time once that venv exists.

Run: ``python benchmarks/bench_gateway.py [--seconds 5] [--levels 1,10,50] [--rate 150]
[--systems direct,modelseal,litellm] [--json] [--strict] [--profile]``. Progress goes to
stderr, the report to stdout, the results as JSON to ``bench-out/bench_gateway.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# litellm 1.108.0 is the newest release whose [proxy] extra resolves from PyPI here: later ones
# pin litellm-proxy-extras / litellm-enterprise releases (or a litellm-proxy package) that PyPI
# does not serve. Never 1.107.0 (a compromised release, withdrawn).
LITELLM_SPEC = "litellm[proxy]==1.108.0"
DEFAULT_LITELLM_VENV = REPO / ".cache" / "bench-litellm"
MODEL = "bench-model"
SYSTEMS = ("direct", "modelseal", "litellm")
PASSPHRASE = "bench-gateway passphrase"
LITELLM_MASTER_KEY = "sk-bench-master-key"
# the request every system gets: a small, realistic chat request that no guard objects to
REQUEST = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
        {"role": "user", "content": "Write one short sentence about the sea at night."},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}
# a request each guard configuration must refuse (checked once, before measuring)
BLOCKED_REQUEST = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "My SSN is 123-45-6789, please remember it."}],
}
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_THROUGHPUT_RATIO = 2.0
# modelseal's default guards and their nearest LiteLLM content-filter equivalents
MODELSEAL_GUARDS = (
    "defaults: size, secrets, pii (cards/IBAN/SSN block; email/phone flag), the trained "
    "injection, harm and harm_output classifiers, leak; extraction statistics on"
)
LITELLM_PATTERNS = [
    ("us_ssn", "BLOCK"),
    ("credit_card", "BLOCK"),
    ("iban", "BLOCK"),
    ("aws_access_key", "BLOCK"),
    ("github_token", "BLOCK"),
    ("slack_token", "BLOCK"),
    ("generic_api_key", "BLOCK"),
    ("email", "MASK"),
    ("us_phone", "MASK"),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- processes -----------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ready_path: str = "/"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float | None:
        """user + system CPU time of the service's process (children not included)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    name: str, cmd: list[str], log_path: Path, port: int, env: dict[str, str] | None = None
) -> Service:
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, cwd=log_path.parent,
        )  # fmt: skip
    return Service(name, proc, port, log_path)


def http(
    url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One plain request (setup and checks only, never timed)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def wait_ready(svc: Service, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if svc.proc.poll() is not None:
            raise RuntimeError(
                f"{svc.name} exited with code {svc.proc.returncode}:\n{svc.log_tail()}"
            )
        try:
            status, _, body = http(svc.url + path)
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise RuntimeError(f"{svc.name} not ready after {timeout:.0f} s ({last}):\n{svc.log_tail()}")


# --- the systems ---------------------------------------------------------------------------


def start_upstream(tmp: Path) -> Service:
    log_path = tmp / "upstream.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "_fast_upstream.py"), "--port", "0", "--model", MODEL],
            stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = re.match(r"listening on (\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"the fake upstream did not start: {line!r}")
    svc = Service("upstream", proc, int(match.group(1)), log_path)
    wait_ready(svc, "/v1/models", 10)
    return svc


def write_safetensors(path: Path) -> None:
    """A tiny valid safetensors file (one 8 x 8 float32 tensor), written by hand."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [8, 8], "data_offsets": [0, 256]}})
    raw = header.encode()
    raw += b" " * (-len(raw) % 8)
    data = struct.pack("<64f", *range(64))
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def modelseal_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("modelseal")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("modelseal")
    if found:
        return [found]
    return [sys.executable, "-c", "from modelseal._cli.main import run; run()"]


def start_modelseal(tmp: Path, upstream: Service) -> Service:
    base = tmp / "modelseal"
    home, release = base / "home", base / "release"
    release.mkdir(parents=True)
    write_safetensors(release / "model.safetensors")
    (release / "config.json").write_text(json.dumps({"architectures": ["Tiny"]}))
    (release / "README.md").write_text("---\nlicense: apache-2.0\n---\n# bench-gateway\n")
    bundle = base / "release.seal.json"
    env = dict(os.environ, MODELSEAL_PASSPHRASE=PASSPHRASE, MODELSEAL_HOME=str(home))
    env.pop("MODELSEAL_ADMIN_TOKEN", None)
    ms = modelseal_cmd()

    def cli(*args: str) -> str:
        done = subprocess.run([*ms, *args], env=env, capture_output=True, text=True, cwd=base)
        if done.returncode != 0:
            raise RuntimeError(
                f"modelseal {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return done.stdout

    log("modelseal: sealing a tiny release (init, certify)")
    cli("init", "--home", str(home))
    cli("certify", str(release), "-o", str(bundle), "--home", str(home))
    out = cli("gateway", "--new-key", "bench")
    secret = re.search(r"^\s+(msk-\S+)\s*$", out, re.M)
    key_hash = re.search(r"sha256:[0-9a-f]{64}", out)
    if not secret or not key_hash:
        raise RuntimeError(f"cannot read the key from `modelseal gateway --new-key`:\n{out}")
    config = {
        "model": {"id": MODEL},
        "checks": {"trust": str(home / "trust")},
        "auth": {
            "keys": [
                {
                    "id": "bench",
                    "hash": key_hash.group(0),
                    "requests_per_minute": 100_000_000,
                    "tokens_per_minute": 10_000_000_000,
                    "policy": {"max_tokens": 256, "max_n": 1, "logit_bias": "refuse"},
                }
            ]
        },
        "audit": {"path": str(base / "audit.db")},
        "receipts": {"key": str(base / "receipt.key")},
    }
    config_path = base / "gateway.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    cmd = [*ms, "gateway", "--upstream", upstream.url, "--release", str(release),
           "--bundle", str(bundle), "--config", str(config_path), "--port", str(port),
           "--home", str(home)]  # fmt: skip
    svc = start("modelseal", cmd, base / "gateway.log", port, env)
    svc.extra = {"auth": f"Bearer {secret.group(1)}", "audit": base / "audit.db", "env": env,
                 "cmd": ms}  # fmt: skip
    wait_ready(svc, "/readyz", 60)
    return svc


def ensure_litellm(venv: Path, install: bool) -> Path:
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    if not install:
        raise RuntimeError(f"LiteLLM not found in {venv} (run without --no-install)")
    log(f"creating the LiteLLM venv {venv} ({LITELLM_SPEC}); a few minutes, once")
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", LITELLM_SPEC],
        check=True,
    )  # fmt: skip
    return exe


def litellm_version(venv: Path) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip() or "unknown"


def litellm_has_content_filter(venv: Path) -> bool:
    lib = venv / "lib"
    return any(lib.glob("python3*/site-packages/litellm/proxy/guardrails/guardrail_hooks/"
                        "litellm_content_filter/__init__.py"))  # fmt: skip


def start_litellm(tmp: Path, upstream: Service, venv: Path, exe: Path, guard: bool) -> Service:
    base = tmp / "litellm"
    base.mkdir()
    config: dict[str, Any] = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream.url + "/v1",
                    "api_key": "bench-upstream-key",
                },
            }
        ],
        "litellm_settings": {"turn_off_message_logging": True, "set_verbose": False},
        "general_settings": {"master_key": LITELLM_MASTER_KEY, "disable_spend_logs": True},
    }
    guard_desc = "none"
    if guard and litellm_has_content_filter(venv):
        config["guardrails"] = [
            {
                "guardrail_name": "bench-content-filter",
                "litellm_params": {
                    "guardrail": "litellm_content_filter",
                    "mode": ["pre_call", "post_call"],
                    "default_on": True,
                    "patterns": [
                        {"pattern_type": "prebuilt", "pattern_name": name, "action": action}
                        for name, action in LITELLM_PATTERNS
                    ],
                },
            }
        ]
        guard_desc = "litellm_content_filter pre_call+post_call, default_on: " + ", ".join(
            f"{n}={a}" for n, a in LITELLM_PATTERNS
        )
    elif guard:
        guard_desc = "none (this LiteLLM has no litellm_content_filter guardrail)"
    config_path = base / "config.yaml"
    config_path.write_text(json.dumps(config, indent=2))
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("LITELLM_", "OPENAI_", "DATABASE_URL")):
            env.pop(name)
    env.update(
        LITELLM_LOG="ERROR",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the cost map at start
        LITELLM_TELEMETRY="False",
        NO_DOCS="True",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    cmd = [str(exe), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", "1"]  # fmt: skip
    svc = start("litellm", cmd, base / "litellm.log", port, env)
    svc.extra = {"auth": f"Bearer {LITELLM_MASTER_KEY}", "guard": guard_desc}
    wait_ready(svc, "/health/liveliness", 180)
    return svc


def check_system(name: str, svc: Service, auth: str | None) -> dict[str, Any]:
    """One allowed and one guarded request before measuring: the setup is what it claims."""
    headers = {"authorization": auth} if auth else {}
    status, hdrs, body = http(svc.url + "/v1/chat/completions", REQUEST, headers)
    if status != 200:
        raise RuntimeError(f"{name}: the benchmark request got {status}: {body[:500]!r}")
    info: dict[str, Any] = {"ok_status": status}
    if name == "modelseal":
        info["receipt"] = "x-modelseal-receipt" in hdrs
        if not info["receipt"]:
            raise RuntimeError("modelseal: the answer carries no x-modelseal-receipt header")
    if name != "direct":
        status, _, body = http(svc.url + "/v1/chat/completions", BLOCKED_REQUEST, headers)
        info["blocked_status"] = status
        info["blocked_answer"] = body[:300].decode("utf-8", "replace")
        status_bad, _, _ = http(svc.url + "/v1/chat/completions", REQUEST, {})
        info["no_key_status"] = status_bad
    return info


def verify_audit(svc: Service) -> str:
    """``modelseal gateway --verify-audit`` on the log the run wrote (after the gateway stopped)."""
    done = subprocess.run(
        [*svc.extra["cmd"], "gateway", "--verify-audit", str(svc.extra["audit"])],
        env=svc.extra["env"], capture_output=True, text=True,
    )  # fmt: skip
    return (done.stdout + done.stderr).strip()


# --- load ----------------------------------------------------------------------------------


def loadgen(
    svc: Service, auth: str | None, body_file: Path, clients: int, mode: str,
    seconds: float, warmup: float, rate: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    cmd = [sys.executable, str(HERE / "_loadgen.py"), "--port", str(svc.port),
           "--body-file", str(body_file), "--clients", str(clients), "--mode", mode,
           "--seconds", str(seconds), "--warmup", str(warmup)]  # fmt: skip
    if auth:
        cmd += ["--header", f"authorization: {auth}"]
    if mode == "open":
        cmd += ["--rate", str(rate)]
    cpu0 = svc.cpu_seconds()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 120)
    cpu1 = svc.cpu_seconds()
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed on {svc.name}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if cpu0 is not None and cpu1 is not None:
        result["server_cpu_s"] = cpu1 - cpu0
    return result


def busy_cpus(seconds: float = 1.0) -> float | None:
    """How many CPUs other processes keep busy now (from /proc/stat; None where unavailable)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / max(1, total1 - total0))


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def profile_run(
    svc: Service, auth: str | None, body_file: Path, clients: int, seconds: float, out: Path
) -> dict[str, Any]:  # the raw py-spy samples are kept in ``out``
    """py-spy on the gateway during one closed-loop run: the hottest functions.

    Only samples of the thread holding the GIL count (``--gil``): a one-process asyncio server
    is bound by the GIL, and idle threads waiting on a queue are not mistaken for busy ones.
    """
    spy = py_spy()
    if spy is None:
        return {"skipped": "py-spy not found (pip install py-spy into any venv on PATH)"}
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "bench_gateway.pyspy.txt"
    rec = subprocess.Popen(
        [spy, "record", "-p", str(svc.proc.pid), "-d", str(int(seconds + 2)), "-r", "250",
         "--gil", "-f", "raw", "-o", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(0.5)
    loadgen(svc, auth, body_file, clients, "closed", seconds, 0.5)
    _, err = rec.communicate(timeout=seconds + 30)
    if rec.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed: {err.decode(errors='replace')[-500:]}"}
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in {_LINE.sub(")", f) for f in frames}:  # per function, not per line
            incl[frame] += n
    return {
        "samples": total,
        "clients": clients,
        "raw": str(raw),
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(15)],
        "inclusive": [
            (f, round(100 * n / total, 1))
            for f, n in incl.most_common()
            if _PROFILE_FILES.search(f) or any(k in f for k in _PROFILE_FRAMES)
        ][:25],
    }


_LINE = re.compile(r":\d+\)$")
# the parts of the gateway worth naming in a profile: its own modules (not the CLI wrapper) and
# the HTTP client, server and framework layers it sits on
_PROFILE_FILES = re.compile(r"modelseal/(guard/|gateway/(?!app\.py))")
_PROFILE_FRAMES = (
    "AsyncClient.post",
    "_assign_requests_to_connections",
    "has_expired",
    "Thread._bootstrap (",
    "RequestResponseCycle.run_asgi",
    "H11Protocol.data_received",
    "RequestResponseCycle.send",
    "Response.__call__",
    "request_response.<locals>.app (",
    "Starlette.__call__",
)


# --- report --------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".2f") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return format(value, spec)


def errors_of(result: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in result.get("statuses", {}).items() if k != "200"}


def report(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    systems = results["systems"]
    lines.append(
        f"gateway benchmark: loopback, fake upstream, {results['machine']['cpus']} CPUs, "
        f"busy by others before start: {fmt(results['machine'].get('busy_cpus_before'))} CPUs"
    )
    for name, setup in results["setup"].items():
        lines.append(f"  {name:<10} {setup['describe']}")
        if "error" in setup:
            lines.append(f"             error: {setup['error'][-1500:]}")
        checks = setup.get("checks", {})
        if "blocked_status" in checks:
            lines.append(
                f"             check: SSN in the prompt -> {checks['blocked_status']}; "
                f"no key -> {checks['no_key_status']}"
                + (f"; audit after the run: {setup['audit']}" if "audit" in setup else "")
            )
    lines.append("")
    lines.append(
        f"(a) maximum throughput, closed loop, {results['params']['seconds']} s after "
        f"{results['params']['warmup']} s warm-up (req/s; server CPU ms per request)"
    )
    head = f"{'clients':>7}" + "".join(f" {n:>22}" for n in systems)
    if "modelseal" in systems and "litellm" in systems:
        head += f" {'modelseal/litellm':>18}"
    lines.append(head)
    for level in results["params"]["levels"]:
        row = f"{level:>7}"
        for name in systems:
            r = results["closed"][name].get(str(level))
            if r is None:
                row += f" {'-':>22}"
                continue
            cpu = r.get("cpu_ms_per_request")
            cell = f"{r['ok_rps']:.0f}" + (f" ({cpu:.2f} ms)" if cpu is not None else "")
            if errors_of(r):
                cell += " ERR"
            row += f" {cell:>22}"
        ratio = results["ratios"].get(str(level))
        if "modelseal" in systems and "litellm" in systems:
            row += f" {fmt(ratio, '.2f') + 'x':>18}"
        lines.append(row)
    lines.append("")
    for run in results["open"]:
        lines.append(
            f"(b) latency, open loop, {run['clients']} clients, offered {run['rate']:.0f} req/s "
            f"for {results['params']['latency_seconds']} s ({run['why']})"
        )
        lines.append(
            f"  {'system':<10} {'ok/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
            f"{'added p50':>10} {'added p99':>10} {'late':>6}  errors"
        )
        for name, r in run["systems"].items():
            if "skipped" in r:
                lines.append(f"  {name:<10} skipped: {r['skipped']}")
                continue
            lat = r["latency_ms"]
            added = r.get("added_ms", {})
            lines.append(
                f"  {name:<10} {r['ok_rps']:>7.1f} {lat['p50']:>8.3f} {lat['p99']:>8.3f} "
                f"{lat['max']:>8.2f} {fmt(added.get('p50'), '+.3f'):>10} "
                f"{fmt(added.get('p99'), '+.3f'):>10} {r['late_sends']:>6}  "
                f"{errors_of(r) or 'none'}"
            )
        lines.append("")
    errors = results["errors"]
    if errors:
        lines.append("NON-200 ANSWERS (the numbers above are not valid for these):")
        for name, counts in errors.items():
            lines.append(f"  {name}: {counts}; e.g. {results['error_samples'].get(name, '')}")
        lines.append("")
    lines.append("targets:")
    for text, ok in results["targets"]:
        lines.append(f"  {'met   ' if ok else ('MISSED' if ok is False else 'n/a   ')} {text}")
    prof = results.get("profile")
    if prof:
        lines.append("")
        if "skipped" in prof:
            lines.append(f"profile: {prof['skipped']}")
        else:
            lines.append(
                f"profile of the modelseal gateway, {prof['clients']} clients closed loop "
                f"(py-spy --gil: share of the time the GIL is held; {prof['samples']} samples):"
            )
            lines.append("  hottest (self):")
            lines += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["self"]]
            lines.append("  inclusive (gateway, HTTP client and server layers):")
            lines += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["inclusive"]]
    return lines


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None]]:
    out: list[tuple[str, bool | None]] = []
    systems = results["systems"]
    if "modelseal" in systems and "direct" in systems:
        for run in results["open"]:
            r = run["systems"].get("modelseal", {})
            where = f"{run['clients']} clients, {run['rate']:.0f} req/s"
            if "skipped" in r:
                out.append((f"modelseal added latency at {where}: {r['skipped']}", False))
                continue
            added = r.get("added_ms") or {}
            judged = run.get("why") == "--rate"
            for q, limit in (("p50", TARGET_ADDED_P50_MS), ("p99", TARGET_ADDED_P99_MS)):
                value = added.get(q)
                if not judged:  # the slower common rate exists to compare with LiteLLM
                    out.append((
                        f"modelseal added {q} at {where} (the rate every system carries, for "
                        f"the comparison; targets are judged at --rate): {fmt(value, '.3f')} ms",
                        None,
                    ))  # fmt: skip
                    continue
                out.append((
                    f"modelseal added {q} <= {limit} ms at {where}: {fmt(value, '.3f')} ms",
                    None if value is None else value <= limit,
                ))  # fmt: skip
    if "modelseal" in systems and "litellm" in systems:
        for level, ratio in results["ratios"].items():
            out.append((
                f"modelseal >= {TARGET_THROUGHPUT_RATIO:.0f}x LiteLLM throughput at {level} "
                f"clients: {fmt(ratio, '.2f')}x",
                None if ratio is None else ratio >= TARGET_THROUGHPUT_RATIO,
            ))  # fmt: skip
    out.append(("every answer was 200", not results["errors"]))
    return out


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="closed-loop measured window")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up before each window")
    p.add_argument("--levels", default="1,10,50", help="closed-loop client counts")
    p.add_argument("--clients", type=int, default=50, help="open-loop clients")
    p.add_argument("--rate", type=float, default=150.0, help="open-loop offered req/s (total)")
    p.add_argument("--latency-seconds", type=float, default=20.0, help="open-loop window")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="any of " + ",".join(SYSTEMS))
    p.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV)
    p.add_argument("--no-install", action="store_true", help="never create the LiteLLM venv")
    p.add_argument("--litellm-no-guard", action="store_true", help="LiteLLM without guardrail")
    p.add_argument("--profile", action="store_true", help="py-spy the gateway (50 clients)")
    p.add_argument("--out", type=Path, default=REPO / "bench-out" / "bench_gateway.json")
    p.add_argument("--json", action="store_true", help="print the JSON results on stdout")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    args.levels = [int(x) for x in str(args.levels).split(",") if x.strip()]
    args.systems = [s.strip() for s in str(args.systems).split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")
    args.systems = [s for s in SYSTEMS if s in args.systems]
    return args


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "systems": [],
        "params": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "levels": args.levels,
            "clients": args.clients,
            "rate": args.rate,
            "latency_seconds": args.latency_seconds,
        },
        "machine": {"cpus": os.cpu_count(), "busy_cpus_before": busy_cpus()},
        "setup": {},
        "closed": {},
        "open": [],
    }
    busy = results["machine"]["busy_cpus_before"]
    if busy is not None and busy > 0.2:
        log(f"warning: other processes keep {busy:.2f} CPUs busy; expect noisy numbers")
    body_file = tmp / "request.json"
    body_file.write_text(json.dumps(REQUEST))
    services: dict[str, Service] = {}
    auth: dict[str, str | None] = {"direct": None}
    try:
        log("starting the fake upstream")
        upstream = start_upstream(tmp)
        services["upstream"] = upstream
        for name in args.systems:
            try:
                if name == "direct":
                    svc = upstream
                    desc = f"the fake upstream itself ({upstream.url})"
                elif name == "modelseal":
                    svc = start_modelseal(tmp, upstream)
                    desc = (f"`modelseal gateway` CLI; guards {MODELSEAL_GUARDS}; 1 API key with "
                            "limits + parameter policy; audit log on; receipts on")  # fmt: skip
                else:
                    venv = args.litellm_venv.resolve()
                    exe = ensure_litellm(venv, not args.no_install)
                    log("starting the LiteLLM proxy (its start-up takes a while)")
                    svc = start_litellm(tmp, upstream, venv, exe, not args.litellm_no_guard)
                    desc = (f"LiteLLM {litellm_version(venv)} proxy CLI, 1 worker, master key, "
                            f"no DB; guard: {svc.extra['guard']}")  # fmt: skip
                services[name] = svc
                auth[name] = svc.extra.get("auth")
                info = check_system(name, svc, auth[name])
                results["setup"][name] = {"describe": desc, "checks": info}
                results["systems"].append(name)
                if name != "direct":
                    log(f"  {name}: ok; a request with an SSN got {info['blocked_status']}, "
                        f"one without a key got {info['no_key_status']}")  # fmt: skip
            except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                log(f"{name}: could not be set up: {exc}")
                results["setup"][name] = {"describe": "FAILED", "error": str(exc)}
                if name in services and services[name] is not upstream:
                    services.pop(name).stop()
        systems = results["systems"]
        # (a) closed loop, round-robin over the systems at each level
        for name in systems:
            results["closed"][name] = {}
        for level in args.levels:
            for name in systems:
                svc = services[name]
                log(f"closed loop: {name}, {level} clients, {args.seconds} s")
                r = loadgen(svc, auth[name], body_file, level, "closed", args.seconds, args.warmup)
                if "server_cpu_s" in r and r["total_count"] and name != "direct":
                    # the server's CPU time over the whole run, per answer (warm-up included)
                    r["cpu_ms_per_request"] = r["server_cpu_s"] * 1000 / r["total_count"]
                results["closed"][name][str(level)] = r
        ratios: dict[str, float | None] = {}
        if "modelseal" in systems and "litellm" in systems:
            for level in args.levels:
                ms = results["closed"]["modelseal"][str(level)]["ok_rps"]
                ll = results["closed"]["litellm"][str(level)]["ok_rps"]
                ratios[str(level)] = ms / ll if ll else None
        results["ratios"] = ratios
        # (b) open loop at a fixed offered load
        top = max(args.levels) if args.levels else None
        capacity = {name: results["closed"][name][str(top)]["ok_rps"] for name in systems if top}
        rates: list[tuple[float, str, list[str]]] = []
        fit = [n for n in systems if capacity.get(n, float("inf")) * 0.6 >= args.rate]
        slow = [n for n in systems if n not in fit]
        rates.append((args.rate, "--rate", fit))
        if slow:
            common = max(1.0, round(0.5 * min(capacity[n] for n in slow)))
            rates.append((common, f"half of {'/'.join(slow)}'s maximum", systems))
        for rate, why, names in rates:
            run_: dict[str, Any] = {"rate": rate, "clients": args.clients, "why": why,
                                    "systems": {}}  # fmt: skip
            for name in systems:
                if name not in names:
                    run_["systems"][name] = {
                        "skipped": f"saturates below {rate / 0.6:.0f} req/s "
                        f"(max {capacity[name]:.0f} req/s at {top} clients)"
                    }
                    continue
                log(f"open loop: {name}, {args.clients} clients, {rate:.0f} req/s")
                r = loadgen(services[name], auth[name], body_file, args.clients, "open",
                            args.latency_seconds, 2.0, rate)  # fmt: skip
                run_["systems"][name] = r
            base = run_["systems"].get("direct", {}).get("latency_ms")
            for name, r in run_["systems"].items():
                if base and "latency_ms" in r and name != "direct":
                    r["added_ms"] = {q: r["latency_ms"][q] - base[q] for q in ("p50", "p99")}
            results["open"].append(run_)
        if args.profile and "modelseal" in systems:
            log("profiling the modelseal gateway with py-spy")
            results["profile"] = profile_run(
                services["modelseal"], auth["modelseal"], body_file, args.clients,
                args.seconds, args.out.parent,
            )  # fmt: skip
        for name in systems:
            if name != "direct" and services[name].proc.poll() is not None:
                log(f"warning: {name} exited during the run:\n{services[name].log_tail()}")
    finally:
        stopped: set[int] = set()
        for svc in list(services.values())[::-1]:
            if id(svc) not in stopped:
                stopped.add(id(svc))
                svc.stop()
    if "modelseal" in services:
        results["setup"]["modelseal"]["audit"] = verify_audit(services["modelseal"])
    errors: dict[str, Counter[str]] = {}
    samples: dict[str, str] = {}
    runs = [(n, r) for n, by in results["closed"].items() for r in by.values()]
    runs += [(n, r) for o in results["open"] for n, r in o["systems"].items()]
    for name, r in runs:
        for status, count in errors_of(r).items():
            errors.setdefault(name, Counter())[status] += count
        for status, text in r.get("error_samples", {}).items():
            samples.setdefault(name, f"{status}: {text[:300]}")
    results["errors"] = {k: dict(v) for k, v in errors.items()}
    results["error_samples"] = samples
    results["targets"] = targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    try:
        results = run(args, tmp)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print("\n".join(report(results)))
        print(f"\nresults: {args.out}")
    failed = [n for n, setup in results["setup"].items() if "error" in setup]
    if results["errors"] or failed or not results["systems"]:
        return 1
    if args.strict and any(ok is False for _, ok in results["targets"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
