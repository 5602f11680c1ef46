"""A zip reader driven by the central directory, tolerant the way PyTorch's loader is.

PyTorch (miniz) finds the End Of Central Directory record (APPNOTE 4.3.16) by searching backwards
from the end of the file, walks the central directory (4.3.12), and for each entry reads the local
header only to learn where the data starts (4.3.7): it ignores the CRC, does not compare the local
name with the central one, and tolerates flag bits 0x2/0x4/0x8/0x800. The stdlib ``zipfile`` is
stricter (it raises on all of these), which is how scanners built on it were bypassed
(CVE-2025-1944 name mismatch, CVE-2025-10156 bad CRC, CVE-2025-1945 flag bits). This reader sees
what PyTorch sees, and reports each oddity (a ``problem`` on the entry, a local header whose name
differs) for the scanner to turn into findings.

Everything is bounded: every offset and size is checked against the file size before a read, the
central directory is read whole only up to :data:`MAX_CENTRAL_SIZE`, decompression is incremental
and never produces more than the declared uncompressed size (more is a :class:`ZipBombError`),
and an entry declaring more than :data:`BOMB_MIN_SIZE` at a ratio above :data:`BOMB_RATIO` is
refused before any byte is inflated. Only :class:`FormatError` (or its subclass
:class:`ZipBombError`) is raised on bad input.
"""

from __future__ import annotations

import io
import lzma
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats.inflate import Inflater

SIG_LOCAL = b"PK\x03\x04"
SIG_CENTRAL = b"PK\x01\x02"
SIG_EOCD = b"PK\x05\x06"
SIG_EOCD64 = b"PK\x06\x06"
SIG_EOCD64_LOCATOR = b"PK\x06\x07"

EOCD_SIZE = 22  # APPNOTE 4.3.16, without the comment
MAX_COMMENT = 0xFFFF  # the comment length is a 16-bit field
LOCAL_SIZE = 30  # APPNOTE 4.3.7, without name and extra field
CENTRAL_SIZE = 46  # APPNOTE 4.3.12, without name, extra field and comment

MAX_CENTRAL_SIZE = 64 << 20  # a central directory larger than this is refused
MAX_ENTRIES = 1 << 20
MAX_IN_MEMORY = 256 << 20  # a nested zip loaded into memory (see buffer_stream)
BOMB_RATIO = 1000  # an entry inflating more than this ratio ...
BOMB_MIN_SIZE = 1 << 30  # ... to more than this many bytes is refused as a zip bomb
CHUNK = 1 << 20

FLAG_ENCRYPTED = 0x1  # APPNOTE 4.4.4 bit 0
FLAG_PATCHED = 0x20  # bit 5: compressed patched data
FLAG_STRONG_ENCRYPTION = 0x40  # bit 6
FLAG_UTF8 = 0x800  # bit 11: name and comment are UTF-8
# The bits PyTorch's miniz refuses ("unsupported encryption"); older loaders ignored them.
REFUSED_FLAGS = FLAG_ENCRYPTED | FLAG_PATCHED | FLAG_STRONG_ENCRYPTION

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
METHODS = {STORED: "stored", DEFLATED: "deflate", BZIP2: "bzip2", LZMA: "lzma"}

_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR = struct.Struct("<4sIQI")
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF


