"""The generated malicious/benign corpus (tests/scan/corpus.py).

1. Every payload is real: loading a malicious sample with the real loader, in a subprocess,
   creates its canary; loading a benign twin works and creates nothing.
2. The scanner gives each sample its expected verdict, through the API and the CLI, and never
   runs anything: no canary exists after scanning.

The load test and the scan test use two separate builds, so canaries created by the first can
never be mistaken for the scanner's doing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.scan.corpus import (
    DANGEROUS,
    EXPECTED,
    FLAGGED,
    LOADERS,
    MALFORMED,
    SAFE,
    SUSPICIOUS_OR_SAFE,
    Sample,
    build_corpus,
)

LOAD_TIMEOUT_S = 120
ACCEPTED = {
    DANGEROUS: {"dangerous"},
    MALFORMED: {"malformed"},
    SAFE: {"safe"},
    SUSPICIOUS_OR_SAFE: {"safe", "suspicious"},
    FLAGGED: {"suspicious", "dangerous"},
}


def _catalogue() -> list[Sample]:
    """The samples this environment can build (listed at collection time, then removed)."""
    tmp = tempfile.mkdtemp(prefix="modelseal-corpus-list-")
    try:
        return build_corpus(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CATALOGUE = _catalogue()
LOADABLE = [s for s in CATALOGUE if s.loader is not None]


@pytest.fixture(scope="session")
def load_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Sample]]:
    root = tmp_path_factory.mktemp("corpus-load")
    return root, {s.name: s for s in build_corpus(root)}


@pytest.fixture(scope="session")
def scan_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Sample]]:
    root = tmp_path_factory.mktemp("corpus-scan")
    return root, build_corpus(root)


def _canaries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "canary").iterdir())


def _load(sample: Sample, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert sample.loader is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [sys.executable, "-c", LOADERS[sample.loader], str(sample.path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_S,
        check=False,
    )


def _wait_for(path: Path, seconds: float = 10.0) -> bool:
    """Popen-style payloads finish after the loader exits: poll a little."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_catalogue_is_consistent() -> None:
    names = [s.name for s in CATALOGUE]
    assert len(names) == len(set(names))
    assert {s.expected for s in CATALOGUE} <= set(EXPECTED)
    assert all(s.loader is None or s.loader in LOADERS for s in CATALOGUE)
    canaries = [s.canary for s in CATALOGUE if s.canary is not None]
    assert len(canaries) == len(set(canaries))
    for s in CATALOGUE:
        if s.canary is not None:  # a canary is only proof with a loader that runs the payload
            assert s.loader is not None, s.name
            assert s.expected == DANGEROUS, s.name
    malicious = {s.technique for s in CATALOGUE if s.expected == DANGEROUS}
    assert len(malicious) >= 40
    assert sum(s.canary is not None for s in CATALOGUE) >= 30


def test_every_file_is_a_sample(scan_corpus: tuple[Path, list[Sample]]) -> None:
    root, samples = scan_corpus
    files = {p for p in root.rglob("*") if p.is_file()}
    assert files == {s.path for s in samples}
    assert _canaries(root) == []


@pytest.mark.parametrize("name", [s.name for s in LOADABLE])
def test_real_loader(
    name: str, load_corpus: tuple[Path, dict[str, Sample]], tmp_path: Path
) -> None:
    """Malicious: the real loader creates the canary. Benign: it loads and creates nothing."""
    root, by_name = load_corpus
    sample = by_name[name]
    before = _canaries(root)
    proc = _load(sample, tmp_path)
    detail = f"rc={proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    if sample.canary is not None:
        assert _wait_for(sample.canary), f"{name}: the payload did not run\n{detail}"
    else:
        if sample.expected in (SAFE, SUSPICIOUS_OR_SAFE, FLAGGED):
            assert proc.returncode == 0, f"{name}: the benign twin does not load\n{detail}"
        time.sleep(0.1)
        assert _canaries(root) == before, f"{name}: a benign sample wrote a canary"


# --- the scanner -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def scan_reports(scan_corpus: tuple[Path, list[Sample]]) -> dict[str, Any]:
    api = pytest.importorskip("modelseal.scan.api")
    root, _ = scan_corpus
    result = api.scan_paths([root])
    return {_relative(root, r.path): r for r in result.files}


def _relative(root: Path, shown: str) -> str:
    path = Path(shown)
    if path.is_absolute():
        return path.relative_to(root).as_posix()
    if not (root / path).exists() and path.parts and path.parts[0] == root.name:
        path = Path(*path.parts[1:])
    return path.as_posix()


@pytest.mark.parametrize("name", [s.name for s in CATALOGUE])
def test_scan_verdict(
    name: str, scan_corpus: tuple[Path, list[Sample]], scan_reports: dict[str, Any]
) -> None:
    root, samples = scan_corpus
    sample = next(s for s in samples if s.name == name)
    report = scan_reports.get(sample.path.relative_to(root).as_posix())
    assert report is not None, f"{name}: not in the scan result"
    got = report.verdict.value
    why = "; ".join(f"{f.rule}: {f.message}" for f in report.findings) or "no findings"
    assert got in ACCEPTED[sample.expected], (
        f"{name} ({sample.technique}): expected {sample.expected}, got {got} [{why}]"
    )


def test_scan_runs_nothing(
    scan_corpus: tuple[Path, list[Sample]], scan_reports: dict[str, Any]
) -> None:
    root, samples = scan_corpus
    assert len(scan_reports) >= len(samples)
    assert _canaries(root) == []
    assert not any(s.canary.exists() for s in samples if s.canary is not None)


def test_scan_cli_json(scan_corpus: tuple[Path, list[Sample]], tmp_path: Path) -> None:
    pytest.importorskip("modelseal.scan.api")
    root, samples = scan_corpus
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("modelseal")), "scan", str(root), "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # the corpus holds dangerous files
    files = {_relative(root, f["path"]): f for f in json.loads(proc.stdout)["files"]}
    wrong = []
    for s in samples:
        entry = files.get(s.path.relative_to(root).as_posix())
        if entry is None or entry["verdict"] not in ACCEPTED[s.expected]:
            wrong.append(f"{s.name}: expected {s.expected}, got {entry and entry['verdict']}")
    assert not wrong, "\n".join(wrong)
    assert _canaries(root) == []
    assert list(tmp_path.iterdir()) == []  # the CLI wrote nothing into its working directory
