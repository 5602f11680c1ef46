"""The NumPy ``.npy`` header, parsed without numpy and without ``eval``.

Layout (numpy ``lib.format``): magic ``\\x93NUMPY``, version byte pair (1.0, 2.0 or 3.0), header
length (u16 for 1.0, u32 otherwise, little-endian), then the header: a Python dict literal with
exactly the keys ``descr``, ``fortran_order`` and ``shape``, padded with spaces and a newline.
The array data follows. An object dtype means the data is a pickle (numpy writes the whole array
with ``pickle.dump``), so ``has_object`` must be exact: it is computed from every field type of a
structured dtype, and any type string outside the canonical ``dtype.str`` grammar is an error
rather than a guess (numpy would accept ``'object'``; we refuse it).

The dict literal is read by a tiny strict recursive-descent parser: strings, ``True``/``False``,
decimal ints, tuples, lists and the single top-level dict. Anything else is a FormatError.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

from modelseal.formats import FormatError

MAGIC = b"\x93NUMPY"
PREAMBLE = 8  # magic + version
MAX_HEADER = 1 << 20  # numpy itself refuses more than 10 000 bytes unless the file is trusted
MAX_DEPTH = 32  # nesting of tuples/lists in the literal
MAX_INT_DIGITS = 20
MAX_ARRAY_BYTES = 1 << 63  # a data size beyond this is an overflow, not an array

PyLiteral: TypeAlias = (
    "str | bool | int | tuple[PyLiteral, ...] | list[PyLiteral] | dict[str, PyLiteral]"
)

_TYPESTR = re.compile(r"([<>|=]?)([biufcSUVOMm])(\d{0,12})(\[[0-9A-Za-z]{1,12}\])?")
_SIZES = {
    "b": {1},
    "i": {1, 2, 4, 8},
    "u": {1, 2, 4, 8},
    "f": {2, 4, 8, 12, 16},
    "c": {8, 16, 24, 32},
}


@dataclass(frozen=True, slots=True)
class NpyHeader:
    """A parsed header. ``data_size`` is ``None`` for object dtypes (the data is a pickle)."""

    version: tuple[int, int]
    descr: str | list[PyLiteral]
    fortran_order: bool
    shape: tuple[int, ...]
    data_offset: int
    has_object: bool
    itemsize: int | None
    data_size: int | None


class _LiteralParser:
    """Recursive descent over the restricted Python literal grammar of an npy header."""

    def __init__(self, text: str, base: int) -> None:
        self.text = text
        self.pos = 0
        self.base = base  # file offset of text[0], for error offsets

    def error(self, message: str) -> FormatError:
        return FormatError(f"npy header: {message}", offset=self.base + self.pos)

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        self.ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def parse_top(self) -> dict[str, PyLiteral]:
        if self.peek() != "{":
            raise self.error("the header is not a dict literal")
        result = self.value(0)
        if self.peek() != "":
            raise self.error("trailing characters after the dict")
        assert isinstance(result, dict)
        return result

    def value(self, depth: int) -> PyLiteral:
        if depth > MAX_DEPTH:
            raise self.error("nested too deeply")
        char = self.peek()
        if char in ("'", '"'):
            return self.string()
        if char == "u" and self.text[self.pos + 1 : self.pos + 2] in ("'", '"'):
            self.pos += 1
            return self.string()
        if char == "(":
            return self.tuple_or_group(depth)
        if char == "[":
            self.pos += 1
            return self.items("]", depth)
        if char == "{":
            if depth != 0:
                raise self.error("nested dict")
            return self.mapping()
        if char == "-" or char.isdigit():
            return self.integer()
        for word, flag in (("True", True), ("False", False)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return flag
        raise self.error(f"unexpected {char!r}" if char else "unexpected end")

    def string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        escapes = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
        while True:
            if self.pos >= len(self.text):
                raise self.error("unterminated string")
            char = self.text[self.pos]
            self.pos += 1
            if char == quote:
                return "".join(out)
            if char == "\n":
                raise self.error("newline in string")
            if char == "\\":
                esc = self.text[self.pos : self.pos + 1]
                if esc not in escapes:
                    raise self.error("unsupported escape in string")
                out.append(escapes[esc])
                self.pos += 1
            else:
                out.append(char)

    def integer(self) -> int:
        start = self.pos
        if self.text[self.pos] == "-":
            self.pos += 1
        digits = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in "0123456789":
            self.pos += 1
        count = self.pos - digits
        if count == 0 or count > MAX_INT_DIGITS:
            raise self.error("bad integer")
        if count > 1 and self.text[digits] == "0":
            raise self.error("integer with a leading zero")
        number = int(self.text[start : self.pos])
        if self.text[self.pos : self.pos + 1] in ("L", "l"):  # Python 2 era headers
            self.pos += 1
        return number

    def items(self, close: str, depth: int) -> list[PyLiteral]:
        out: list[PyLiteral] = []
        while True:
            if self.peek() == close:
                self.pos += 1
                return out
            out.append(self.value(depth + 1))
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != close:
                raise self.error(f"expected ',' or {close!r}")

    def tuple_or_group(self, depth: int) -> PyLiteral:
        self.pos += 1
        if self.peek() == ")":
            self.pos += 1
            return ()
        first = self.value(depth + 1)
        if self.peek() == ")":  # (x) is x, not a tuple
            self.pos += 1
            return first
        self.expect(",")
        return (first, *self.items(")", depth))

    def mapping(self) -> dict[str, PyLiteral]:
        self.pos += 1
        out: dict[str, PyLiteral] = {}
        while True:
            if self.peek() == "}":
                self.pos += 1
                return out
            if self.peek() not in ("'", '"'):
                raise self.error("dict key is not a string")
            key = self.string()
            if key in out:
                raise self.error(f"duplicate key {key!r}")
            self.expect(":")
            out[key] = self.value(1)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.error("expected ',' or '}'")


def parse_literal(text: str, base: int = 0) -> dict[str, PyLiteral]:
    """Parse the header dict literal (the strict grammar above)."""
    return _LiteralParser(text, base).parse_top()


def _typestr_info(typestr: str, offset: int) -> tuple[int, bool]:
    """(itemsize, is_object) of a canonical numpy type string such as ``'<f8'`` or ``'|O'``."""
    match = _TYPESTR.fullmatch(typestr)
    if match is None:
        raise FormatError(f"npy header: unsupported dtype {typestr[:40]!r}", offset=offset)
    _order, kind, digits, unit = match.groups()
    if unit and kind not in "Mm":
        raise FormatError(f"npy header: unsupported dtype {typestr!r}", offset=offset)
    if kind == "O":
        if digits not in ("", "4", "8"):
            raise FormatError(f"npy header: bad object dtype {typestr!r}", offset=offset)
        return 8, True
    if not digits:
        raise FormatError(f"npy header: dtype {typestr!r} has no size", offset=offset)
    size = int(digits)
    if kind in "Mm":
        if size != 8:
            raise FormatError(f"npy header: bad datetime dtype {typestr!r}", offset=offset)
    elif kind in _SIZES:
        if size not in _SIZES[kind]:
            raise FormatError(f"npy header: bad size in dtype {typestr!r}", offset=offset)
    elif kind == "U":
        size *= 4
    return size, False


def _checked_product(numbers: tuple[int, ...], start: int, offset: int) -> int:
    total = start
    for number in numbers:
        total *= number
        if total > MAX_ARRAY_BYTES:
            raise FormatError("npy header: array size overflows", offset=offset)
    return total


def _shape(value: PyLiteral, offset: int) -> tuple[int, ...]:
    if isinstance(value, bool) or not isinstance(value, (int, tuple)):
        raise FormatError("npy header: shape is not a tuple of ints", offset=offset)
    dims = (value,) if isinstance(value, int) else value
    out: list[int] = []
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise FormatError(
                "npy header: shape is not a tuple of non-negative ints", offset=offset
            )
        out.append(dim)
    return tuple(out)


def descr_info(descr: PyLiteral, offset: int = 0, depth: int = 0) -> tuple[int, bool]:
    """(itemsize, contains an object field) of a ``descr``: a type string or a field list."""
    if depth > MAX_DEPTH:
        raise FormatError("npy header: dtype nested too deeply", offset=offset)
    if isinstance(descr, str):
        return _typestr_info(descr, offset)
    if not isinstance(descr, list):
        raise FormatError("npy header: descr is neither a string nor a list", offset=offset)
    itemsize, has_object = 0, False
    for field in descr:
        if not isinstance(field, tuple) or len(field) not in (2, 3):
            raise FormatError("npy header: a field is not a 2- or 3-tuple", offset=offset)
        name = field[0]
        names = name if isinstance(name, tuple) else (name,)
        if len(names) not in (1, 2) or not all(isinstance(n, str) for n in names):
            raise FormatError("npy header: bad field name", offset=offset)
        size, obj = descr_info(field[1], offset, depth + 1)
        if len(field) == 3:
            size = _checked_product(_shape(field[2], offset), size, offset)
        itemsize = _checked_product((1,), itemsize + size, offset)
        has_object = has_object or obj
    return itemsize, has_object


def parse_header(data: bytes, size: int) -> NpyHeader:
    """Parse the header at the start of ``data`` (a prefix of a ``size``-byte file)."""
    if len(data) < PREAMBLE + 2 or not data.startswith(MAGIC):
        raise FormatError("not an npy file (bad magic)", offset=0)
    version = (data[6], data[7])
    if version == (1, 0):
        (hlen,) = struct.unpack_from("<H", data, PREAMBLE)
        start = PREAMBLE + 2
    elif version in ((2, 0), (3, 0)):
        if len(data) < PREAMBLE + 4:
            raise FormatError("truncated npy preamble", offset=PREAMBLE)
        (hlen,) = struct.unpack_from("<I", data, PREAMBLE)
        start = PREAMBLE + 4
    else:
        raise FormatError(f"unsupported npy version {version[0]}.{version[1]}", offset=6)
    if hlen > MAX_HEADER:
        raise FormatError(f"npy header length {hlen} exceeds {MAX_HEADER}", offset=PREAMBLE)
    end = start + hlen
    if end > size or end > len(data):
        raise FormatError("npy header runs past the end of the file", offset=PREAMBLE)
    raw = data[start:end]
    try:
        text = raw.decode("utf-8" if version == (3, 0) else "latin-1")
    except UnicodeDecodeError as exc:
        raise FormatError("npy header is not valid UTF-8", offset=start + exc.start) from None
    fields = parse_literal(text, start)
    if set(fields) != {"descr", "fortran_order", "shape"}:
        raise FormatError(f"npy header keys are {sorted(fields)!r}", offset=start)
    fortran = fields["fortran_order"]
    if not isinstance(fortran, bool):
        raise FormatError("npy header: fortran_order is not a bool", offset=start)
    shape_value = fields["shape"]
    if not isinstance(shape_value, tuple):
        raise FormatError("npy header: shape is not a tuple", offset=start)
    shape = _shape(shape_value, start)
    descr = fields["descr"]
    itemsize, has_object = descr_info(descr, start)
    assert isinstance(descr, (str, list))
    data_size = None if has_object else _checked_product(shape, itemsize, start)
    return NpyHeader(
        version=version,
        descr=descr,
        fortran_order=fortran,
        shape=shape,
        data_offset=end,
        has_object=has_object,
        itemsize=None if has_object else itemsize,
        data_size=data_size,
    )


def read_header(stream: BinaryIO, size: int) -> NpyHeader:
    """Read and parse the header from ``stream``; leaves it positioned at the data."""
    prefix = stream.read(min(size, PREAMBLE + 4))
    if len(prefix) < PREAMBLE + 2 or not prefix.startswith(MAGIC):
        raise FormatError("not an npy file (bad magic)", offset=0)
    if prefix[6:8] == b"\x01\x00":
        (hlen,) = struct.unpack_from("<H", prefix, PREAMBLE)
        start = PREAMBLE + 2
    elif len(prefix) >= PREAMBLE + 4:
        (hlen,) = struct.unpack_from("<I", prefix, PREAMBLE)
        start = PREAMBLE + 4
    else:
        return parse_header(prefix, size)  # raises with the precise reason
    want = start + min(hlen, MAX_HEADER)
    if want > size:
        raise FormatError("npy header runs past the end of the file", offset=PREAMBLE)
    rest = stream.read(want - len(prefix)) if want > len(prefix) else b""
    data = prefix + rest
    header = parse_header(data, size)
    if len(data) > header.data_offset:  # version 1.0 with a u32-sized prefix read
        raise FormatError("npy stream over-read", offset=header.data_offset)
    return header
