"""The `modelseal` command: output, exit codes, errors without tracebacks."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from modelseal import __version__
from modelseal.release import Manifest, hash_release

SCRIPT = Path(sys.executable).with_name("modelseal")


def command() -> list[str]:
    if SCRIPT.exists():
        return [str(SCRIPT)]
    return [sys.executable, "-m", "modelseal._cli.main"]


def test_version_via_console_script() -> None:
    proc = subprocess.run([*command(), "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert __version__ in proc.stdout


def test_version_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from modelseal._cli.main import main\n"
        "assert main(['--version']) == 0\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('rich', 'blake3', 'sqlite3',"
        " 'click', 'concurrent', 'json')"
        " or m.startswith(('modelseal.release', 'modelseal.scan'))]\n"
        "print('HEAVY', sorted(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in proc.stdout


def test_hash_summary_json_and_output_file(tree, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tree({"model.safetensors": b"w" * 100, "config.json": b"{}"})
    expected = hash_release(root)
    res = cli("hash", root)
    assert res.code == 0
    assert f"root {expected.root}" in res.out
    assert "hashed 2 files" in res.out
    assert res.err == ""  # no progress bar when not on a terminal

    res = cli("hash", root, "--json")
    assert res.code == 0
    assert Manifest.from_json(res.out) == expected

    out = tmp_path / "m.json"
    res = cli("hash", root, "-o", out)
    assert res.code == 0
    assert Manifest.from_json(out.read_text()) == expected


def test_manifest_written_inside_the_release_is_excluded(tree, cli) -> None:  # type: ignore[no-untyped-def]
    root = tree({"model.bin": b"w"})
    inside = root / "MANIFEST[1].json"
    assert cli("hash", root, "-o", inside).code == 0
    assert cli("hash", root, "-o", inside).code == 0  # re-run with the file present
    manifest = Manifest.from_json(inside.read_text())
    assert [e.path for e in manifest.files] == ["model.bin"]
    res = cli("hash", root, "--check", inside)
    assert res.code == 0, res.err
    assert "OK: 1 files match" in res.out


def test_check_names_every_difference_and_exits_1(tree, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a.bin": b"aaaa", "b.bin": b"bbbb", "c.bin": b"cccc", "d.bin": b"dddd"})
    manifest = tmp_path / "m.json"
    assert cli("hash", root, "-o", manifest).code == 0
    (root / "a.bin").write_bytes(b"aaab")
    (root / "b.bin").unlink()
    (root / "c.bin").rename(root / "c2.bin")
    (root / "e.bin").write_bytes(b"new")
    res = cli("hash", root, "--check", manifest)
    assert res.code == 1
    for line in (
        "modified: a.bin",
        "removed: b.bin",
        "renamed: c.bin -> c2.bin",
        "added: e.bin",
        "4 difference(s)",
    ):
        assert line in res.err
    assert "Traceback" not in res.err

    res = cli("hash", root, "--check", manifest, "--json")
    assert res.code == 1
    report = json.loads(res.out)
    assert report["ok"] is False
    assert report["modified"] == ["a.bin"]
    assert report["renamed"] == [{"from": "c.bin", "to": "c2.bin"}]
    assert report["expected_root"] != report["actual_root"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hash"], "the following arguments are required: DIRECTORY"),
        (["hash", "{root}", "--bogus"], "unrecognized arguments: --bogus"),
        (["hash", "{root}", "--trust-cache"], "--trust-cache needs --cache"),
        (["hash", "{root}", "--jobs", "0"], "0 is not in the range"),
        (["hash", "{root}", "--algorithm", "md5"], "invalid choice: 'md5'"),
        (["hash", "{missing}"], "release directory not found"),
        (["hash", "{root}", "--check", "{missing}"], "manifest not found"),
        (["hash", "{root}", "--check", "{garbage}"], "not valid JSON"),
        (["hash", "{root}", "--check", "{manifest}", "--algorithm", "blake3"], "differs from"),
        (["hash", "{root}", "--check", "{manifest}", "-o", "{missing}"], "cannot be combined"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["hash", "{root}", "-o", "{missing}/m.json"], "cannot write"),
    ],
)
def test_usage_errors_exit_2_without_traceback(tree, cli, tmp_path: Path, args, message) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"a"})
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"{not json")
    manifest = tmp_path / "m.json"
    manifest.write_text(hash_release(root).to_json())
    values = {"root": root, "missing": tmp_path / "missing", "garbage": garbage,
              "manifest": manifest}  # fmt: skip
    res = cli(*[a.format(**values) for a in args])
    assert res.code == 2, res
    assert message in res.err
    assert "Traceback" not in res.err


def test_unsafe_release_exits_2_listing_paths(tree, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"a"})
    os.symlink(tmp_path, root / "escape")
    res = cli("hash", root)
    assert res.code == 2
    assert "escape: symbolic link points outside the release" in res.err
    assert "hint:" in res.err


def test_internal_errors_exit_3_and_debug_shows_traceback(tree, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import modelseal.release

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(modelseal.release, "hash_release", boom, raising=False)
    root = tree({"a": b"a"})
    res = cli("hash", root)
    assert res.code == 3
    assert "internal error: RuntimeError: kaboom" in res.err
    assert "Traceback" not in res.err
    res = cli("--debug", "hash", root)
    assert res.code == 3
    assert "Traceback" in res.err


def test_cache_flag_fills_modelseal_home(tree, cli, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"a"})
    first = cli("hash", root, "--cache")
    second = cli("hash", root, "--cache")
    assert first.code == second.code == 0
    assert (isolated_home / "cache" / "digests.sqlite3").exists()
    assert first.out.splitlines()[-1] == second.out.splitlines()[-1]


def test_blake3_via_cli(tree, cli) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"a"})
    res = cli("hash", root, "--algorithm", "blake3", "--json")
    assert json.loads(res.out)["algorithm"] == "blake3"


def test_progress_bar_only_on_a_terminal(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree({"big.bin": os.urandom(1 << 20) * 48})
    master, slave = pty.openpty()
    proc = subprocess.Popen([*command(), "hash", str(root)], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(master)
    assert proc.returncode == 0
    assert b"hashing" in seen
    assert proc.stdout is not None
    assert b"root sha256:" in proc.stdout.read()
