"""A strict safetensors header validator that reads only the header, never the tensor bytes.

Layout (huggingface/safetensors README "Format"): ``u64`` little-endian ``N``, then ``N`` bytes of
UTF-8 JSON mapping tensor names to ``{"dtype", "shape", "data_offsets": [BEGIN, END]}`` plus an
optional ``"__metadata__": {str: str}``, then the byte buffer. Offsets are relative to the buffer,
END is exclusive, and the buffer must be fully indexed with no holes.

Every check of the reference Rust implementation (``read_metadata`` + ``Metadata::validate``) is
applied, plus stricter ones the Rust parser lacks (scanning.md §4.1): duplicate keys, a first byte
other than ``{``, padding other than 0x20, unknown fields in a tensor entry, JSON nesting deeper
than :data:`MAX_JSON_DEPTH`, non-finite numbers and strings that are not valid Unicode. The first
violation raises :class:`SafetensorsError`, whose ``kind`` names the rule.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO, NoReturn

from modelseal.formats import RuleError

MAX_HEADER_SIZE = 100_000_000  # Rust MAX_HEADER_SIZE
MAX_JSON_DEPTH = 4  # the schema needs 3: header object > tensor entry > shape list
_U64_MAX = (1 << 64) - 1

# Bits per element of every dtype safetensors 0.8 knows (sub-byte ones need nbits % 8 == 0).
DTYPE_BITS: Mapping[str, int] = MappingProxyType(
    {
        "BOOL": 8,
        "F4": 4,
        "F6_E2M3": 6,
        "F6_E3M2": 6,
        "U8": 8,
        "I8": 8,
        "F8_E5M2": 8,
        "F8_E4M3": 8,
        "F8_E8M0": 8,
        "F8_E4M3FNUZ": 8,
        "F8_E5M2FNUZ": 8,
        "I16": 16,
        "U16": 16,
        "F16": 16,
        "BF16": 16,
        "I32": 32,
        "U32": 32,
        "F32": 32,
        "C64": 64,
        "F64": 64,
        "I64": 64,
        "U64": 64,
    }
)
_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


class SafetensorsError(RuleError):
    """A safetensors rule violation; ``kind`` is a stable rule name such as ``"overlap"``."""


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One header entry; ``begin``/``end`` are relative to the byte buffer, ``end`` exclusive."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    """A validated header: tensors sorted by offsets, metadata, sizes."""

    header_size: int  # N, the JSON length including padding
    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, str]

    @property
    def data_start(self) -> int:
        return 8 + self.header_size

    @property
    def data_size(self) -> int:
        return self.tensors[-1].end if self.tensors else 0


@dataclass(frozen=True, slots=True)
class TensorStats:
    """Totals over a header: element count and bytes per dtype."""

    parameters: int
    bytes_by_dtype: Mapping[str, int]
    params_by_dtype: Mapping[str, int]


def tensor_stats(header: SafetensorsHeader) -> TensorStats:
    """The parameter count and the per-dtype byte (and element) breakdown of a header."""
    nbytes: dict[str, int] = {}
    params: dict[str, int] = {}
    for t in header.tensors:
        nbytes[t.dtype] = nbytes.get(t.dtype, 0) + t.nbytes
        params[t.dtype] = params.get(t.dtype, 0) + t.numel
    return TensorStats(sum(params.values()), MappingProxyType(nbytes), MappingProxyType(params))


def parse_header_bytes(data: bytes) -> SafetensorsHeader:
    """:func:`parse_header` over an in-memory file."""
    return parse_header(io.BytesIO(data), len(data))


def parse_header(
    stream: BinaryIO, size: int, *, max_header_size: int = MAX_HEADER_SIZE
) -> SafetensorsHeader:
    """Validate the safetensors file of ``size`` bytes in ``stream`` (reads 8 + N bytes only)."""
    if size < 8:
        _fail("header-too-small", f"file of {size} bytes is shorter than the 8-byte length", 0)
    (n,) = struct.unpack("<Q", _read_exact(stream, 8, 0))
    if n > max_header_size:
        _fail("header-too-large", f"header length {n} exceeds {max_header_size}", 0)
    if n + 8 > size:
        _fail("header-past-eof", f"header length {n} runs past the end of the {size}-byte file", 0)
    raw = _read_exact(stream, n, 8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail("not-utf8", f"header is not UTF-8 ({e.reason})", 8 + e.start)
    obj = _load_json(text)
    tensors, metadata = _entries(obj)
    tensors.sort(key=lambda t: (t.begin, t.end, t.name))
    start = 0
    for t in tensors:
        _check_tensor(t, start, 8 + n)
        start = t.end
    if start + 8 + n != size:
        if start + 8 + n < size:
            extra = size - start - 8 - n
            _fail("trailing-bytes", f"{extra} bytes after the last tensor", start + 8 + n)
        _fail("offset-past-eof", f"tensor data ends at {start + 8 + n}, past EOF {size}", size)
    return SafetensorsHeader(n, tuple(tensors), MappingProxyType(metadata))


def _fail(kind: str, message: str, offset: int | None, symbol: str | None = None) -> NoReturn:
    raise SafetensorsError(kind, message, offset=offset, symbol=symbol)


def _read_exact(stream: BinaryIO, n: int, offset: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = stream.read(min(n - got, 1 << 24))
        if not chunk:
            _fail("truncated", f"stream ended after {offset + got} bytes", offset + got)
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _byte_offset(text: str, pos: int) -> int:
    return 8 + len(text[:pos].encode("utf-8", "surrogatepass"))


def _load_json(text: str) -> Any:
    """Header rules: starts with ``{``, depth limit, strict JSON, then only 0x20 padding."""
    if text[:1].isspace():
        _fail("bad-header-start", "header begins with whitespace, not '{'", 8)
    if not text.startswith("{"):
        _fail("not-object", "header does not begin with '{' (a JSON object)", 8)
    _check_depth(text)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                _fail("duplicate-key", f"duplicate JSON key {k!r}", None, k)
            out[k] = v
        return out

    def constant(name: str) -> NoReturn:
        _fail("not-json", f"non-standard JSON constant {name}", None)

    decoder = json.JSONDecoder(object_pairs_hook=pairs, parse_constant=constant)
    try:
        obj, end = decoder.raw_decode(text)
    except json.JSONDecodeError as e:
        _fail("not-json", f"header is not valid JSON: {e.msg}", _byte_offset(text, e.pos))
    except (ValueError, RecursionError) as e:  # int digit limit; depth already bounded
        _fail("not-json", f"header is not valid JSON: {e}", None)
    if text[end:].strip(" "):
        _fail(
            "bad-padding",
            "header has bytes other than 0x20 after the JSON",
            _byte_offset(text, end),
        )
    return obj


def _check_depth(text: str) -> None:
    """Reject JSON nested deeper than MAX_JSON_DEPTH before the (recursive) decoder sees it."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(MAX_JSON_DEPTH):
        brackets, count = _INNERMOST.subn("", brackets)
        if not count:
            return
    if _INNERMOST.search(brackets):
        _fail("json-too-deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels", 8)
    if len(brackets) > 4 * MAX_JSON_DEPTH:
        _fail("not-json", "header JSON has unbalanced brackets", 8)


def _u64(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _U64_MAX


def _unicode(s: str, what: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        _fail("bad-name", f"{what} {s!r} is not valid Unicode (lone surrogate)", None, s)


def _entries(obj: Any) -> tuple[list[TensorInfo], dict[str, str]]:
    if not isinstance(obj, dict):
        _fail("not-object", f"header is a JSON {type(obj).__name__}, not an object", 8)
    tensors: list[TensorInfo] = []
    metadata: dict[str, str] = {}
    for name, entry in obj.items():
        _unicode(name, "key")
        if name == "__metadata__":
            if not isinstance(entry, dict):
                _fail("bad-metadata", "__metadata__ is not an object", None, name)
            for k, v in entry.items():
                _unicode(k, "metadata key")
                if not isinstance(v, str):
                    _fail("bad-metadata", f"__metadata__[{k!r}] is not a string", None, k)
                _unicode(v, "metadata value")
                metadata[k] = v
            continue
        tensors.append(_tensor(name, entry))
    return tensors, metadata


def _tensor(name: str, entry: Any) -> TensorInfo:
    if not isinstance(entry, dict):
        _fail("bad-entry", f"entry {name!r} is not an object", None, name)
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        _fail("unknown-field", f"tensor {name!r} has unknown field {unknown[0]!r}", None, name)
    missing = sorted(_FIELDS - set(entry))
    if missing:
        _fail("missing-field", f"tensor {name!r} lacks {missing[0]!r}", None, name)
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        _fail("unknown-dtype", f"tensor {name!r} has unknown dtype {dtype!r}", None, name)
    if not isinstance(shape, list) or not all(_u64(d) for d in shape):
        _fail("bad-shape", f"tensor {name!r}: shape must be a list of u64", None, name)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_u64(o) for o in offsets)):
        _fail("bad-offsets", f"tensor {name!r}: data_offsets must be [u64, u64]", None, name)
    return TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])


