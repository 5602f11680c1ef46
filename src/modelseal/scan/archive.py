"""Container scanners: zip, 7z, tar and single-stream gzip / bzip2 / xz.

Every member of every archive goes back to the dispatcher through :meth:`ScanContext.member`,
which sniffs its content: a pickle named ``data.txt`` is scanned as a pickle (CVE-2025-1889).
Nothing is ever extracted to disk. The zip reader is our own (:mod:`modelseal.formats.zip`) so
that the archive is read the way PyTorch reads it: CRC ignored (CVE-2025-10156), local names not
trusted (CVE-2025-1944), odd flag bits tolerated (CVE-2025-1945), and one unreadable member does
not hide the others (modelscan #354). A member that fails to read becomes a finding, and the scan
goes on with the next member; what the member scanner found before the failure is kept.

Container findings (research notes §2.2 items 10, 14, 17):

=========================  ==========  ====================================================
rule                       verdict     why
=========================  ==========  ====================================================
``zip.unsafe-path``        dangerous   absolute, ``..``, backslash or NUL member name
``zip.name-mismatch``      suspicious  local header name differs from the central one
``zip.duplicate-name``     suspicious  two central entries with the same name
``zip.encrypted``          malformed   encrypted entry: its contents cannot be checked
``zip.encrypted-flag``     suspicious  encryption flag on data that reads as plain (0x1 trick)
``zip.bad-entry``          malformed   an entry that cannot be read
``zip.bad-archive``        malformed   no readable central directory
``zip.count-mismatch``     suspicious  end record entry count differs from the directory
``zip.overlap``            suspicious  entries share bytes (overlapping-entry zip bombs)
``zip.bomb``               dangerous   inflates beyond its declared size or an absurd ratio
``zip.torchscript-code``   suspicious  TorchScript ``code/`` source (dangerous with exec-like
                                       calls: CVE-2025-32434)
``7z.*``, ``tar.*``        as zip      ``bad-archive``, ``bad-entry``, ``unsafe-path``,
                                       ``duplicate-name``, ``bomb``; ``7z.encrypted`` and
                                       ``7z.too-large`` (over the in-memory caps) malformed
``<gzip|bzip2|xz>.*``      malformed   ``bad-stream``, ``too-large``; ``bomb`` is dangerous
``archive.too-deep``       malformed   containers nested deeper than ``MAX_DEPTH``
=========================  ==========  ====================================================
"""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import re
import struct
import tarfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO, cast

import py7zr
import py7zr.exceptions
from py7zr.io import Py7zIO, WriterFactory

from modelseal.formats import FormatError
from modelseal.formats import zip as zipfmt
from modelseal.scan.interface import MAX_DEPTH, ScanContext, Scanner
from modelseal.scan.model import Finding, Location, Severity, Verdict

MAX_MEMBER_IN_MEMORY = 256 << 20  # one 7z member, a nested archive, a compressed input
MAX_TOTAL_IN_MEMORY = 1 << 30  # all 7z members together
MAX_MEMBERS = 100_000  # tar members followed
MAX_CODE_BYTES = 16 << 20  # a TorchScript source file read for the pattern check
MAX_CODE_FILES = 1000
MAX_KERAS_CONFIG = 64 << 20
CHUNK = 1 << 20

# Exceptions that reading a hostile member or stream can raise; each becomes a finding.
READ_ERRORS: tuple[type[BaseException], ...] = (
    FormatError,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    tarfile.TarError,
)
# What py7zr raises on hostile archives (it does not wrap its parsing errors).
SEVENZIP_ERRORS: tuple[type[BaseException], ...] = (
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

# TorchScript source that calls out of the sandbox TorchScript is meant to be.
TORCHSCRIPT_DANGER: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("os.system", re.compile(rb"\bos\s*\.\s*system\b")),
    ("os.popen", re.compile(rb"\bos\s*\.\s*popen\b")),
    ("subprocess", re.compile(rb"\bsubprocess\b")),
    ("eval", re.compile(rb"\beval\s*\(")),
    ("exec", re.compile(rb"\bexec\s*\(")),
    ("__import__", re.compile(rb"\b__import__\b")),
    ("__builtins__", re.compile(rb"\b__builtins__\b")),
    ("open", re.compile(rb"\bopen\s*\(")),
    ("socket", re.compile(rb"\bsocket\b")),
)
_TORCHSCRIPT_CODE = re.compile(r"(?:^|/)code/(?:.+/)?[^/]+\.py$")
_TORCHSCRIPT_CONSTANTS = re.compile(r"(?:^|/)constants\.pkl$")


