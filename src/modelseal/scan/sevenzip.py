"""7z archives (nullifAI shipped PyTorch pickles in 7z), decompressed in memory by py7zr.

py7zr is imported only when a 7z archive is scanned: it costs tens of milliseconds, and a
``modelseal scan`` of many small files should not pay that for archives it never meets. Every
member is collected in memory (capped) and goes back to the dispatcher through
:meth:`ScanContext.member`, which sniffs its content. Nothing is extracted to disk.

======================  ==========  =========================================================
rule                    verdict     why
======================  ==========  =========================================================
``7z.unsafe-path``      dangerous   absolute, ``..``, backslash or NUL member name
``7z.duplicate-name``   suspicious  two entries with the same name
``7z.encrypted``        malformed   password protected: the contents cannot be checked
``7z.too-large``        malformed   a member over the in-memory caps: not checked
``7z.bad-entry``        malformed   a member cut short or over the cap (its start is checked)
``7z.bad-archive``      malformed   the archive cannot be fully read
``7z.bomb``             dangerous   decompresses beyond ``MAX_TOTAL_IN_MEMORY``
``archive.too-deep``    malformed   containers nested deeper than ``MAX_DEPTH``
======================  ==========  =========================================================
"""

from __future__ import annotations

import functools
import io
import struct
from typing import TYPE_CHECKING, BinaryIO

from modelseal.formats import zip as zipfmt
from modelseal.scan._members import (
    MAX_MEMBER_IN_MEMORY,
    READ_ERRORS,
    deliver,
    finding,
    random_access,
    too_deep,
)
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Verdict

if TYPE_CHECKING:
    import py7zr
    from py7zr.io import Py7zIO as _WriterBase
    from py7zr.io import WriterFactory as _FactoryBase
else:  # the real bases are registered by _load_py7zr(), so py7zr loads only when needed
    _WriterBase = _FactoryBase = object

MAX_TOTAL_IN_MEMORY = 1 << 30  # all 7z members together


@functools.cache
def sevenzip_errors() -> tuple[type[BaseException], ...]:
    """What py7zr raises on hostile archives (it does not wrap its parsing errors)."""
    import py7zr.exceptions

    return (
        py7zr.exceptions.ArchiveError,
        py7zr.exceptions.PasswordRequired,
        py7zr.exceptions.AbsolutePathError,
        *READ_ERRORS,
        struct.error,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        MemoryError,
        RecursionError,
    )


@functools.cache
def _load_py7zr() -> None:
    """Import py7zr and register our writer classes as its ``Py7zIO`` / ``WriterFactory``."""
    from py7zr.io import Py7zIO, WriterFactory

    Py7zIO.register(_MemberBuffer)
    WriterFactory.register(_SevenZipScan)


class _MemberBuffer(_WriterBase):
    """One 7z member collected in memory (capped); scanned when py7zr closes it."""

    def __init__(self, owner: _SevenZipScan, name: str) -> None:
        self.owner, self.name = owner, name
        self.buffer = io.BytesIO()
        self.overflow = False
        self.delivered = False

    def write(self, s: bytes | bytearray) -> int:
        room = MAX_MEMBER_IN_MEMORY - self.buffer.tell()
        if len(s) > room:
            self.overflow = True
        self.buffer.write(s[: max(0, room)])
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buffer.tell()

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.buffer.tell()

    def close(self) -> None:
        self.owner.deliver(self, complete=True)


class _SevenZipScan(_FactoryBase):
    """Collects the members py7zr writes and hands each to the dispatcher once closed."""

    def __init__(self, ctx: ScanContext) -> None:
        self.ctx = ctx
        self.findings: list[Finding] = []
        self.current: _MemberBuffer | None = None

    def create(self, filename: str) -> _MemberBuffer:
        self.current = _MemberBuffer(self, filename)
        return self.current

    def deliver(self, member: _MemberBuffer, *, complete: bool) -> None:
        if member.delivered:
            return
        member.delivered = True
        data = member.buffer.getvalue()
        member.buffer = io.BytesIO()
        self.findings += deliver(
            self.ctx, io.BytesIO(data), len(data), member.name, "7z.bad-entry", None
        )
        if member.overflow or not complete:
            why = "is larger than the in-memory cap" if member.overflow else "is cut short"
            self.findings.append(
                finding(
                    "7z.bad-entry",
                    Verdict.MALFORMED,
                    f"member {why}: only its first {len(data)} bytes were checked",
                    member=member.name,
                )
            )


class SevenZipScanner(Scanner):
    """7z archives (nullifAI shipped PyTorch pickles in 7z), decompressed in memory by py7zr."""

    format = "7z"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        if deep := too_deep(ctx):
            return deep
        import py7zr

        _load_py7zr()
        job = _SevenZipScan(ctx)
        try:
            file = random_access(stream, size)
            archive = py7zr.SevenZipFile(file, mode="r", max_extract_size=MAX_TOTAL_IN_MEMORY)
            with archive:
                targets = self._targets(archive.list(), job.findings)
                if targets:
                    archive.extract(targets=targets, factory=job)
        except py7zr.exceptions.PasswordRequired:
            job.findings.append(
                finding("7z.encrypted", Verdict.MALFORMED, "7z archive is password protected")
            )
        except py7zr.exceptions.DecompressionBombError as exc:
            job.findings.append(finding("7z.bomb", Verdict.DANGEROUS, str(exc)[:300]))
        except sevenzip_errors() as exc:
            message = f"7z archive cannot be fully read: {type(exc).__name__}: {exc}"[:300]
            job.findings.append(finding("7z.bad-archive", Verdict.MALFORMED, message))
            if job.current is not None:  # a payload before the damage still counts
                job.deliver(job.current, complete=False)
        return job.findings

    @staticmethod
    def _targets(infos: list[py7zr.FileInfo], findings: list[Finding]) -> list[str]:
        targets: list[str] = []
        seen: set[str] = set()
        total = 0
        for index, info in enumerate(infos):
            name = info.filename
            if (why := zipfmt.name_problem(name)) is not None:
                findings.append(
                    finding(
                        "7z.unsafe-path",
                        Verdict.DANGEROUS,
                        f"member name {why}: py7zr refuses it, its contents were not checked",
                        symbol=name,
                        member=name,
                        index=index,
                    )
                )
                continue
            if name in seen:
                findings.append(
                    finding(
                        "7z.duplicate-name",
                        Verdict.SUSPICIOUS,
                        "member name appears more than once",
                        member=name,
                        index=index,
                    )
                )
            if info.is_directory or name in seen:
                continue
            seen.add(name)
            total += info.uncompressed
            if info.uncompressed > MAX_MEMBER_IN_MEMORY or total > MAX_TOTAL_IN_MEMORY:
                findings.append(
                    finding(
                        "7z.too-large",
                        Verdict.MALFORMED,
                        f"member of {info.uncompressed} bytes exceeds the in-memory caps: "
                        "not checked",
                        member=name,
                        index=index,
                    )
                )
                continue
            targets.append(name)
        return targets


__all__ = ["SevenZipScanner", "sevenzip_errors"]
