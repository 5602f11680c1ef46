from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelseal._cli.main import main

# the headless-Chromium fixture `browser` for the page tests
pytest_plugins = ["tests.browser"]


def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    """Create ``files`` (release path -> content) under ``root``."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Callable[[Mapping[str, bytes]], Path]:
    counter = iter(range(1_000_000))

    def make(files: Mapping[str, bytes]) -> Path:
        return write_tree(tmp_path / f"release{next(counter)}", files)

    return make


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real ~/.modelseal from tests."""
    home = tmp_path / "modelseal-home"
    monkeypatch.setenv("MODELSEAL_HOME", str(home))
    return home


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    def run(*args: str | os.PathLike[str]) -> CliResult:
        capsys.readouterr()
        code = main([os.fspath(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