def _check_tensor(t: TensorInfo, start: int, data_start: int) -> None:
    """Rust ``Metadata::validate`` for one tensor in offset order: contiguous, exact size."""
    where = data_start + t.begin
    if t.end < t.begin:
        _fail("bad-offsets", f"tensor {t.name!r}: end {t.end} < begin {t.begin}", where, t.name)
    if t.begin < start:
        _fail(
            "overlap", f"tensor {t.name!r} begins at {t.begin}, inside [.., {start})", where, t.name
        )
    if t.begin > start:
        _fail(
            "gap", f"unindexed bytes [{start}, {t.begin}) before tensor {t.name!r}", where, t.name
        )
    numel = 1
    for d in t.shape:
        numel *= d
        if numel > _U64_MAX:
            _fail(
                "shape-overflow", f"tensor {t.name!r}: element count overflows u64", where, t.name
            )
    bits = numel * DTYPE_BITS[t.dtype]
    if bits > _U64_MAX:
        _fail("shape-overflow", f"tensor {t.name!r}: bit size overflows u64", where, t.name)
    if bits % 8:
        _fail(
            "misaligned-slice", f"tensor {t.name!r}: {bits} bits is not whole bytes", where, t.name
        )
    if t.end - t.begin != bits // 8:
        _fail(
            "size-mismatch",
            f"tensor {t.name!r}: offsets span {t.end - t.begin} bytes, shape needs {bits // 8}",
            where,
            t.name,
        )


__all__ = [
    "DTYPE_BITS",
    "MAX_HEADER_SIZE",
    "MAX_JSON_DEPTH",
    "SafetensorsError",
    "SafetensorsHeader",
    "TensorInfo",
    "TensorStats",
    "parse_header",
    "parse_header_bytes",
    "tensor_stats",
]