_SEVERITY = {
    Verdict.SAFE: Severity.INFO,
    Verdict.SUSPICIOUS: Severity.MEDIUM,
    Verdict.MALFORMED: Severity.MEDIUM,
    Verdict.DANGEROUS: Severity.HIGH,
}


def _finding(
    rule: str,
    verdict: Verdict,
    message: str,
    *,
    symbol: str | None = None,
    member: str | None = None,
    offset: int | None = None,
    index: int | None = None,
) -> Finding:
    return Finding(
        rule, verdict, _SEVERITY[verdict], message, symbol, Location(member, offset, index)
    )


def _too_deep(ctx: ScanContext) -> list[Finding]:
    if ctx.depth < MAX_DEPTH:
        return []
    return [
        _finding(
            "archive.too-deep",
            Verdict.MALFORMED,
            f"containers nested more than {MAX_DEPTH} deep: the members were not checked",
        )
    ]


class _Guarded(io.BufferedIOBase, BinaryIO):
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


def _deliver(
    ctx: ScanContext, stream: BinaryIO, size: int, name: str, error_rule: str, index: int | None
) -> list[Finding]:
    """Hand one member to the dispatcher; a read failure becomes ``error_rule`` (or a bomb)."""
    guarded = _Guarded(stream)
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
            found.append(_finding("zip.bomb", Verdict.DANGEROUS, str(error), member=name))
        else:
            message = f"member cannot be fully read: {error}"[:300]
            found.append(_finding(error_rule, Verdict.MALFORMED, message, member=name, index=index))
    return found


def _random_access(stream: BinaryIO, size: int) -> BinaryIO:
    """``stream`` itself when it can seek and starts at 0, else its bytes in memory (capped)."""
    if stream.seekable() and isinstance(stream, io.IOBase) and stream.tell() == 0:
        return stream
    return zipfmt.buffer_stream(stream, size, MAX_MEMBER_IN_MEMORY)


# ---------------------------------------------------------------------------------------- zip


class ZipScanner(Scanner):
    """Zip archives (PyTorch, npz, Keras v3, plain zip), read from the central directory."""

    format = "zip"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        if deep := _too_deep(ctx):
            return deep
        try:
            file = _random_access(stream, size)
        except READ_ERRORS as exc:
            return [_finding("zip.bad-archive", Verdict.MALFORMED, str(exc))]
        return _ZipScan(file, size, ctx).run()


