"""The parallel hash engine.

Each algorithm names itself completely (``sha256``, ``blake3``) so a verifier can reproduce the
hashing from the manifest alone; a file's digest is exactly what ``sha256sum`` / ``b3sum`` print.

Scheduling, for a warm page cache on a few cores:

- Files of at least ``LARGE_FILE`` bytes are one task each, largest first (so the longest task
  starts first), read with large ``readinto`` calls into a per-thread buffer; ``hashlib`` and
  ``blake3`` release the GIL while digesting, so threads give true parallelism.
- Smaller files are read with one ``os.read`` each and hashed in a single lane (one task, running
  beside the large files): their cost is per-file system calls and Python work that hold the
  GIL, so spreading them over threads only adds lock convoys (measured: 10,000 x 4 KB files hash
  in 73 ms on one thread, 125 ms on two). Per-task overhead is paid once, not per file.
- SHA-256 is a sequential hash: one file's digest can only use one core, so a release that is one
  huge file hashes at one core's speed (≈1.2-1.8 GB/s with SHA-NI). BLAKE3 is a tree hash: a large
  file is hashed on every core (``--algorithm blake3``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Protocol

from modelseal.errors import InputError, ReleaseError
from modelseal.release import paths
from modelseal.release.walk import WalkedFile

Progress = Callable[[int], None]

LARGE_FILE = 4 << 20
PROGRESS_FILES = 256
PROGRESS_BYTES = 16 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_OPEN_FLAGS |= getattr(os, "O_CLOEXEC", 0)


class _Digest(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


class HashAlgorithm(ABC):
    """One way of digesting a file; subclasses only say how to make a digest object."""

    name: str
    read_chunk: int = 1 << 20  # fits in L2 next to the hash state: measured fastest for SHA-256

    @abstractmethod
    def new(self, data: bytes = b"") -> _Digest:
        """A fresh incremental digest object, fed ``data``."""

    def hash_fd(self, fd: int, buf: bytearray, progress: Progress | None) -> tuple[str, int]:
        """Digest the open file ``fd`` with large reads; returns (hex digest, bytes read)."""
        digest = self.new()
        view = memoryview(buf)
        total = 0
        while n := os.readv(fd, [buf]):
            digest.update(view[:n])
            total += n
            if progress is not None:
                progress(n)
        return digest.hexdigest(), total


class Sha256(HashAlgorithm):
    name = "sha256"

    def new(self, data: bytes = b"") -> _Digest:
        return hashlib.sha256(data)


class Blake3(HashAlgorithm):
    """BLAKE3, a tree hash: one large file is digested on ``threads`` cores."""

    name = "blake3"
    read_chunk = 8 << 20  # large enough for blake3 to spread one update over its threads

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, threads)

    def new(self, data: bytes = b"") -> _Digest:
        import blake3

        return blake3.blake3(data, max_threads=self.threads)


ALGORITHMS: dict[str, type[HashAlgorithm]] = {"sha256": Sha256, "blake3": Blake3}


def algorithm(name: str, *, jobs: int = 1) -> HashAlgorithm:
    """The hash algorithm called ``name``."""
    if name == "blake3":
        return Blake3(threads=jobs)
    if name == "sha256":
        return Sha256()
    raise InputError(
        f"unknown hash algorithm {name!r}", hint=f"choose one of: {', '.join(ALGORITHMS)}"
    )


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _open(file: WalkedFile) -> int:
    try:
        fd = os.open(file.real, _OPEN_FLAGS)
    except OSError as exc:
        raise ReleaseError(f"cannot open {paths.display(file.path)!r}: {exc.strerror}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ReleaseError(f"{paths.display(file.path)!r} stopped being a regular file")
    return fd


def _changed(file: WalkedFile, got: int) -> ReleaseError:
    return ReleaseError(
        f"{paths.display(file.path)!r} changed while it was being hashed "
        f"(size {file.size} when listed, {got} bytes read)",
        hint="hash a release only when nothing is writing to it",
    )


def _hash_small_files(
    files: Sequence[WalkedFile], algo: HashAlgorithm, progress: Progress | None
) -> list[str]:
    out: list[str] = []
    done = 0
    for count, file in enumerate(files, 1):
        fd = _open(file)
        try:
            # A regular file returns a short read only at its end: asking for one byte more
            # than listed both reads it whole and proves it did not grow.
            data = os.read(fd, file.size + 1)
        finally:
            os.close(fd)
        if len(data) != file.size:
            raise _changed(file, len(data))
        out.append(algo.new(data).hexdigest())
        done += file.size
        if progress is not None and (count % PROGRESS_FILES == 0 or done >= PROGRESS_BYTES):
            progress(done)
            done = 0
    if progress is not None and done:
        progress(done)
    return out


def _hash_one_large(file: WalkedFile, algo: HashAlgorithm, progress: Progress | None) -> list[str]:
    buf = bytearray(algo.read_chunk)
    fd = _open(file)
    try:
        digest, got = algo.hash_fd(fd, buf, progress)
    finally:
        os.close(fd)
    if got != file.size:
        raise _changed(file, got)
    return [digest]


def hash_files(
    files: Sequence[WalkedFile],
    algorithm_name: str,
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Digest every file (in parallel); returns the hex digests in the order of ``files``."""
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    small_algo = algorithm(algorithm_name, jobs=1)
    large_algo = algorithm(algorithm_name, jobs=jobs)

    order = sorted(range(len(files)), key=lambda i: files[i].size, reverse=True)
    tasks: list[tuple[list[int], Callable[[], list[str]]]] = []
    small = [i for i in order if files[i].size < LARGE_FILE]
    if small:  # one lane, submitted first: it cannot be split usefully (see module docstring)
        lane = [files[i] for i in small]
        tasks.append((small, partial(_hash_small_files, lane, small_algo, progress)))
    for i in order:
        if files[i].size >= LARGE_FILE:
            tasks.append(([i], partial(_hash_one_large, files[i], large_algo, progress)))

    digests: list[str] = [""] * len(files)
    if jobs == 1 or len(tasks) <= 1:
        for indices, run in tasks:
            for i, digest in zip(indices, run(), strict=True):
                digests[i] = digest
        return digests

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="modelseal-hash") as pool:
        futures: dict[Future[list[str]], list[int]] = {
            pool.submit(run): indices for indices, run in tasks
        }
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                for other in futures:
                    other.cancel()
                future.result()  # re-raise the first failure
        for future, indices in futures.items():
            for i, digest in zip(indices, future.result(), strict=True):
                digests[i] = digest
    return digests