class ZipBombError(FormatError):
    """An entry inflates beyond its declared size, or declares an implausible size and ratio."""


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One central directory record (APPNOTE 4.3.12), with ZIP64 sizes already applied."""

    index: int
    name: str  # decoded as UTF-8 when flag 0x800 is set, else cp437
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    uncompressed_size: int
    header_offset: int  # absolute offset of the local header in the file
    problem: str | None = None  # why this entry cannot be read, when the record itself says so

    @property
    def encrypted(self) -> bool:
        """A flag bit PyTorch treats as encryption is set (the data may still be plain)."""
        return bool(self.flags & REFUSED_FLAGS)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.uncompressed_size == 0


@dataclass(frozen=True, slots=True)
class CentralDirectory:
    """Where the central directory is, from the (ZIP64) end of central directory record."""

    offset: int  # absolute offset of the first central record
    size: int
    count: int  # entries the end record declares (compare with what was parsed)
    eocd_offset: int
    zip64: bool
    shift: int  # bytes prepended to the archive (self-extracting stub); added to every offset


@dataclass(frozen=True, slots=True)
class LocalHeader:
    """The local file header (APPNOTE 4.3.7) of an entry."""

    raw_name: bytes
    flags: int
    method: int
    data_offset: int  # absolute offset of the entry's (compressed) data

    def name_differs(self, entry: ZipEntry) -> bool:
        """The local name is not the central name (CVE-2025-1944: stdlib raises, PyTorch loads)."""
        return self.raw_name != entry.raw_name


def _read_at(file: BinaryIO, size: int, offset: int, n: int, what: str) -> bytes:
    if offset < 0 or n < 0 or offset + n > size:
        raise FormatError(f"{what} lies outside the file", offset=offset)
    file.seek(offset)
    data = file.read(n)
    if len(data) != n:
        raise FormatError(f"{what} is truncated", offset=offset)
    return data


def decode_name(raw: bytes, flags: int) -> str:
    """An entry name as PyTorch and zipfile decode it: UTF-8 with flag 0x800, else cp437."""
    return raw.decode("utf-8", "replace") if flags & FLAG_UTF8 else raw.decode("cp437")


def name_problem(name: str) -> str | None:
    """Why a member name is unsafe to extract (absolute, ``..``, backslash, NUL), or None."""
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "contains a '..' component"
    if "\\" in name:
        return "contains a backslash"
    return None


def find_central_directory(file: BinaryIO, size: int) -> CentralDirectory:
    """Locate the central directory from the end record, searched backwards (APPNOTE 4.3.16)."""
    if size < EOCD_SIZE:
        raise FormatError("too small to be a zip archive")
    tail_start = max(0, size - EOCD_SIZE - MAX_COMMENT)
    tail = _read_at(file, size, tail_start, size - tail_start, "end of central directory")
    pos = len(tail)
    while True:
        pos = tail.rfind(SIG_EOCD, 0, pos)
        if pos < 0:
            raise FormatError("no end of central directory record")
        if pos + EOCD_SIZE <= len(tail):
            fields = _EOCD.unpack_from(tail, pos)
            if pos + EOCD_SIZE + fields[7] <= len(tail):
                break
    eocd = tail_start + pos
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = fields
    if disk not in (0, _U16) or cd_disk not in (0, _U16):
        raise FormatError("multi-disk archives are not supported", offset=eocd)
    zip64 = False
    end = eocd  # the central directory ends where the (ZIP64) end records begin
    if eocd >= _LOCATOR.size:
        locator = _read_at(file, size, eocd - _LOCATOR.size, _LOCATOR.size, "zip64 locator")
        sig, _, eocd64, _ = _LOCATOR.unpack(locator)
        if sig == SIG_EOCD64_LOCATOR:
            record = _read_at(file, size, eocd64, _EOCD64.size, "zip64 end record")
            if record[:4] != SIG_EOCD64:
                raise FormatError("bad zip64 end of central directory record", offset=eocd64)
            _, _, _, _, _, _, _, count, cd_size, cd_offset = _EOCD64.unpack(record)
            zip64 = True
            end = eocd64
    if cd_size > MAX_CENTRAL_SIZE:
        raise FormatError(f"central directory of {cd_size} bytes is too large", offset=eocd)
    # As declared (miniz); else where it must be if a stub was prepended (zipfile's "concat").
    shift = 0
    for start in (cd_offset, end - cd_size):
        if start >= 0 and start + cd_size <= size:
            file.seek(start)
            if cd_size == 0 or file.read(4) == SIG_CENTRAL:
                shift = start - cd_offset
                break
    else:
        raise FormatError("central directory not found where declared", offset=cd_offset)
    return CentralDirectory(cd_offset + shift, cd_size, count, eocd, zip64, shift)


def _zip64_sizes(
    extra: bytes, usize: int, csize: int, offset: int, disk: int
) -> tuple[int, int, int, str | None]:
    """Apply the ZIP64 extended information extra field (APPNOTE 4.5.3) to a central record."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if tag != 0x0001:
            continue
        values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        if usize == _U32 and values:
            usize = values.pop(0)
        if csize == _U32 and values:
            csize = values.pop(0)
        if offset == _U32 and values:
            offset = values.pop(0)
        break
    if _U32 in (usize, csize, offset):
        return usize, csize, offset, "zip64 sizes are missing from the extra field"
    if disk not in (0, _U16):
        return usize, csize, offset, "entry lives on another disk"
    return usize, csize, offset, None


