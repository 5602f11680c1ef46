"""Walking a release: ignore rules, symbolic links, and everything that must be refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelseal.errors import ReleaseError, UnsafePathError
from modelseal.release import IgnoreRules, hash_release
from modelseal.release.ignore import DEFAULT_IGNORES, escape

from .conftest import write_tree


def paths_of(root: Path, **kw: object) -> list[str]:
    return [e.path for e in hash_release(root, **kw).files]  # type: ignore[arg-type]


def test_default_ignores_drop_vcs_and_litter_but_keep_bytecode(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree(
        {
            "model.safetensors": b"w",
            ".git/HEAD": b"ref",
            ".git/objects/ab/cdef": b"obj",
            "sub/.DS_Store": b"x",
            "._model.safetensors": b"appledouble",
            "notes.txt.swp": b"vim",
            "notes.txt~": b"backup",
            ".cache/huggingface/download/model.safetensors.metadata": b"meta",
            "code/.cache/huggingface/keep.txt": b"not at the root: kept",
            "__pycache__/modeling.cpython-311.pyc": b"bytecode is bound",
            ".gitattributes": b"*.bin filter=lfs",
        }
    )
    assert paths_of(root) == [
        ".gitattributes",
        "__pycache__/modeling.cpython-311.pyc",
        "code/.cache/huggingface/keep.txt",
        "model.safetensors",
    ]
    everything = paths_of(root, default_ignores=False)
    assert ".git/HEAD" in everything
    assert "sub/.DS_Store" in everything


def test_ignore_pattern_semantics() -> None:
    rules = IgnoreRules(["*.log", "build/", "/top.txt", "docs/*.md"])
    assert rules.matches("a/b/x.log", "x.log", is_dir=False)
    assert rules.matches("a/build", "build", is_dir=True)
    assert not rules.matches("a/build", "build", is_dir=False)  # dir-only
    assert rules.matches("top.txt", "top.txt", is_dir=False)
    assert not rules.matches("sub/top.txt", "top.txt", is_dir=False)  # anchored
    assert rules.matches("docs/a.md", "a.md", is_dir=False)
    assert not rules.matches("other/docs/a.md", "a.md", is_dir=False)
    exact = IgnoreRules([escape("weird[1]*.json")])
    assert exact.matches("weird[1]*.json", "weird[1]*.json", is_dir=False)
    assert not exact.matches("weird1x.json", "weird1x.json", is_dir=False)
    assert ".git/" in DEFAULT_IGNORES


def test_extra_ignores_are_recorded_in_the_manifest(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a.bin": b"a", "logs/run.log": b"l"})
    manifest = hash_release(root, ignore=["logs/"])
    assert [e.path for e in manifest.files] == ["a.bin"]
    assert "logs/" in manifest.ignore


def test_symlink_inside_is_recorded_with_its_target(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree({"blobs/abc": b"weights", "sub/x": b"x"})
    os.symlink("blobs/abc", root / "model.bin")
    os.symlink("../blobs/./abc", root / "sub" / "alias")
    os.symlink("model.bin", root / "chain")  # link to a link
    entries = hash_release(root).by_path()
    assert entries["model.bin"].link == "blobs/abc"
    assert entries["sub/alias"].link == "blobs/abc"
    assert entries["chain"].link == "blobs/abc"
    assert entries["model.bin"].digest == entries["blobs/abc"].digest
    assert entries["blobs/abc"].link is None


def test_every_unsafe_entry_is_reported_at_once(tree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    root = tree({"ok.bin": b"fine", "dir/file": b"f"})
    os.symlink(outside, root / "abs-escape")
    os.symlink("../secret.txt", root / "rel-escape")
    os.symlink("missing", root / "dangling")
    os.symlink("dir", root / "dirlink")
    os.symlink(os.fspath(root / "ok.bin"), root / "abs-inside")  # absolute but inside: fine
    os.mkfifo(root / "pipe")
    with pytest.raises(UnsafePathError) as info:
        hash_release(root)
    problems = dict(info.value.problems)
    assert set(problems) == {"abs-escape", "rel-escape", "dangling", "dirlink", "pipe"}
    assert "outside the release" in problems["abs-escape"]
    assert "outside the release" in problems["rel-escape"]
    assert "dangling" in problems["dangling"]
    assert "directory" in problems["dirlink"]
    assert "FIFO" in problems["pipe"]
    assert "5 unsafe path(s)" in info.value.diagnostics()


def test_link_hopping_outside_and_back_is_refused(tree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tree({"real.bin": b"r"})
    hop = tmp_path / "hop"
    os.symlink(root / "real.bin", hop)  # outside, pointing back in
    os.symlink(hop, root / "via-outside")
    with pytest.raises(UnsafePathError, match="outside the release"):
        hash_release(root)


def test_link_to_the_root_itself_is_refused(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"a"})
    os.symlink(".", root / "self")
    with pytest.raises(UnsafePathError):
        hash_release(root)


def test_device_files_are_refused(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"a"})
    try:
        os.mknod(root / "null", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    os.symlink("/dev/zero", root / "zero")
    with pytest.raises(UnsafePathError) as info:
        hash_release(root)
    problems = dict(info.value.problems)
    assert "character device" in problems["null"]
    assert "outside the release" in problems["zero"]


def test_unsafe_entries_that_are_ignored_do_not_matter(tree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"a"})
    os.makedirs(root / ".git")
    os.symlink(tmp_path, root / ".git" / "escape")
    os.mkfifo(root / "x.swp")
    assert paths_of(root) == ["a"]


def test_backslash_names_are_refused(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a\\b.bin": b"x"})
    with pytest.raises(UnsafePathError, match="backslash"):
        hash_release(root)


def test_non_utf8_names_are_deterministic(tmp_path: Path) -> None:
    roots = []
    for name in ("one", "two"):
        root = tmp_path / name
        root.mkdir()
        for raw in (b"caf\xe9.bin", b"z\xff\xfe", b"plain.txt", "ünïcode".encode()):
            with open(os.path.join(os.fsencode(root), raw), "wb") as handle:
                handle.write(raw)
        roots.append(root)
    first, second = (hash_release(r) for r in roots)
    assert first.root == second.root
    assert [os.fsencode(e.path) for e in first.files] == sorted(
        [b"caf\xe9.bin", b"z\xff\xfe", b"plain.txt", "ünïcode".encode()]
    )
    assert first.to_json() == second.to_json()


def test_missing_and_non_directory_roots(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="not found"):
        hash_release(tmp_path / "nope")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ReleaseError, match="not a directory"):
        hash_release(tmp_path / "file")


def test_unreadable_file_is_a_clear_error(tree) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    root = write_tree(tree({}), {"locked.bin": b"x"})
    (root / "locked.bin").chmod(0)
    with pytest.raises(ReleaseError, match=r"cannot open 'locked\.bin'"):
        hash_release(root)
