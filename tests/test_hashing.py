"""The hash engine: exact digests, independence from walk order and worker count."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import blake3
import pytest

from modelseal.errors import InputError, ReleaseError
from modelseal.release import hash_release
from modelseal.release import hashing as hashing_mod
from modelseal.release.hashing import hash_files
from modelseal.release.walk import WalkedFile

from .conftest import write_tree


def sample_files(seed: int = 7) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {
        "model.safetensors": rng.randbytes(9 << 20),  # above LARGE_FILE: its own task
        "config.json": b'{"hidden_size": 384}',
        "empty.txt": b"",
        "tokenizer/vocab.txt": rng.randbytes(5000),
        "shards/" + "x" * 40: rng.randbytes(1),
    }
    for i in range(300):
        files[f"shards/part-{i:04d}.bin"] = rng.randbytes(rng.randrange(0, 9000))
    return files


def test_each_digest_is_what_sha256sum_prints(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree(sample_files())
    manifest = hash_release(root)
    assert len(manifest.files) == 305
    if shutil.which("sha256sum"):
        listing = subprocess.run(
            ["sha256sum", "model.safetensors", "config.json", "empty.txt"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        tool = {line.split()[1]: line.split()[0] for line in listing.splitlines()}
    else:  # pragma: no cover - coreutils is everywhere we run
        tool = {}
    by_path = manifest.by_path()
    for rel, entry in by_path.items():
        data = (root / rel).read_bytes()
        assert entry.digest == hashlib.sha256(data).hexdigest(), rel
        assert entry.size == len(data)
        if rel in tool:
            assert entry.digest == tool[rel]


def test_blake3_digests_match_the_reference(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree(sample_files(3))
    for jobs in (1, 2, 3):
        manifest = hash_release(root, algorithm="blake3", jobs=jobs)
        assert manifest.algorithm == "blake3"
        for entry in manifest.files:
            assert entry.digest == blake3.blake3((root / entry.path).read_bytes()).hexdigest()


def test_worker_count_and_batching_never_change_the_root(tree, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tree(sample_files(11))
    reference = hash_release(root, jobs=1).root
    for jobs in (2, 3, 8):
        assert hash_release(root, jobs=jobs).root == reference
    # make every file "large" or batches tiny: the split of work must not matter
    monkeypatch.setattr(hashing_mod, "LARGE_FILE", 1)
    monkeypatch.setattr(hashing_mod.Sha256, "read_chunk", 4096)
    assert hash_release(root, jobs=2).root == reference
    monkeypatch.setattr(hashing_mod, "LARGE_FILE", 1 << 40)
    monkeypatch.setattr(hashing_mod, "PROGRESS_FILES", 3)
    assert hash_release(root, jobs=2).root == reference


def test_walk_order_does_not_change_the_root(tmp_path: Path) -> None:
    files = sample_files(5)
    forward = write_tree(tmp_path / "a", files)
    backward = write_tree(tmp_path / "b", dict(reversed(list(files.items()))))
    assert hash_release(forward).root == hash_release(backward).root


def test_unknown_algorithm_and_bad_jobs(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree({"a": b"1"})
    with pytest.raises(InputError, match="unknown hash algorithm 'md5'"):
        hash_release(root, algorithm="md5")
    with pytest.raises(InputError, match="at least 1"):
        hash_release(root, jobs=-1)


def test_file_that_changes_size_while_hashing_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "grows.bin"
    path.write_bytes(b"x" * 100)
    st = path.stat()
    listed = WalkedFile("grows.bin", os.fsencode(path), 50, None, 0, 0, 0, 0)
    with pytest.raises(ReleaseError, match="changed while it was being hashed"):
        hash_files([listed], "sha256", jobs=1)
    big = WalkedFile("grows.bin", os.fsencode(path), st.st_size + 1, None, 0, 0, 0, 0)
    with pytest.raises(ReleaseError, match="changed while it was being hashed"):
        hash_files([big], "sha256", jobs=1)


def test_failure_in_one_worker_is_reported(tmp_path: Path) -> None:
    files = [
        WalkedFile(f"f{i}", os.fsencode(tmp_path / f"f{i}"), 10, None, 0, 0, 0, 0)
        for i in range(600)
    ]
    for f in files[:-1]:
        Path(os.fsdecode(f.real)).write_bytes(b"0123456789")
    with pytest.raises(ReleaseError, match="cannot open 'f599'"):
        hash_files(files, "sha256", jobs=2)


def test_progress_reports_every_byte(tree) -> None:  # type: ignore[no-untyped-def]
    root = tree(sample_files(2))

    class Recorder:
        total = -1
        seen = 0

        def start(self, total_bytes: int, total_files: int) -> None:
            self.total = total_bytes
            self.files = total_files

        def advance(self, nbytes: int) -> None:
            self.seen += nbytes

    recorder = Recorder()
    manifest = hash_release(root, progress=recorder, jobs=2)
    assert recorder.total == manifest.total_size == recorder.seen
    assert recorder.files == len(manifest.files)
