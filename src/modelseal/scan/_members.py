"""What every container scanner shares: handing a member to the dispatcher, and its findings.

A member goes back to the dispatcher through :func:`deliver`, which wraps it so that a read error
ends the member early instead of escaping: the member scanner keeps what it found before the
damage, and the container reports the error as its own ``<format>.bad-entry`` (or ``zip.bomb``)
finding. :func:`too_deep` is the ``archive.too-deep`` check every container makes first.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zlib
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats import zip as zipfmt
from modelseal.scan.interface import MAX_DEPTH, ScanContext
from modelseal.scan.model import Finding, Location, Severity, Verdict

MAX_MEMBER_IN_MEMORY = 256 << 20  # one 7z member, a nested archive, a compressed input

# Exceptions that reading a hostile member or stream can raise; each becomes a finding.
READ_ERRORS: tuple[type[BaseException], ...] = (
    FormatError,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    tarfile.TarError,
)

_SEVERITY = {
    Verdict.SAFE: Severity.INFO,
    Verdict.SUSPICIOUS: Severity.MEDIUM,
    Verdict.MALFORMED: Severity.MEDIUM,
    Verdict.DANGEROUS: Severity.HIGH,
}


def finding(
    rule: str,
    verdict: Verdict,
    message: str,
    *,
    symbol: str | None = None,
    member: str | None = None,
    offset: int | None = None,
    index: int | None = None,
) -> Finding:
    """A container finding; its severity follows from the verdict."""
    return Finding(
        rule, verdict, _SEVERITY[verdict], message, symbol, Location(member, offset, index)
    )


def too_deep(ctx: ScanContext) -> list[Finding]:
    """``archive.too-deep`` (malformed) when ``ctx`` is already ``MAX_DEPTH`` containers deep."""
    if ctx.depth < MAX_DEPTH:
        return []
    return [
        finding(
            "archive.too-deep",
            Verdict.MALFORMED,
            f"containers nested more than {MAX_DEPTH} deep: the members were not checked",
        )
    ]


class Guarded(io.BufferedIOBase, BinaryIO):
    """A member stream whose read errors end it early and are kept in ``error``.

    The member scanner keeps what it found before the damage (a payload before a broken
    deflate stream still counts); the container turns ``error`` into its own finding.
    """

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.error is None and self._inner.seekable()

    def tell(self) -> int:
        return self._inner.tell()

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._inner.seek(offset, whence)

    def read(self, size: int | None = -1, /) -> bytes:
        if self.error is not None:
            return b""
        try:
            return self._inner.read(-1 if size is None else size)
        except READ_ERRORS as exc:
            self.error = exc
            return b""

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)


def deliver(
    ctx: ScanContext, stream: BinaryIO, size: int, name: str, error_rule: str, index: int | None
) -> list[Finding]:
    """Hand one member to the dispatcher; a read failure becomes ``error_rule`` (or a bomb)."""
    guarded = Guarded(stream)
    try:
        found = list(ctx.member(guarded, size, name))
    except READ_ERRORS as exc:  # a member scanner let a read error through
        found = []
        guarded.error = guarded.error or exc
    if isinstance(stream, zipfmt.EntryStream) and stream.tell() >= size:
        guarded.read(1)  # fully read: the end check (nothing inflates beyond the declared size)
    error = guarded.error
    if error is not None:
        if isinstance(error, zipfmt.ZipBombError):
            found.append(finding("zip.bomb", Verdict.DANGEROUS, str(error), member=name))
        else:
            message = f"member cannot be fully read: {error}"[:300]
            found.append(finding(error_rule, Verdict.MALFORMED, message, member=name, index=index))
    return found


def random_access(stream: BinaryIO, size: int) -> BinaryIO:
    """``stream`` itself when it can seek and starts at 0, else its bytes in memory (capped)."""
    if stream.seekable() and isinstance(stream, io.IOBase) and stream.tell() == 0:
        return stream
    return zipfmt.buffer_stream(stream, size, MAX_MEMBER_IN_MEMORY)


class Limited(io.BufferedIOBase, BinaryIO):
    """The next ``size`` bytes of a stream, read forward only."""

    def __init__(self, inner: BinaryIO, size: int) -> None:
        super().__init__()
        self._inner = inner
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        data = self._inner.read(n) if n > 0 else b""
        self._left -= len(data)
        return data

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)