def iter_entries(
    file: BinaryIO, size: int, directory: CentralDirectory | None = None
) -> Iterator[ZipEntry]:
    """Every central directory record, in order (``directory`` found when not given).

    A record whose sizes cannot be known still comes out, with ``problem`` set; a central
    directory that breaks mid-way raises :class:`FormatError` after the records before it.
    """
    cd = directory or find_central_directory(file, size)
    data = _read_at(file, size, cd.offset, cd.size, "central directory")
    pos = index = 0
    while pos < len(data):
        if index >= MAX_ENTRIES:
            raise FormatError(f"more than {MAX_ENTRIES} entries", offset=cd.offset + pos)
        if pos + CENTRAL_SIZE > len(data) or data[pos : pos + 4] != SIG_CENTRAL:
            raise FormatError(f"bad central directory record {index}", offset=cd.offset + pos)
        (_, _, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, disk, _, _, offset) = (
            _CENTRAL.unpack_from(data, pos)
        )
        end = pos + CENTRAL_SIZE + nlen + xlen + clen
        if end > len(data):
            raise FormatError(f"central record {index} overruns the directory", offset=cd.offset)
        raw_name = data[pos + CENTRAL_SIZE : pos + CENTRAL_SIZE + nlen]
        extra = data[pos + CENTRAL_SIZE + nlen : pos + CENTRAL_SIZE + nlen + xlen]
        usize, csize, offset, problem = _zip64_sizes(extra, usize, csize, offset, disk)
        offset += cd.shift
        if problem is None and offset + LOCAL_SIZE > size:
            problem = "local header offset lies outside the file"
        name = decode_name(raw_name, flags)
        yield ZipEntry(index, name, raw_name, flags, method, crc, csize, usize, offset, problem)
        pos = end
        index += 1


def read_local_header(file: BinaryIO, size: int, entry: ZipEntry) -> LocalHeader:
    """The entry's local header; checks that its data lies inside the file."""
    if entry.problem is not None:
        raise FormatError(entry.problem, offset=entry.header_offset)
    head = _read_at(file, size, entry.header_offset, LOCAL_SIZE, "local header")
    sig, _, flags, method, _, _, _, _, _, nlen, xlen = _LOCAL.unpack(head)
    if sig != SIG_LOCAL:
        raise FormatError("bad local header signature", offset=entry.header_offset)
    name_at = entry.header_offset + LOCAL_SIZE
    raw_name = _read_at(file, size, name_at, nlen, "local name")
    data_offset = name_at + nlen + xlen
    if data_offset + entry.compressed_size > size:
        raise FormatError("entry data runs past the end of the file", offset=data_offset)
    return LocalHeader(raw_name, flags, method, data_offset)


def _inflater(method: int, lzma_filter: dict[str, int] | None) -> Inflater:
    """The decompressor for a zip member's method."""
    if method == DEFLATED:
        return Inflater.for_format("deflate")
    if method == BZIP2:
        return Inflater.for_format("bzip2")
    return Inflater.for_format("lzma-raw", lzma_filter)


