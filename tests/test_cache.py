"""The digest cache: reuse only what is provably unchanged; checks never trust it by default."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from modelseal.release import DigestCache, check_release, hash_release
from modelseal.release import build as build_mod


@pytest.fixture
def hashed_paths(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records which files each run actually read and hashed."""
    calls: list[list[str]] = []
    real = build_mod.hash_files

    def spy(files, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(sorted(f.path for f in files))
        return real(files, *args, **kwargs)

    monkeypatch.setattr(build_mod, "hash_files", spy)
    return calls


def test_unchanged_files_are_not_rehashed(tree, tmp_path: Path, hashed_paths) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a.bin": b"a" * 1000, "b.bin": b"b" * 10})
    with DigestCache(tmp_path / "c.sqlite3") as cache:
        cold = hash_release(root, cache=cache)
        warm = hash_release(root, cache=cache)
    assert warm == cold
    assert hashed_paths == [["a.bin", "b.bin"], []]


def test_content_change_with_restored_mtime_is_rehashed(tree, tmp_path: Path, hashed_paths) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a.bin": b"a" * 1000, "b.bin": b"b" * 10})
    with DigestCache(tmp_path / "c.sqlite3") as cache:
        before = hash_release(root, cache=cache)
        st = os.stat(root / "a.bin")
        (root / "a.bin").write_bytes(b"A" * 1000)  # same size
        os.utime(root / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back
        after = hash_release(root, cache=cache)
    assert hashed_paths[-1] == ["a.bin"]
    assert after.by_path()["a.bin"].digest != before.by_path()["a.bin"].digest


def test_check_reads_every_byte_unless_told_to_trust(tree, tmp_path: Path, hashed_paths) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a.bin": b"a" * 1000})
    db = tmp_path / "c.sqlite3"
    with DigestCache(db) as cache:
        good = hash_release(root, cache=cache)
    # poison the cache: a wrong digest for the unchanged file
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE digests SET digest = ?", ("0" * 64,))
    with DigestCache(db) as cache:
        honest, _ = check_release(root, good, cache=cache)
        assert honest.ok
        assert hashed_paths[-1] == ["a.bin"]
        # the honest check rewrote the cache entry with the true digest
        trusting, _ = check_release(root, good, cache=cache, trust_cache=True)
        assert trusting.ok
        assert hashed_paths[-1] == []
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE digests SET digest = ?", ("0" * 64,))
    with DigestCache(db) as cache:
        fooled, _ = check_release(root, good, cache=cache, trust_cache=True)
    assert fooled.modified == ("a.bin",)  # trusting a poisoned cache is the caller's choice


def test_algorithms_do_not_share_entries(tree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a.bin": b"abc"})
    with DigestCache(tmp_path / "c.sqlite3") as cache:
        sha = hash_release(root, cache=cache)
        b3 = hash_release(root, cache=cache, algorithm="blake3")
    assert sha.files[0].digest != b3.files[0].digest


def test_damaged_cache_is_moved_aside_and_rebuilt(tree, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "cache" / "c.sqlite3"
    db.parent.mkdir()
    db.write_bytes(b"this is not a database" * 100)
    root = tree({"a.bin": b"abc"})
    with DigestCache(db) as cache:
        assert cache.recovered is not None
        assert "moved to" in cache.recovered
        manifest = hash_release(root, cache=cache)
    assert len(manifest.files) == 1
    assert any(p.name.startswith("c.sqlite3.corrupt-") for p in db.parent.iterdir())


def test_default_cache_lives_under_modelseal_home(isolated_home: Path) -> None:
    with DigestCache.default() as cache:
        assert cache.path == isolated_home / "cache" / "digests.sqlite3"
    assert cache.path.exists()
