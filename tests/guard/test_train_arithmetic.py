"""``make train-guards`` pins its float arithmetic (``train_guards.PINNED``) so the weights do not
depend on the CPU: the pins reach every library, the script re-runs itself with them exactly
once, and under them a training run ignores the knobs that otherwise change its rounding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import guard_encoder as ge
import train_guards as tg

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

# A few steps of a BERT-sized block (matrix products, GELU, LayerNorm, softmax, dropout, AdamW)
# and numpy's exp / log / SVD, hashed; plus what each library says it runs.
CHILD = """
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import threadpoolctl
import torch
import guard_encoder as enc
from numpy._core._multiarray_umath import __cpu_features__

enc.deterministic(0, 1)
x = torch.randn(32, 16, 384)
net = torch.nn.Sequential(
    torch.nn.Linear(384, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 384), torch.nn.LayerNorm(384)
)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
for _ in range(12):
    h = net(torch.nn.functional.dropout(x, 0.1, True))
    attention = torch.softmax(h @ h.transpose(1, 2) / 20, -1)
    loss = attention.pow(2).sum() + torch.logsumexp(h, -1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
grid = np.exp(np.linspace(-3, 3, 4096).reshape(64, 64))
grid = grid @ np.log1p(np.arange(4096.0).reshape(64, 64))
digest = hashlib.sha256(np.linalg.svd(grid)[1].tobytes())
for p in net.parameters():
    digest.update(p.detach().numpy().tobytes())
blas = {
    i["architecture"]
    for i in threadpoolctl.threadpool_info()
    if i.get("internal_api") == "openblas"
}
print(json.dumps({
    "digest": digest.hexdigest(),
    "aten": torch.backends.cpu.get_cpu_capability(),
    "mkldnn": torch.backends.mkldnn.enabled,
    "numpy_x86_v3": __cpu_features__.get("X86_V3", False),
    "openblas": sorted(blas),
    "arithmetic": enc.arithmetic(),
}))
"""

# What differs between CPUs, as far as one machine can say: the ISA each library may use.
CPU_KNOBS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def _clean_env() -> dict[str, str]:
    pins = tg.pinned_environment({})
    return {k: v for k, v in os.environ.items() if k not in pins and k not in CPU_KNOBS}


def _child(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(SCRIPTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_pinned_environment_sets_every_library_and_keeps_the_rest() -> None:
    env = tg.pinned_environment({"HOME": "/h", "ATEN_CPU_CAPABILITY": "avx512"})
    assert env["HOME"] == "/h"
    assert env["ATEN_CPU_CAPABILITY"] == "default"  # a caller's choice is overridden
    assert env["MKL_CBWR"] == "COMPATIBLE"
    assert env["OPENBLAS_CORETYPE"] == "Nehalem"
    assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert "X86_V3" in env["NPY_DISABLE_CPU_FEATURES"].split()
    assert env[ge.ARITHMETIC_ENV] == tg.PINNED


def test_the_script_runs_itself_again_once_with_the_pins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def execve(path: str, args: list[str], env: dict[str, str]) -> None:
        calls.append((path, args, env))

    monkeypatch.setattr(os, "execve", execve)
    for k in tg.pinned_environment({}):
        monkeypatch.delenv(k, raising=False)
    tg._pin_arithmetic(["--only", "harm"])
    assert len(calls) == 1
    path, args, env = calls[0]
    assert path == sys.executable
    assert args[1:] == [str(SCRIPTS / "train_guards.py"), "--only", "harm"]
    assert env == tg.pinned_environment(dict(os.environ))
    # already pinned (the re-run itself): no second run
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    tg._pin_arithmetic(["--only", "harm"])
    assert len(calls) == 1


def test_cache_keys_differ_between_native_and_pinned_arithmetic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ge.ARITHMETIC_ENV, raising=False)
    native = ge._cache_file("", [1, 2], ["a text"], [1], [1.0])
    monkeypatch.setenv(ge.ARITHMETIC_ENV, tg.PINNED)
    pinned = ge._cache_file("", [1, 2], ["a text"], [1], [1.0])
    assert native != pinned
    assert pinned == ge._cache_file("", [1, 2], ["a text"], [1], [1.0])


def test_pinned_training_runs_the_pinned_kernels_whatever_the_cpu_knobs() -> None:
    base = _clean_env()
    pinned = _child(tg.pinned_environment(base))
    assert pinned["aten"] == "DEFAULT"
    assert pinned["mkldnn"] is False
    assert pinned["numpy_x86_v3"] is False
    assert pinned["openblas"] == ["Nehalem"]
    assert pinned["arithmetic"] == tg.PINNED
    knobbed = _child(tg.pinned_environment({**base, **CPU_KNOBS, "ATEN_CPU_CAPABILITY": "avx2"}))
    assert knobbed["digest"] == pinned["digest"]
    native = _child(base)
    assert native["arithmetic"] == "native"
    assert native["mkldnn"] is True
