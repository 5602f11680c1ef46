"""Scanning files and release directories."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from modelseal._version import __version__
from modelseal.errors import InputError
from modelseal.scan.dispatch import root_context, scan_bytes
from modelseal.scan.model import FileReport, Finding, Severity, Verdict

SCHEMA_VERSION = 1
DEFAULT_FAIL_ON = frozenset({Verdict.DANGEROUS, Verdict.MALFORMED})


class ScanResult(NamedTuple):
    """Every scanned file's report, in a stable order."""

    files: tuple[FileReport, ...]

    def failing(self, levels: Iterable[Verdict] = DEFAULT_FAIL_ON) -> list[FileReport]:
        wanted = frozenset(levels)
        return [f for f in self.files if f.verdicts & wanted]

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for report in self.files:
            out[report.verdict.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "scanner": {"name": "modelseal", "version": __version__},
            "summary": {"files": len(self.files), "verdicts": self.counts()},
            "files": [f.to_dict() for f in self.files],
        }


def scan_file(
    path: str | os.PathLike[str],
    *,
    display: str | None = None,
    release_dir: str | None = None,
) -> FileReport:
    """Scan one file by content."""
    path = os.fspath(path)
    shown = display or path
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError as exc:
        return _unreadable(shown, f"cannot open: {exc.strerror}")
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            return _unreadable(shown, "not a regular file")
        ctx = root_context(shown, path, release_dir)
        try:
            fmt, findings = scan_bytes(handle, st.st_size, ctx)
        except OSError as exc:
            return _unreadable(shown, f"read error: {exc.strerror or exc}")
    ordered = sorted(findings, key=lambda f: -f.verdict.rank)  # the worst first, stable
    return FileReport(shown, fmt, st.st_size, tuple(ordered))


def _unreadable(path: str, why: str) -> FileReport:
    finding = Finding("file.unreadable", Verdict.MALFORMED, Severity.HIGH, why)
    return FileReport(path, "unknown", 0, (finding,))


def scan_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    progress: Callable[[str], None] | None = None,
) -> ScanResult:
    """Scan files and (recursively) directories; unsafe directory entries become findings."""
    reports: list[FileReport] = []
    for raw in paths:
        path = os.fspath(raw)
        if os.path.isdir(path):
            from modelseal.release.ignore import IgnoreRules
            from modelseal.release.walk import walk_collect

            files, problems = walk_collect(path, IgnoreRules.default())
            for walked in sorted(files, key=lambda w: os.fsencode(w.path)):
                if progress is not None:
                    progress(walked.path)
                real = os.fsdecode(walked.real)
                reports.append(scan_file(real, display=walked.path, release_dir=path))
            for rel, why in problems:
                finding = Finding("path.unsafe", Verdict.DANGEROUS if "outside" in why
                                  else Verdict.MALFORMED, Severity.HIGH, why)  # fmt: skip
                reports.append(FileReport(rel, "unknown", 0, (finding,)))
        elif os.path.lexists(path):
            if progress is not None:
                progress(path)
            reports.append(scan_file(path))
        else:
            raise InputError(f"no such file or directory: {path}")
    return ScanResult(tuple(reports))
