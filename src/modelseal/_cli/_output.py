"""Shared output helpers for commands: sizes, atomic writes, terminal progress."""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any

from modelseal.errors import InputError


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".modelseal-{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror} ({directory})") from exc
    replaced = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced and os.path.exists(tmp):
            os.unlink(tmp)


class TerminalProgress:
    """A rich progress bar on stderr (bytes, rate, ETA) when it is a terminal; else silent."""

    def __init__(self, description: str, *, enabled: bool | None = None) -> None:
        self.description = description
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None
        self.started = time.perf_counter()

    def __enter__(self) -> TerminalProgress:
        self.started = time.perf_counter()
        return self

    def start(self, total_bytes: int, total_files: int) -> None:
        if not self.enabled or total_bytes == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            f"{self.description} ({total_files} files)", total=total_bytes
        )

    def advance(self, nbytes: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, nbytes)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")
