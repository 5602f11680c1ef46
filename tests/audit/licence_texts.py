"""Real licence texts for the audit tests, read from the ScanCode licence database.

`make testdata` downloads the wheel ``scancode-toolkit-mini==32.5.0`` into ``.cache/testdata``
(``MODELSEAL_TESTDATA`` overrides the folder). Its ``licensedcode/data/licenses/*.LICENSE`` files
hold the licence texts (the ScanCode LicenseDB data, CC-BY-4.0); the tests read them straight
out of the wheel and never install or commit them.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import pytest

WHEEL_NAME = "scancode_toolkit_mini-32.5.0-cp311-none-any.whl"
_ROOT = Path(__file__).resolve().parents[2]


def testdata_dir() -> Path:
    return Path(os.environ.get("MODELSEAL_TESTDATA") or _ROOT / ".cache" / "testdata")


@functools.cache
def _wheel() -> zipfile.ZipFile | None:
    path = testdata_dir() / WHEEL_NAME
    return zipfile.ZipFile(path) if path.is_file() else None


def licence_text(key: str) -> str:
    """The text of ScanCode licence ``key`` (e.g. ``llama-3.1-license-2024``), header removed."""
    wheel = _wheel()
    if wheel is None:
        pytest.skip(f"{WHEEL_NAME} not in {testdata_dir()} (run `make testdata`)")
    raw = wheel.read(f"licensedcode/data/licenses/{key}.LICENSE").decode("utf-8")
    if raw.startswith("---"):
        _, _, rest = raw[3:].partition("\n---")
        raw = rest.lstrip("\n")
    return raw


def available_keys() -> list[str]:
    wheel = _wheel()
    if wheel is None:
        return []
    prefix = "licensedcode/data/licenses/"
    return sorted(
        n[len(prefix) : -len(".LICENSE")]
        for n in wheel.namelist()
        if n.startswith(prefix) and n.endswith(".LICENSE")
    )
