"""picklescan's own test files (../shared/testdata/picklescan): every one must come out right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelseal.scan.api import scan_paths
from modelseal.scan.model import FileReport, Verdict

SUITE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "picklescan"
pytestmark = pytest.mark.skipif(not SUITE.is_dir(), reason="picklescan test data not present")

DANGEROUS_EXTRA = {
    "cloudpickle_codeinjection.pkl", "types_CodeType.pkl", "io_FileIO.pkl",
    "logging_FileHandler.pkl", "urllib_request_urlopen.pkl", "keyerror-exploit.pkl",
    "type-confusion-exploit.pkl", "sys_module_override_sploit.pkl", "dns_exfiltration.npy",
    "pytorch_magic_bypass.pt", "broken_model.pkl",
}  # fmt: skip
SAFE = {"benign0_v0.pkl", "benign0_v3.pkl", "benign0_v4.pkl", "pytorch_model.bin",
        "new_pytorch_model.bin", "int_array.npy", "int_arrays.npz",
        "int_arrays_compressed.npz"}  # fmt: skip
NOT_SAFE_NOT_PAYLOAD = {"not_a_pickle.bin", "bad_pytorch.pt", "benign_password_protected.zip"}
REVIEW = {"object_array.npy", "object_arrays.npz", "object_arrays_compressed.npz"}


def expectation(name: str) -> str:
    if name.startswith(("malicious", "GHSA-")) or name in DANGEROUS_EXTRA:
        return "dangerous"
    if name in SAFE:
        return "safe"
    if name in NOT_SAFE_NOT_PAYLOAD:
        return "not-safe"
    if name in REVIEW:
        return "review"
    raise AssertionError(f"no expectation for {name}")


@pytest.fixture(scope="module")
def reports() -> dict[str, FileReport]:
    result = scan_paths([SUITE / "data", SUITE / "data2"])
    return {Path(r.path).name: r for r in result.files}


def test_every_file_is_scanned(reports: dict[str, FileReport]) -> None:
    on_disk = {p.name for p in SUITE.glob("data*/*")}
    assert set(reports) == on_disk
    assert len(reports) >= 100


def test_every_verdict(reports: dict[str, FileReport]) -> None:
    wrong = []
    for name, report in sorted(reports.items()):
        want = expectation(name)
        got = report.verdicts
        ok = {
            "dangerous": Verdict.DANGEROUS in got,
            "safe": got == {Verdict.SAFE},
            "not-safe": Verdict.MALFORMED in got and Verdict.DANGEROUS not in got,
            "review": Verdict.DANGEROUS not in got and Verdict.MALFORMED not in got,
        }[want]
        if not ok:
            wrong.append(f"{name}: expected {want}, got {sorted(v.value for v in got)}")
    assert not wrong, "\n".join(wrong)


def test_cli_exit_code_and_json(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "modelseal._cli.main", "scan", str(SUITE / "data2"),
           "--format", "json", "-o", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["summary"]["files"] == len(list((SUITE / "data2").iterdir()))
    assert "Traceback" not in proc.stderr
    benign_only = [
        sys.executable,
        "-m",
        "modelseal._cli.main",
        "scan",
        str(SUITE / "data" / "benign0_v4.pkl"),
        str(SUITE / "data2" / "int_array.npy"),
    ]
    assert subprocess.run(benign_only, capture_output=True, check=False).returncode == 0
