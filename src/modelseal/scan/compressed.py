"""Single-stream gzip, bzip2 and xz files: the content goes to the dispatcher, sized exactly.

Concatenated streams (and zero padding between them) are followed, as the command-line tools do.
The content is never held in memory whole, and never grows past the bomb cap
(``max(BOMB_MIN_SIZE, BOMB_RATIO * compressed size)`` from :mod:`modelseal.formats.zip`).

=======================  ==========  =======================================================
rule                     verdict     why
=======================  ==========  =======================================================
``<fmt>.bad-stream``     malformed   corrupt or truncated stream (what came before is kept)
``<fmt>.too-large``      malformed   a non-seekable input over the in-memory cap
``<fmt>.bomb``           dangerous   decompresses past the bomb cap: only the start checked
``archive.too-deep``     malformed   containers nested deeper than ``MAX_DEPTH``
=======================  ==========  =======================================================

``<fmt>`` is ``gzip``, ``bzip2`` or ``xz``.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats import zip as zipfmt
from modelseal.formats.inflate import Inflater
from modelseal.scan._members import READ_ERRORS, Limited, deliver, finding, too_deep
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Verdict

CHUNK = 1 << 20


class _TooLarge(Exception):
    """Internal: the decompressed content passed the bomb cap."""


def _decompress(src: BinaryIO, size: int, fmt: str, cap: int) -> Iterator[bytes]:
    """The decompressed chunks of ``size`` compressed bytes; concatenated streams followed."""
    read = Limited(src, size).read
    decoder, produced, idle = Inflater.for_format(fmt), 0, 0
    while True:
        out = decoder.take(CHUNK)
        if out:
            produced += len(out)
            if produced > cap:
                raise _TooLarge(f"decompresses to more than {cap} bytes")
            yield out
            idle = 0
        elif decoder.eof:
            rest = decoder.leftover().lstrip(b"\0")
            while not rest and (more := read(CHUNK)):
                rest = more.lstrip(b"\0")  # zero padding between or after streams
            if not rest:
                return
            decoder = Inflater.for_format(fmt)
            decoder.give(rest)
        elif decoder.wants_input() or idle > 2:
            data = read(CHUNK)
            if not data:
                raise FormatError(f"{fmt} stream is truncated after {produced} bytes")
            decoder.give(data)
            idle = 0
        else:
            idle += 1


class _Decompressed(io.BufferedIOBase, BinaryIO):
    """The first ``size`` bytes a chunk iterator yields, read forward only."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        super().__init__()
        self._chunks = chunks
        self._left = size
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        parts: list[bytes] = []
        while want > 0:
            if not self._pending:
                self._pending = next(self._chunks, b"")
                if not self._pending:
                    break
            part, self._pending = self._pending[:want], self._pending[want:]
            parts.append(part)
            want -= len(part)
            self._left -= len(part)
        return b"".join(parts)

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)


_SUFFIXES = {
    "gzip": ((".tgz", ".tar"), (".gz", ""), (".gzip", "")),
    "bzip2": ((".tbz2", ".tar"), (".tbz", ".tar"), (".bz2", ""), (".bz", "")),
    "xz": ((".txz", ".tar"), (".xz", "")),
    "zlib": ((".zz", ""), (".zlib", "")),
}


def inner_name(name: str, fmt: str) -> str:
    """The member name for a compressed file's content: ``model.pt.gz`` gives ``model.pt``."""
    base = posixpath.basename(name.replace("\\", "/"))
    for suffix, replacement in _SUFFIXES[fmt]:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + replacement
    return base or "content"


class CompressedScanner(Scanner):
    """A single gzip, bzip2 or xz stream: the content goes to the dispatcher, sized exactly.

    The content is decompressed twice (once to count its bytes, once to hand it over), so the
    member scanner gets an exact size without the content being held in memory.
    """

    def __init__(self, fmt: str) -> None:
        if fmt not in _SUFFIXES:
            raise ValueError(f"unknown compression format {fmt!r}")
        self.format = fmt

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        if deep := too_deep(ctx):
            return deep
        fmt = self.format
        findings: list[Finding] = []
        try:
            src = stream if stream.seekable() else zipfmt.buffer_stream(stream, size)
            start = src.tell()
        except READ_ERRORS as exc:
            return [finding(f"{fmt}.too-large", Verdict.MALFORMED, str(exc)[:300])]
        cap = max(zipfmt.BOMB_MIN_SIZE, zipfmt.BOMB_RATIO * size)
        total, problem = self._measure(src, size, cap)
        name = inner_name(ctx.name, fmt)
        if total or problem is None:
            try:
                src.seek(start)
            except READ_ERRORS as exc:
                return [finding(f"{fmt}.bad-stream", Verdict.MALFORMED, str(exc)[:300])]
            content = _Decompressed(self._quiet(src, size, cap), total)
            findings += deliver(ctx, content, total, name, f"{fmt}.bad-stream", None)
        if problem is not None:
            findings.append(problem)
        return findings

    def _quiet(self, src: BinaryIO, size: int, cap: int) -> Iterator[bytes]:
        """The same chunks as the measuring pass; its error (already reported) ends them."""
        try:
            yield from _decompress(src, size, self.format, cap)
        except READ_ERRORS:
            return
        except _TooLarge:
            return

    def _measure(self, src: BinaryIO, size: int, cap: int) -> tuple[int, Finding | None]:
        total = 0
        fmt = self.format
        try:
            for chunk in _decompress(src, size, fmt, cap):
                total += len(chunk)
        except _TooLarge as exc:
            message = f"{fmt} content {exc}: a decompression bomb, only the start was checked"
            return total, finding(f"{fmt}.bomb", Verdict.DANGEROUS, message)
        except READ_ERRORS as exc:
            message = f"{fmt} stream is corrupt after {total} bytes: {exc}"[:300]
            return total, finding(f"{fmt}.bad-stream", Verdict.MALFORMED, message, offset=total)
        return total, None


class GzipScanner(CompressedScanner):
    """A gzip file (the dispatcher builds its scanners without arguments)."""

    def __init__(self) -> None:
        super().__init__("gzip")


class Bzip2Scanner(CompressedScanner):
    """A bzip2 file."""

    def __init__(self) -> None:
        super().__init__("bzip2")


class XzScanner(CompressedScanner):
    """An xz file."""

    def __init__(self) -> None:
        super().__init__("xz")


class ZlibScanner(CompressedScanner):
    """A raw zlib stream (what joblib writes with ``compress=True``)."""

    def __init__(self) -> None:
        super().__init__("zlib")


__all__ = [
    "Bzip2Scanner",
    "CompressedScanner",
    "GzipScanner",
    "XzScanner",
    "ZlibScanner",
    "inner_name",
]