class _ZipScan:
    def __init__(self, file: BinaryIO, size: int, ctx: ScanContext) -> None:
        self.file, self.size, self.ctx = file, size, ctx
        self.findings: list[Finding] = []
        self.spans: list[tuple[int, int, zipfmt.ZipEntry]] = []
        self.inflated = 0  # bytes declared by the compressed entries opened so far
        self.inflate_budget = max(zipfmt.BOMB_MIN_SIZE, zipfmt.BOMB_RATIO * size)

    def add(
        self,
        rule: str,
        verdict: Verdict,
        message: str,
        entry: zipfmt.ZipEntry | None = None,
        *,
        symbol: str | None = None,
        offset: int | None = None,
    ) -> None:
        member, index = (entry.name, entry.index) if entry is not None else (None, None)
        self.findings.append(
            _finding(
                rule, verdict, message, symbol=symbol, member=member, offset=offset, index=index
            )
        )

    def run(self) -> list[Finding]:
        entries: list[zipfmt.ZipEntry] = []
        try:
            directory = zipfmt.find_central_directory(self.file, self.size)
            for entry in zipfmt.iter_entries(self.file, self.size, directory):
                entries.append(entry)
        except FormatError as exc:
            self.add("zip.bad-archive", Verdict.MALFORMED, str(exc), offset=exc.offset)
        else:
            if directory.count not in (len(entries), len(entries) & 0xFFFF):
                self.add(
                    "zip.count-mismatch",
                    Verdict.SUSPICIOUS,
                    f"end record declares {directory.count} entries, directory holds "
                    f"{len(entries)}",
                )
        self._check_names(entries)
        for entry in entries:
            self._entry(entry)
        self._check_overlaps()
        self._check_torchscript(entries)
        self._check_keras(entries)
        return self.findings

    def _check_names(self, entries: list[zipfmt.ZipEntry]) -> None:
        seen: set[bytes] = set()
        for entry in entries:
            if (why := zipfmt.name_problem(entry.name)) is not None:
                self.add(
                    "zip.unsafe-path",
                    Verdict.DANGEROUS,
                    f"member name {why}: extraction could write outside its directory",
                    entry,
                    symbol=entry.name,
                )
            if entry.raw_name in seen:
                self.add(
                    "zip.duplicate-name",
                    Verdict.SUSPICIOUS,
                    "member name appears more than once: loaders disagree on which one wins",
                    entry,
                    symbol=entry.name,
                )
            seen.add(entry.raw_name)

    def _entry(self, entry: zipfmt.ZipEntry) -> None:
        try:
            local = zipfmt.read_local_header(self.file, self.size, entry)
        except FormatError as exc:
            self.add("zip.bad-entry", Verdict.MALFORMED, f"entry cannot be read: {exc}", entry)
            return
        self.spans.append((entry.header_offset, local.data_offset + entry.compressed_size, entry))
        if local.name_differs(entry):
            local_name = zipfmt.decode_name(local.raw_name, local.flags)
            self.add(
                "zip.name-mismatch",
                Verdict.SUSPICIOUS,
                f"local header names {local_name!r}: stdlib zipfile refuses, PyTorch loads it",
                entry,
                symbol=local_name,
            )
        if entry.is_dir:
            return
        if entry.method != zipfmt.STORED:
            self.inflated += entry.uncompressed_size
            if self.inflated > self.inflate_budget:
                self.add(
                    "zip.bomb",
                    Verdict.DANGEROUS,
                    f"entries inflate to more than {self.inflate_budget} bytes in total",
                    entry,
                )
                return
        if entry.encrypted:
            self._flagged(entry)
            return
        try:
            stream = zipfmt.open_entry(self.file, entry, size=self.size)
        except zipfmt.ZipBombError as exc:
            self.add("zip.bomb", Verdict.DANGEROUS, str(exc), entry)
            return
        except FormatError as exc:
            self.add("zip.bad-entry", Verdict.MALFORMED, f"entry cannot be read: {exc}", entry)
            return
        self.findings += _deliver(
            self.ctx, stream, entry.uncompressed_size, entry.name, "zip.bad-entry", entry.index
        )

    def _flagged(self, entry: zipfmt.ZipEntry) -> None:
        """An entry with a flag bit PyTorch treats as encryption: read it as plain if it is."""
        try:
            data = zipfmt.read_entry(self.file, entry, size=self.size, allow_encrypted=True)
        except zipfmt.ZipBombError as exc:
            self.add("zip.bomb", Verdict.DANGEROUS, str(exc), entry)
            return
        except FormatError:
            self.add(
                "zip.encrypted",
                Verdict.MALFORMED,
                f"entry is encrypted (flags {entry.flags:#x}): its contents cannot be checked",
                entry,
            )
            return
        self.add(
            "zip.encrypted-flag",
            Verdict.SUSPICIOUS,
            f"flag bits {entry.flags:#x} mark the entry encrypted or patched, yet its data "
            "reads as plain: PyTorch refuses it, older loaders ignore the flag and load it",
            entry,
        )
        self.findings += _deliver(
            self.ctx, io.BytesIO(data), len(data), entry.name, "zip.bad-entry", entry.index
        )

    def _check_overlaps(self) -> None:
        self.spans.sort(key=lambda span: (span[0], span[1]))
        reach = 0
        for start, end, entry in self.spans:
            if start < reach:
                self.add(
                    "zip.overlap",
                    Verdict.SUSPICIOUS,
                    "entry data overlaps another entry (a zip-bomb construction)",
                    entry,
                    offset=start,
                )
                return
            reach = max(reach, end)

    def _readable(self, entry: zipfmt.ZipEntry, cap: int) -> bytes | None:
        try:
            return zipfmt.read_entry(self.file, entry, size=self.size, cap=cap)
        except FormatError:
            return None  # already reported while scanning the entry

    def _check_torchscript(self, entries: list[zipfmt.ZipEntry]) -> None:
        """TorchScript archives carry Python source that torch.jit.load compiles (§2.2 item 14)."""
        code = [e for e in entries if _TORCHSCRIPT_CODE.search(e.name) and not e.is_dir]
        if not code:
            return
        constants = any(_TORCHSCRIPT_CONSTANTS.search(e.name) for e in entries)
        self.add(
            "zip.torchscript-code",
            Verdict.SUSPICIOUS,
            f"TorchScript archive ({len(code)} code files"
            f"{', constants.pkl' if constants else ''}): torch.jit.load runs this code",
            code[0],
            symbol=code[0].name,
        )
        for entry in code[:MAX_CODE_FILES]:
            text = self._readable(entry, MAX_CODE_BYTES)
            if text is None:
                continue
            for symbol, pattern in TORCHSCRIPT_DANGER:
                if (match := pattern.search(text)) is not None:
                    self.add(
                        "zip.torchscript-code",
                        Verdict.DANGEROUS,
                        f"TorchScript code calls {symbol}",
                        entry,
                        symbol=symbol,
                        offset=match.start(),
                    )

    def _check_keras(self, entries: list[zipfmt.ZipEntry]) -> None:
        """A Keras v3 ``.keras`` zip: root config.json plus metadata.json or model.weights.h5."""
        names = {e.name for e in entries}
        if "config.json" not in names or not names & {"metadata.json", "model.weights.h5"}:
            return
        try:
            from modelseal.scan.keras import check_keras_config
        except ImportError:  # pragma: no cover - the Keras checks ship with this package
            return
        for entry in entries:
            if entry.name == "config.json":
                data = self._readable(entry, MAX_KERAS_CONFIG)
                if data is not None:
                    self.findings += check_keras_config(data, entry.name)


