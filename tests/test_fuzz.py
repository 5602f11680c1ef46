"""The fuzz harnesses: their invariants hold on seeds and random input, and atheris runs them."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_manifest  # noqa: E402


def test_seeds_satisfy_the_invariant() -> None:
    seeds = sorted((FUZZ / "seeds" / "manifest").iterdir())
    assert len(seeds) >= 3
    for seed in seeds:
        fuzz_manifest.test_one_input(seed.read_bytes())


@given(st.binary(max_size=2048))
def test_random_bytes_satisfy_the_invariant(data: bytes) -> None:
    fuzz_manifest.test_one_input(data)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_short_atheris_run_finds_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(FUZZ / "seeds" / "manifest", corpus)
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "fuzz_manifest.py"), str(corpus), "-atheris_runs=30000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 30000" in proc.stderr
