"""Walking a release directory: what files it holds, refusing anything unsafe to follow.

The walk never follows a symbolic link out of the release, never opens a device, FIFO or socket,
and reports *every* unsafe entry in one :class:`~modelseal.errors.UnsafePathError` rather than
stopping at the first. Symbolic links that stay inside the release are recorded as links (their
target's release path) and hashed through their target. Links to directories are refused: the
directory's files are hashed where they live.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

from modelseal.errors import ReleaseError, UnsafePathError
from modelseal.release import paths
from modelseal.release.ignore import IgnoreRules

_MAX_LINK_HOPS = 40


class WalkedFile(NamedTuple):
    """A file to hash: where it is in the release and where its bytes are on disk."""

    path: str  # release-relative POSIX path (surrogate-escaped str)
    real: bytes  # absolute path of the bytes to read (the target, for a link)
    size: int
    link: str | None  # release path of the target when ``path`` is a symbolic link
    dev: int
    ino: int
    mtime_ns: int
    ctime_ns: int


class _Unsafe(Exception):
    """Internal: one unsafe entry (collected into UnsafePathError)."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _inside(root: bytes, candidate: bytes) -> bool:
    return candidate == root or candidate.startswith(root.rstrip(b"/") + b"/")


def _resolve_link(root: bytes, link_abs: bytes) -> tuple[bytes, os.stat_result]:
    """Follow a symbolic link hop by hop; every hop must stay inside ``root``."""
    current = link_abs
    for _ in range(_MAX_LINK_HOPS):
        target = os.readlink(current)
        shown = os.fsdecode(target)
        joined = os.path.join(os.path.dirname(current), target)
        candidate = os.path.normpath(joined)
        parent = os.path.realpath(os.path.dirname(candidate))
        candidate = os.path.join(parent, os.path.basename(candidate))
        if not _inside(root, candidate) or candidate == root:
            raise _Unsafe(f"symbolic link points outside the release (-> {shown})")
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            raise _Unsafe(f"dangling symbolic link (-> {shown})") from None
        if stat.S_ISLNK(st.st_mode):
            current = candidate
            continue
        if stat.S_ISREG(st.st_mode):
            return candidate, st
        if stat.S_ISDIR(st.st_mode):
            raise _Unsafe(
                f"symbolic link to a directory (-> {shown}); not supported, "
                "the directory's files are hashed where they are"
            )
        raise _Unsafe(f"symbolic link to {_kind(st.st_mode)} (-> {shown})")
    raise _Unsafe("too many levels of symbolic links")


def walk(root: str | os.PathLike[str], rules: IgnoreRules) -> list[WalkedFile]:
    """Every file of the release under ``root`` that ``rules`` do not ignore (unordered).

    Raises :class:`UnsafePathError` listing every unsafe entry, if there is any.
    """
    files, problems = walk_collect(root, rules)
    if problems:
        raise UnsafePathError(problems)
    return files


def walk_collect(
    root: str | os.PathLike[str], rules: IgnoreRules
) -> tuple[list[WalkedFile], list[tuple[str, str]]]:
    """Like :func:`walk`, but return the unsafe entries (path, reason) instead of raising."""
    root_path = os.fsencode(os.path.abspath(root))
    try:
        st = os.stat(root_path)
    except FileNotFoundError:
        raise ReleaseError(f"release directory not found: {os.fsdecode(root_path)}") from None
    except OSError as exc:
        raise ReleaseError(f"cannot read {os.fsdecode(root_path)}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise ReleaseError(f"not a directory: {os.fsdecode(root_path)}")
    root_real = os.path.realpath(root_path)

    files: list[WalkedFile] = []
    problems: list[tuple[str, str]] = []
    stack: list[tuple[bytes, str]] = [(root_real, "")]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            shown = rel_dir or "."
            raise ReleaseError(f"cannot list {shown!r} in the release: {exc.strerror}") from exc
        for entry in entries:
            name = os.fsdecode(entry.name)
            rel = paths.join(rel_dir, name)
            try:
                lst = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise ReleaseError(f"cannot stat {paths.display(rel)!r}: {exc.strerror}") from exc
            mode = lst.st_mode
            is_dir = stat.S_ISDIR(mode)
            if rules.matches(rel, name, is_dir=is_dir) or (
                stat.S_ISLNK(mode) and rules.matches(rel, name, is_dir=True)
            ):
                continue
            problem = paths.relative_path_problem(rel)
            if problem:
                problems.append((paths.display(rel), f"unusable name: {problem}"))
                continue
            if is_dir:
                stack.append((entry.path, rel))
            elif stat.S_ISREG(mode):
                files.append(
                    WalkedFile(
                        rel, entry.path, lst.st_size, None,
                        lst.st_dev, lst.st_ino, lst.st_mtime_ns, lst.st_ctime_ns,
                    )
                )  # fmt: skip
            elif stat.S_ISLNK(mode):
                try:
                    target, tst = _resolve_link(root_real, entry.path)
                    link = os.fsdecode(os.path.relpath(target, root_real)).replace(os.sep, "/")
                    if not paths.is_utf8(link):
                        raise _Unsafe("symbolic link target name is not valid UTF-8")
                except _Unsafe as exc:
                    problems.append((paths.display(rel), str(exc)))
                    continue
                except OSError as exc:
                    problems.append((paths.display(rel), f"cannot follow link: {exc.strerror}"))
                    continue
                files.append(
                    WalkedFile(
                        rel, target, tst.st_size, link,
                        tst.st_dev, tst.st_ino, tst.st_mtime_ns, tst.st_ctime_ns,
                    )
                )  # fmt: skip
            else:
                problems.append((paths.display(rel), _kind(mode)))
    problems.sort()
    return files, problems