def _lzma_filter(file: BinaryIO, size: int, offset: int, usize: int) -> tuple[dict[str, int], int]:
    """The LZMA1 filter of a method-14 entry (APPNOTE 5.8.8) and the header length to skip."""
    head = _read_at(file, size, offset, 4, "lzma header")
    (props_size,) = struct.unpack_from("<H", head, 2)
    if props_size != 5:
        raise FormatError(f"lzma properties of {props_size} bytes, expected 5", offset=offset)
    props = _read_at(file, size, offset + 4, 5, "lzma properties")
    d = props[0]
    if d >= 9 * 5 * 5:
        raise FormatError("bad lzma properties byte", offset=offset + 4)
    (dict_size,) = struct.unpack_from("<I", props, 1)
    # The decoder allocates the dictionary up front; it never needs more than the output size.
    dict_size = max(4096, min(dict_size, usize, 1 << 30))
    lc, lp, pb = d % 9, d // 9 % 5, d // 45
    return {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}, 9


class EntryStream(io.BufferedIOBase, BinaryIO):
    """The uncompressed bytes of one entry, read forward (stored entries may also seek).

    Raises :class:`FormatError` from ``read`` when the data is truncated or corrupt, and
    :class:`ZipBombError` when it inflates beyond the declared size. The CRC is not checked.
    """

    def __init__(self, file: BinaryIO, size: int, entry: ZipEntry, local: LocalHeader) -> None:
        super().__init__()
        self.entry = entry
        self.local = local
        self._file = file
        self._pos = local.data_offset  # next compressed byte to read
        self._end = local.data_offset + entry.compressed_size
        self._out = 0  # uncompressed bytes returned so far
        self._size = entry.uncompressed_size
        self._inflater: Inflater | None = None
        self._error: FormatError | None = None
        try:
            if entry.method == LZMA:
                lzma_filter, skip = _lzma_filter(file, size, self._pos, self._size)
                self._pos += skip
                self._inflater = _inflater(LZMA, lzma_filter)
            elif entry.method != STORED:
                self._inflater = _inflater(entry.method, None)
        except (lzma.LZMAError, ValueError, MemoryError) as exc:
            raise FormatError(f"bad {METHODS[entry.method]} parameters: {exc}") from exc

    @property
    def name_differs(self) -> bool:
        return self.local.name_differs(self.entry)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._inflater is None and not self.closed

    def tell(self) -> int:
        return self._out

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if self._inflater is not None:
            raise io.UnsupportedOperation("compressed zip entries are read forward only")
        base = {0: 0, 1: self._out, 2: self._size}[whence]
        self._out = max(0, min(self._size, base + offset))
        return self._out

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes; an error met after some bytes is raised by the next read."""
        if self._error is not None:
            raise self._error
        want = self._size - self._out if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        while got < want:
            try:
                chunk = self._next(min(want - got, CHUNK))
            except FormatError as exc:
                if not parts:
                    raise
                self._error = exc
                break
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def _next(self, limit: int) -> bytes:
        remaining = self._size - self._out
        if remaining <= 0 or limit <= 0:
            if remaining <= 0 and self._inflater is not None:
                self._check_end()
            return b""
        limit = min(limit, remaining)
        if self._inflater is None:
            start = self._end - self._size + self._out
            self._file.seek(start)
            data = self._file.read(limit)
            if len(data) != limit:
                raise FormatError("stored data is truncated", offset=start)
        else:
            data = self._inflate(self._inflater, limit)
        self._out += len(data)
        return data

    def _feed(self, inflater: Inflater) -> bool:
        if self._pos >= self._end:
            return False
        self._file.seek(self._pos)
        data = self._file.read(min(CHUNK, self._end - self._pos))
        if not data:
            raise FormatError("compressed data is truncated", offset=self._pos)
        self._pos += len(data)
        inflater.give(data)
        return True

    def _inflate(self, inflater: Inflater, limit: int) -> bytes:
        idle = 0
        while True:
            try:
                out = inflater.take(limit)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                raise FormatError(f"corrupt {METHODS[self.entry.method]} data: {exc}") from exc
            if out:
                return out
            if inflater.eof:
                raise FormatError(
                    f"data ends after {self._out} of {self._size} declared bytes", offset=self._pos
                )
            if inflater.wants_input() or idle > 2:
                if not self._feed(inflater):
                    raise FormatError("compressed data ends early", offset=self._pos)
                idle = 0
            else:
                idle += 1

    def _check_end(self) -> None:
        """All declared bytes are out: the rest of the stream must not produce more."""
        inflater = self._inflater
        assert inflater is not None
        idle = 0
        while not inflater.eof:
            try:
                extra = inflater.take(1)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
                return  # trailing garbage after the declared bytes: PyTorch never reads it
            if extra:
                raise ZipBombError(f"entry inflates beyond its declared {self._size} bytes")
            if inflater.wants_input() or idle > 2:
                if not self._feed(inflater):
                    return
                idle = 0
            else:
                idle += 1


def check_bomb(entry: ZipEntry) -> None:
    """Refuse an entry whose declared sizes make it a zip bomb (ratio and absolute size)."""
    usize, csize = entry.uncompressed_size, entry.compressed_size
    if usize > BOMB_MIN_SIZE and usize > BOMB_RATIO * max(csize, 1):
        raise ZipBombError(f"declares {usize} bytes from {csize} compressed bytes")


def open_entry(
    file: BinaryIO, entry: ZipEntry, *, size: int | None = None, allow_encrypted: bool = False
) -> EntryStream:
    """A stream of the entry's uncompressed bytes, read as PyTorch would (CRC ignored).

    ``size`` is the file size (found by seeking to the end when omitted). With
    ``allow_encrypted`` an entry whose encryption flag is set is read as if it were plain:
    the trick of picklescan's ``malicious1_0x1.zip``, which older loaders accepted.
    """
    if size is None:
        size = file.seek(0, io.SEEK_END)
    if entry.problem is not None:
        raise FormatError(entry.problem, offset=entry.header_offset)
    if entry.encrypted and not allow_encrypted:
        raise FormatError("entry is encrypted", offset=entry.header_offset)
    if entry.method not in METHODS:
        raise FormatError(f"unsupported compression method {entry.method}")
    if entry.method == STORED and entry.compressed_size != entry.uncompressed_size:
        raise FormatError("stored entry whose compressed and uncompressed sizes differ")
    check_bomb(entry)
    local = read_local_header(file, size, entry)
    return EntryStream(file, size, entry, local)


def read_entry(
    file: BinaryIO,
    entry: ZipEntry,
    *,
    size: int | None = None,
    cap: int = MAX_IN_MEMORY,
    allow_encrypted: bool = False,
) -> bytes:
    """The whole uncompressed entry in memory, refused when it declares more than ``cap``."""
    if entry.uncompressed_size > cap:
        raise FormatError(f"entry of {entry.uncompressed_size} bytes exceeds the {cap} cap")
    stream = open_entry(file, entry, size=size, allow_encrypted=allow_encrypted)
    data = stream.read()
    stream.read(1)  # reaches the end check: no bytes beyond the declared size
    if len(data) != entry.uncompressed_size:
        raise FormatError("entry is shorter than declared")
    return data


def buffer_stream(stream: BinaryIO, size: int, cap: int = MAX_IN_MEMORY) -> io.BytesIO:
    """A forward-only stream's ``size`` bytes in memory, for a nested archive (at most ``cap``)."""
    if size > cap:
        raise FormatError(f"nested archive of {size} bytes exceeds the {cap}-byte in-memory cap")
    buffer = io.BytesIO()
    while buffer.tell() < size:
        chunk = stream.read(min(CHUNK, size - buffer.tell()))
        if not chunk:
            raise FormatError("nested archive is truncated", offset=buffer.tell())
        buffer.write(chunk)
    buffer.seek(0)
    return buffer


__all__ = [
    "BOMB_MIN_SIZE",
    "BOMB_RATIO",
    "MAX_IN_MEMORY",
    "METHODS",
    "REFUSED_FLAGS",
    "CentralDirectory",
    "EntryStream",
    "LocalHeader",
    "ZipBombError",
    "ZipEntry",
    "buffer_stream",
    "check_bomb",
    "decode_name",
    "find_central_directory",
    "iter_entries",
    "name_problem",
    "open_entry",
    "read_entry",
    "read_local_header",
]