# ----------------------------------------------------------------------------------------- 7z


class _MemberBuffer(Py7zIO):
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


class _SevenZipScan(WriterFactory):
    def __init__(self, ctx: ScanContext) -> None:
        self.ctx = ctx
        self.findings: list[Finding] = []
        self.current: _MemberBuffer | None = None

    def create(self, filename: str) -> Py7zIO:
        self.current = _MemberBuffer(self, filename)
        return self.current

    def deliver(self, member: _MemberBuffer, *, complete: bool) -> None:
        if member.delivered:
            return
        member.delivered = True
        data = member.buffer.getvalue()
        member.buffer = io.BytesIO()
        self.findings += _deliver(
            self.ctx, io.BytesIO(data), len(data), member.name, "7z.bad-entry", None
        )
        if member.overflow or not complete:
            why = "is larger than the in-memory cap" if member.overflow else "is cut short"
            self.findings.append(
                _finding(
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
        if deep := _too_deep(ctx):
            return deep
        job = _SevenZipScan(ctx)
        try:
            file = _random_access(stream, size)
            archive = py7zr.SevenZipFile(file, mode="r", max_extract_size=MAX_TOTAL_IN_MEMORY)
            with archive:
                targets = self._targets(archive.list(), job.findings)
                if targets:
                    archive.extract(targets=targets, factory=job)
        except py7zr.exceptions.PasswordRequired:
            job.findings.append(
                _finding("7z.encrypted", Verdict.MALFORMED, "7z archive is password protected")
            )
        except py7zr.exceptions.DecompressionBombError as exc:
            job.findings.append(_finding("7z.bomb", Verdict.DANGEROUS, str(exc)[:300]))
        except SEVENZIP_ERRORS as exc:
            message = f"7z archive cannot be fully read: {type(exc).__name__}: {exc}"[:300]
            job.findings.append(_finding("7z.bad-archive", Verdict.MALFORMED, message))
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
                    _finding(
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
                    _finding(
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
                    _finding(
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


# ---------------------------------------------------------------------------------------- tar


class _Limited(io.BufferedIOBase, BinaryIO):
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


class TarScanner(Scanner):
    """Tar archives, read as a stream by the stdlib (never extracted; regular members only)."""

    format = "tar"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        if deep := _too_deep(ctx):
            return deep
        findings: list[Finding] = []
        try:
            # ignore_zeros: members hidden after an end-of-archive marker are still seen
            with tarfile.open(
                fileobj=_Limited(stream, size), mode="r|", ignore_zeros=True
            ) as archive:
                for index, info in enumerate(archive):
                    if index >= MAX_MEMBERS:
                        findings.append(
                            _finding(
                                "tar.too-many-members",
                                Verdict.MALFORMED,
                                f"more than {MAX_MEMBERS} members: the rest were not checked",
                            )
                        )
                        break
                    findings += self._member(archive, info, index, ctx)
        except READ_ERRORS as exc:
            message = f"tar archive cannot be fully read: {exc}"[:300]
            findings.append(_finding("tar.bad-archive", Verdict.MALFORMED, message))
        return findings

    @staticmethod
    def _member(
        archive: tarfile.TarFile, info: tarfile.TarInfo, index: int, ctx: ScanContext
    ) -> list[Finding]:
        findings: list[Finding] = []
        names = [("member name", info.name)]
        if info.issym() or info.islnk():
            names.append(("link target", info.linkname))
        for what, name in names:
            if (why := zipfmt.name_problem(name)) is not None:
                findings.append(
                    _finding(
                        "tar.unsafe-path",
                        Verdict.DANGEROUS,
                        f"{what} {why}: extraction could write outside its directory",
                        symbol=name,
                        member=info.name,
                        index=index,
                    )
                )
        if info.isreg():
            member = archive.extractfile(info)
            if member is not None:
                findings += _deliver(
                    ctx, cast(BinaryIO, member), info.size, info.name, "tar.bad-entry", index
                )
        return findings


# ------------------------------------------------------------------------- gzip / bzip2 / xz


class _TooLarge(Exception):
    """Internal: the decompressed content passed the bomb cap."""


class _Decoder:
    """One compressed stream (a gzip member, a bzip2 or xz stream) with bounded output."""

    def __init__(self, fmt: str) -> None:
        self._zlib: zlib._Decompress | None = None
        self._other: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        if fmt == "gzip":
            self._zlib = zlib.decompressobj(31)
        elif fmt == "bzip2":
            self._other = bz2.BZ2Decompressor()
        else:
            self._other = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        self._input = b""

    @property
    def eof(self) -> bool:
        return self._zlib.eof if self._zlib is not None else bool(self._other and self._other.eof)

    def leftover(self) -> bytes:
        decoder = self._zlib if self._zlib is not None else self._other
        assert decoder is not None
        return decoder.unused_data + self._input

    def wants_input(self) -> bool:
        if self._input:
            return False
        return self._zlib is not None or bool(self._other and self._other.needs_input)

    def give(self, data: bytes) -> None:
        self._input += data

    def take(self, limit: int) -> bytes:
        if self.eof:
            return b""
        if self._zlib is not None:
            out = self._zlib.decompress(self._input, limit)
            self._input = self._zlib.unconsumed_tail
            return out
        assert self._other is not None
        out = self._other.decompress(self._input, limit)
        self._input = b""
        return out


def _decompress(src: BinaryIO, size: int, fmt: str, cap: int) -> Iterator[bytes]:
    """The decompressed chunks of ``size`` compressed bytes; concatenated streams followed."""
    read = _Limited(src, size).read
    decoder, produced, idle = _Decoder(fmt), 0, 0
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
            decoder = _Decoder(fmt)
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
        if deep := _too_deep(ctx):
            return deep
        fmt = self.format
        findings: list[Finding] = []
        try:
            src = stream if stream.seekable() else zipfmt.buffer_stream(stream, size)
            start = src.tell()
        except READ_ERRORS as exc:
            return [_finding(f"{fmt}.too-large", Verdict.MALFORMED, str(exc)[:300])]
        cap = max(zipfmt.BOMB_MIN_SIZE, zipfmt.BOMB_RATIO * size)
        total, problem = self._measure(src, size, cap)
        name = inner_name(ctx.name, fmt)
        if total or problem is None:
            try:
                src.seek(start)
            except READ_ERRORS as exc:
                return [_finding(f"{fmt}.bad-stream", Verdict.MALFORMED, str(exc)[:300])]
            content = _Decompressed(self._quiet(src, size, cap), total)
            findings += _deliver(ctx, content, total, name, f"{fmt}.bad-stream", None)
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
            return total, _finding(f"{fmt}.bomb", Verdict.DANGEROUS, message)
        except READ_ERRORS as exc:
            message = f"{fmt} stream is corrupt after {total} bytes: {exc}"[:300]
            return total, _finding(f"{fmt}.bad-stream", Verdict.MALFORMED, message, offset=total)
        return total, None


def scanners() -> list[Scanner]:
    """One instance of every container scanner, for the dispatcher's registry."""
    return [
        ZipScanner(),
        SevenZipScanner(),
        TarScanner(),
        CompressedScanner("gzip"),
        CompressedScanner("bzip2"),
        CompressedScanner("xz"),
    ]


__all__ = [
    "TORCHSCRIPT_DANGER",
    "CompressedScanner",
    "SevenZipScanner",
    "TarScanner",
    "ZipScanner",
    "inner_name",
    "scanners",
]
