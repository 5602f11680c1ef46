"""Computing a release's manifest and checking a release against one."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Protocol

from modelseal.errors import ManifestMismatch
from modelseal.release.cache import DigestCache
from modelseal.release.hashing import algorithm as get_algorithm
from modelseal.release.hashing import hash_files
from modelseal.release.ignore import DEFAULT_IGNORES, IgnoreRules
from modelseal.release.manifest import FileEntry, Manifest, ManifestDiff, diff
from modelseal.release.walk import WalkedFile, walk


class ProgressHook(Protocol):
    """Receives progress of long hashing runs (the library itself never prints)."""

    def start(self, total_bytes: int, total_files: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


def hash_release(
    root: str | os.PathLike[str],
    *,
    algorithm: str = "sha256",
    jobs: int | None = None,
    ignore: Iterable[str] = (),
    default_ignores: bool = True,
    cache: DigestCache | None = None,
    trust_cache: bool = True,
    progress: ProgressHook | None = None,
) -> Manifest:
    """Walk ``root`` and return its manifest.

    ``ignore`` adds patterns (see :mod:`modelseal.release.ignore`) to the default list (or
    replaces it when ``default_ignores`` is false); the patterns used are recorded in the manifest
    so a later check ignores the same paths. With a ``cache``, digests of unchanged files are
    reused when ``trust_cache`` is true, and fresh digests are always stored.
    """
    get_algorithm(algorithm)  # refuse unknown names before any I/O
    patterns = (*DEFAULT_IGNORES, *ignore) if default_ignores else tuple(ignore)
    rules = IgnoreRules(patterns)
    files = walk(root, rules)
    digests = _digests(files, algorithm, jobs, cache, trust_cache, progress)
    entries = tuple(
        FileEntry(path=f.path, size=f.size, digest=d, link=f.link)
        for f, d in zip(files, digests, strict=True)
    )
    return Manifest(algorithm=algorithm, files=entries, ignore=rules.patterns)


def check_release(
    root: str | os.PathLike[str],
    expected: Manifest,
    *,
    jobs: int | None = None,
    ignore: Iterable[str] = (),
    cache: DigestCache | None = None,
    trust_cache: bool = False,
    progress: ProgressHook | None = None,
) -> tuple[ManifestDiff, Manifest]:
    """Re-hash ``root`` the way ``expected`` was made and compare.

    The cache is *not* trusted unless ``trust_cache`` is true: a check reads every byte.
    """
    actual = hash_release(
        root,
        algorithm=expected.algorithm,
        jobs=jobs,
        ignore=(*expected.ignore, *ignore),
        default_ignores=False,
        cache=cache,
        trust_cache=trust_cache,
        progress=progress,
    )
    return diff(expected, actual), actual


def _digests(
    files: Sequence[WalkedFile],
    algorithm: str,
    jobs: int | None,
    cache: DigestCache | None,
    trust_cache: bool,
    progress: ProgressHook | None,
) -> list[str]:
    cached = cache.lookup(files, algorithm) if cache is not None and trust_cache else {}
    todo = [i for i in range(len(files)) if i not in cached]
    if progress is not None:
        progress.start(sum(files[i].size for i in todo), len(todo))
    fresh = hash_files(
        [files[i] for i in todo],
        algorithm,
        jobs=jobs,
        progress=progress.advance if progress is not None else None,
    )
    digests = [cached.get(i, "") for i in range(len(files))]
    for i, digest in zip(todo, fresh, strict=True):
        digests[i] = digest
    if cache is not None and todo:
        cache.store([files[i] for i in todo], fresh, algorithm)
    return digests


def verify_release(
    root: str | os.PathLike[str],
    expected: Manifest,
    *,
    jobs: int | None = None,
    progress: ProgressHook | None = None,
) -> Manifest:
    """Re-hash ``root`` (every byte) and raise :class:`ManifestMismatch` on any difference."""
    result, actual = check_release(root, expected, jobs=jobs, progress=progress)
    if not result.ok:
        raise ManifestMismatch(result.lines(), subject=os.fspath(root))
    return actual
