"""Every fuzz harness in fuzz/: its invariant holds on seeds and random input, and atheris runs it.

A harness is ``fuzz/fuzz_<name>.py`` with ``test_one_input(data: bytes)`` (the atheris target)
and optional seeds in ``fuzz/seeds/<name>/``.
"""

from __future__ import annotations

import importlib
import importlib.util
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
HARNESSES = sorted(p.stem for p in FUZZ.glob("fuzz_*.py"))
sys.path.insert(0, str(FUZZ))


def harness(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_there_are_harnesses() -> None:
    assert "fuzz_manifest" in HARNESSES
    assert "fuzz_pickle" in HARNESSES


@pytest.mark.parametrize("name", HARNESSES)
def test_seeds_satisfy_the_invariant(name: str) -> None:
    seeds = FUZZ / "seeds" / name.removeprefix("fuzz_")
    for seed in sorted(seeds.iterdir()) if seeds.is_dir() else []:
        harness(name).test_one_input(seed.read_bytes())


@pytest.mark.parametrize("name", HARNESSES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_random_bytes_satisfy_the_invariant(name: str, data: bytes) -> None:
    harness(name).test_one_input(data)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
@pytest.mark.parametrize("name", HARNESSES)
def test_short_atheris_run_finds_nothing(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    seeds = FUZZ / "seeds" / name.removeprefix("fuzz_")
    if seeds.is_dir():
        shutil.copytree(seeds, corpus)
    else:
        corpus.mkdir()
    # libFuzzer's memory limit is checked against the peak RSS of the process, and Linux keeps
    # the peak across fork and exec: the child starts at this pytest process's peak. The
    # harness gets its own 2 GB on top of that.
    inherited_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"{name}.py"),
            str(corpus),
            "-atheris_runs=20000",
            f"-rss_limit_mb={inherited_mb + 2048}",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 20000" in proc.stderr
