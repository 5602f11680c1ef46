"""A streaming reader of pickle opcodes, protocols 0-5, that never unpickles anything.

Unlike :func:`pickletools.genops` it keeps no opcode argument it does not need: byte and string
payloads longer than ``materialize_limit`` are skipped (by seeking when the stream allows) and
reported as :class:`Big`, so a multi-GB pickle is walked in bounded memory. Line-terminated
arguments (protocol 0) are read with the same cap.

It also models the framing of CPython's C unpickler, which differs from ``pickletools``: a FRAME
opcode only announces how many bytes follow; the C unpickler does not require opcodes to end on
the frame boundary, and the pure-Python one does. :attr:`PickleReader.frame_end` exposes the
announced boundary so a scanner can flag an opcode that straddles it.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from modelseal.formats import FormatError

MATERIALIZE_LIMIT = 64 * 1024
_CHUNK = 1 << 16

# opcode byte -> (name, argument kind), as pickletools.opcodes defines them (a test checks it)
OPCODES: dict[int, tuple[str, str | None]] = {
    0x28: ("MARK", None),
    0x29: ("EMPTY_TUPLE", None),
    0x2E: ("STOP", None),
    0x30: ("POP", None),
    0x31: ("POP_MARK", None),
    0x32: ("DUP", None),
    0x42: ("BINBYTES", "bytes4"),
    0x43: ("SHORT_BINBYTES", "bytes1"),
    0x46: ("FLOAT", "floatnl"),
    0x47: ("BINFLOAT", "float8"),
    0x49: ("INT", "decimalnl_short"),
    0x4A: ("BININT", "int4"),
    0x4B: ("BININT1", "uint1"),
    0x4C: ("LONG", "decimalnl_long"),
    0x4D: ("BININT2", "uint2"),
    0x4E: ("NONE", None),
    0x50: ("PERSID", "stringnl_noescape"),
    0x51: ("BINPERSID", None),
    0x52: ("REDUCE", None),
    0x53: ("STRING", "stringnl"),
    0x54: ("BINSTRING", "string4"),
    0x55: ("SHORT_BINSTRING", "string1"),
    0x56: ("UNICODE", "unicodestringnl"),
    0x58: ("BINUNICODE", "unicodestring4"),
    0x5D: ("EMPTY_LIST", None),
    0x61: ("APPEND", None),
    0x62: ("BUILD", None),
    0x63: ("GLOBAL", "stringnl_noescape_pair"),
    0x64: ("DICT", None),
    0x65: ("APPENDS", None),
    0x67: ("GET", "decimalnl_short"),
    0x68: ("BINGET", "uint1"),
    0x69: ("INST", "stringnl_noescape_pair"),
    0x6A: ("LONG_BINGET", "uint4"),
    0x6C: ("LIST", None),
    0x6F: ("OBJ", None),
    0x70: ("PUT", "decimalnl_short"),
    0x71: ("BINPUT", "uint1"),
    0x72: ("LONG_BINPUT", "uint4"),
    0x73: ("SETITEM", None),
    0x74: ("TUPLE", None),
    0x75: ("SETITEMS", None),
    0x7D: ("EMPTY_DICT", None),
    0x80: ("PROTO", "uint1"),
    0x81: ("NEWOBJ", None),
    0x82: ("EXT1", "uint1"),
    0x83: ("EXT2", "uint2"),
    0x84: ("EXT4", "int4"),
    0x85: ("TUPLE1", None),
    0x86: ("TUPLE2", None),
    0x87: ("TUPLE3", None),
    0x88: ("NEWTRUE", None),
    0x89: ("NEWFALSE", None),
    0x8A: ("LONG1", "long1"),
    0x8B: ("LONG4", "long4"),
    0x8C: ("SHORT_BINUNICODE", "unicodestring1"),
    0x8D: ("BINUNICODE8", "unicodestring8"),
    0x8E: ("BINBYTES8", "bytes8"),
    0x8F: ("EMPTY_SET", None),
    0x90: ("ADDITEMS", None),
    0x91: ("FROZENSET", None),
    0x92: ("NEWOBJ_EX", None),
    0x93: ("STACK_GLOBAL", None),
    0x94: ("MEMOIZE", None),
    0x95: ("FRAME", "uint8"),
    0x96: ("BYTEARRAY8", "bytearray8"),
    0x97: ("NEXT_BUFFER", None),
    0x98: ("READONLY_BUFFER", None),
}
FRAME = ord("\x95")
_new = tuple.__new__  # builds an Op without the Python-level NamedTuple constructor
_SHORT_BINUNICODE = 0x8C
_SHORT = frozenset({0x8C, 0x43})  # SHORT_BINUNICODE, SHORT_BINBYTES


class Big(NamedTuple):
    """A payload too large to keep: its kind (``bytes`` or ``str``), length and first bytes."""

    kind: str
    length: int
    head: bytes


class Op(NamedTuple):
    """One opcode: name, offset of the opcode byte, decoded argument, offset after it."""

    name: str
    pos: int
    arg: object
    end: int


class PickleReader:
    """Reads opcodes one at a time from ``stream``, never beyond ``limit`` bytes."""

    def __init__(
        self,
        stream: BinaryIO,
        limit: int,
        *,
        base: int = 0,
        materialize_limit: int = MATERIALIZE_LIMIT,
    ) -> None:
        self._stream = stream
        self._seekable = stream.seekable()
        self._buf = b""
        self._off = 0  # read index into _buf
        self._pos = base  # absolute position of _buf[_off]
        self._limit = base + limit  # absolute end of readable bytes
        self._raw_pos = base  # absolute position of the underlying stream
        self._mat = materialize_limit
        self.frame_end: int | None = None

    @property
    def position(self) -> int:
        return self._pos

    @property
    def limit(self) -> int:
        """Absolute offset of the end of the readable bytes."""
        return self._limit

    def at_end(self) -> bool:
        return self._pos >= self._limit

    # -- buffered primitives ---------------------------------------------------------------

    def _fill(self, need: int) -> bool:
        """Ensure ``need`` bytes are buffered (fewer only at the end); True when they are."""
        have = len(self._buf) - self._off
        if have >= need:
            return True
        want = min(max(need - have, _CHUNK), self._limit - self._raw_pos)
        if want <= 0:
            return False
        data = self._stream.read(want)
        self._raw_pos += len(data)
        self._buf = self._buf[self._off :] + data
        self._off = 0
        return len(self._buf) >= need

    def read(self, n: int) -> bytes:
        if n < 0 or self._pos + n > self._limit or not self._fill(n):
            raise FormatError(f"pickle truncated: needed {n} bytes", offset=self._pos)
        out = self._buf[self._off : self._off + n]
        self._off += n
        self._pos += n
        return out

    def skip(self, n: int) -> bytes:
        """Skip ``n`` bytes (which must exist); returns the first few of them."""
        if n < 0 or self._pos + n > self._limit:
            raise FormatError(f"pickle truncated: payload of {n} bytes", offset=self._pos)
        have = len(self._buf) - self._off
        head = self._buf[self._off : self._off + min(n, 16)]
        if n <= have:
            self._off += n
            self._pos += n
            return head
        rest = n - have
        self._buf, self._off = b"", 0
        if self._seekable:
            self._stream.seek(rest, 1)
            self._raw_pos += rest
        else:
            while rest:
                got = self._stream.read(min(rest, 1 << 20))
                if not got:
                    raise FormatError("pickle truncated inside a payload", offset=self._pos)
                if len(head) < 16:
                    head += got[: 16 - len(head)]
                self._raw_pos += len(got)
                rest -= len(got)
        self._pos += n
        return head

    def payload(self, n: int, kind: str) -> bytes | Big:
        if n <= self._mat:
            return self.read(n)
        return Big(kind, n, self.skip(n))

    def readline(self) -> bytes | Big:
        """A newline-terminated argument without its newline (capped; longer ones are Big)."""
        start = self._pos
        kept = bytearray()
        scanned = 0
        big = False
        while True:
            if self._pos >= self._limit or not self._fill(1):
                raise FormatError("pickle truncated: unterminated line argument", offset=start)
            window = self._buf[self._off :]
            nl = window.find(b"\n")
            part = window if nl < 0 else window[:nl]
            if not big and len(kept) + len(part) <= self._mat:
                kept += part
            else:
                big = True
                if len(kept) < 16:
                    kept += part[: 16 - len(kept)]
            scanned += len(part)
            used = len(part) + (1 if nl >= 0 else 0)
            used = min(used, self._limit - self._pos)
            self._off += used
            self._pos += used
            if nl >= 0:
                return Big("line", scanned, bytes(kept[:16])) if big else bytes(kept)

    # -- opcodes ---------------------------------------------------------------------------

    def next_op(self) -> Op:
        """The next opcode with its decoded argument; FormatError on an invalid one."""
        pos = self._pos
        off = self._off
        buf = self._buf
        blen = len(buf)
        limit = self._limit
        if blen - off < 9 and blen - off < limit - pos:
            self._fill(9)  # opcode plus the longest fixed-size argument, when available
            off, buf = self._off, self._buf
            blen = len(buf)
        if off >= blen or pos >= limit:
            raise FormatError("pickle truncated: needed 1 bytes", offset=pos)
        code = buf[off]
        spec = _SPECS[code]
        if spec is None:
            raise FormatError(f"invalid pickle opcode 0x{code:02x}", offset=pos)
        name, fixed, size, reader = spec
        if fixed is not None:  # fast path: a fixed-size argument already buffered
            end = pos + 1 + size
            if off + 1 + size > blen or end > limit:
                raise FormatError(f"pickle truncated: needed {size} bytes", offset=pos + 1)
            self._off = off + 1 + size
            self._pos = end
            return _new(Op, (name, pos, fixed.unpack_from(buf, off + 1)[0], end))
        if reader is None:
            self._off = off + 1
            self._pos = pos + 1
            return _new(Op, (name, pos, None, pos + 1))
        if code in _SHORT and off + 1 < blen:  # fast path: 1-byte length, buffered
            n = buf[off + 1]
            end = pos + 2 + n
            if off + 2 + n <= blen and end <= limit:
                raw = buf[off + 2 : off + 2 + n]
                self._off = off + 2 + n
                self._pos = end
                if code == _SHORT_BINUNICODE:
                    try:
                        return _new(Op, (name, pos, raw.decode("utf-8", "surrogatepass"), end))
                    except UnicodeDecodeError as exc:
                        raise FormatError("string argument is not UTF-8", offset=pos) from exc
                return _new(Op, (name, pos, raw, end))
        self._off = off + 1
        self._pos = pos + 1
        arg = reader(self)
        return _new(Op, (name, pos, arg, self._pos))


def _u(fmt: str, size: int) -> Callable[[PickleReader], object]:
    def read(r: PickleReader) -> object:
        return struct.unpack(fmt, r.read(size))[0]

    return read


def _sized(length_fmt: str, length_size: int, kind: str) -> Callable[[PickleReader], object]:
    def read(r: PickleReader) -> object:
        (n,) = struct.unpack(length_fmt, r.read(length_size))
        if n < 0:
            raise FormatError("negative length in pickle", offset=r.position)
        data = r.payload(n, kind)
        if kind == "str" and isinstance(data, bytes):
            try:
                return data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise FormatError(f"string argument is not UTF-8: {exc.reason}",
                                  offset=r.position) from exc  # fmt: skip
        return data

    return read


def _long(length_fmt: str, length_size: int) -> Callable[[PickleReader], object]:
    def read(r: PickleReader) -> object:
        (n,) = struct.unpack(length_fmt, r.read(length_size))
        if n < 0:
            raise FormatError("negative LONG length", offset=r.position)
        data = r.payload(n, "bytes")
        if isinstance(data, Big):
            return data
        return int.from_bytes(data, "little", signed=True)

    return read


def _text(line: bytes | Big, encoding: str = "utf-8") -> str | Big:
    if isinstance(line, Big):
        return line
    return line.decode(encoding, "surrogateescape")


def _stringnl(r: PickleReader) -> object:
    """STRING: a repr()-style quoted string, protocol 0."""
    line = r.readline()
    if isinstance(line, Big):
        return line
    if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
        try:
            return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
        except ValueError as exc:
            raise FormatError(f"bad STRING escape: {exc}", offset=r.position) from exc
    raise FormatError("STRING argument is not quoted", offset=r.position)


def _unicodenl(r: PickleReader) -> object:
    line = r.readline()
    if isinstance(line, Big):
        return line
    return line.decode("raw-unicode-escape", "replace")


def _pair(r: PickleReader) -> object:
    return (_text(r.readline()), _text(r.readline()))


def _decimal(r: PickleReader) -> object:
    line = r.readline()
    if isinstance(line, Big):
        return line
    text = line.decode("ascii", "replace").rstrip("L")
    if text in ("00", "01"):
        return text == "01"
    try:
        return int(text)
    except ValueError as exc:
        raise FormatError(f"bad integer literal {text[:20]!r}", offset=r.position) from exc


def _floatnl(r: PickleReader) -> object:
    line = r.readline()
    if isinstance(line, Big):
        return line
    try:
        return float(line)
    except ValueError as exc:
        raise FormatError("bad float literal", offset=r.position) from exc


_ARG_READERS: dict[str, Callable[[PickleReader], object]] = {
    "uint1": _u("<B", 1),
    "uint2": _u("<H", 2),
    "int4": _u("<i", 4),
    "uint4": _u("<I", 4),
    "uint8": _u("<Q", 8),
    "float8": _u(">d", 8),
    "long1": _long("<B", 1),
    "long4": _long("<i", 4),
    "string1": _sized("<B", 1, "bytes"),
    "string4": _sized("<i", 4, "bytes"),
    "bytes1": _sized("<B", 1, "bytes"),
    "bytes4": _sized("<I", 4, "bytes"),
    "bytes8": _sized("<Q", 8, "bytes"),
    "bytearray8": _sized("<Q", 8, "bytes"),
    "unicodestring1": _sized("<B", 1, "str"),
    "unicodestring4": _sized("<I", 4, "str"),
    "unicodestring8": _sized("<Q", 8, "str"),
    "stringnl": _stringnl,
    "stringnl_noescape": lambda r: _text(r.readline()),
    "stringnl_noescape_pair": _pair,
    "unicodestringnl": _unicodenl,
    "decimalnl_short": _decimal,
    "decimalnl_long": _decimal,
    "floatnl": _floatnl,
}

_FIXED = {"uint1": "<B", "uint2": "<H", "int4": "<i", "uint4": "<I", "uint8": "<Q", "float8": ">d"}

# opcode byte -> (name, fixed-size struct or None, its size, variable-argument reader or None)
_SPECS: list[tuple[str, struct.Struct | None, int, Callable[[PickleReader], object] | None] | None]
_SPECS = [None] * 256
for _code, (_name, _kind) in OPCODES.items():
    if _kind in _FIXED:
        _fixed = struct.Struct(_FIXED[_kind])
        _SPECS[_code] = (_name, _fixed, _fixed.size, None)
    else:
        _SPECS[_code] = (_name, None, 0, _ARG_READERS[_kind] if _kind else None)
