"""A bounded GGUF reader applying the llama.cpp ``gguf_init_from_reader`` checks, and more.

Layout (gguf-py 0.19.0, llama.cpp ``ggml/src/gguf.cpp``): magic ``GGUF``, ``u32`` version,
``u64`` tensor count, ``u64`` KV count; KV pairs (string key, ``u32`` type, value); tensor infos
(string name, ``u32`` n_dims, ``u64`` dims, ``u32`` ggml type, ``u64`` offset); padding to
``general.alignment``; the data section. Everything is little-endian.

The gguf PyPI reader accepts overlapping and unaligned tensors and nested arrays and spins forever
on a 49-byte file (scanning.md §4.2), so this reader is our own: every count and length is checked
against the bytes left *before* anything is read or allocated, time is linear in the bytes read,
and memory is bounded by the caps below whatever the header declares. The tensor data is never
read. The first violation raises :class:`GgufError`, whose ``kind`` names the rule.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO, NoReturn

from modelseal.formats import RuleError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_ALIGNMENT = 1 << 20  # our cap (ggml #1516 proposes one)
MAX_STRING = 16 << 20  # our cap on any key or value string (C++: 1 GiB)
MAX_ARRAY = 16 << 20  # our cap on array elements (C++: 1 Gi elements)
MAX_KVS = 1 << 16  # our cap on KV pairs (real files have under a hundred)
MAX_TENSORS = 1 << 20  # our cap on tensors (MoE files with split experts have tens of thousands)
MAX_KEPT_BYTES = 64 << 20  # strings materialised in the result, all together
ARRAY_HEAD = 1024  # array elements kept in the result; the rest are only validated
MAX_NAME = 64  # GGML_MAX_NAME: a tensor name must be shorter
MAX_DIMS = 4  # GGML_MAX_DIMS
_INT64_MAX = (1 << 63) - 1
_MIN_KV = 8 + 1 + 4 + 1  # key length, 1-byte key, type, smallest value
_MIN_TENSOR = 8 + 4 + 4 + 8  # name length, n_dims, type, offset

# GGUF value types: name, struct format (None: string / array).
VALUE_TYPES: Mapping[int, tuple[str, str | None]] = MappingProxyType(
    {
        0: ("UINT8", "<B"),
        1: ("INT8", "<b"),
        2: ("UINT16", "<H"),
        3: ("INT16", "<h"),
        4: ("UINT32", "<I"),
        5: ("INT32", "<i"),
        6: ("FLOAT32", "<f"),
        7: ("BOOL", "<?"),
        8: ("STRING", None),
        9: ("ARRAY", None),
        10: ("UINT64", "<Q"),
        11: ("INT64", "<q"),
        12: ("FLOAT64", "<d"),
    }
)
_STRING, _ARRAY = 8, 9

# ggml types: id -> (name, block size, type size), from gguf 0.19.0 GGML_QUANT_SIZES (QK_K = 256).
GGML_TYPES: Mapping[int, tuple[str, int, int]] = MappingProxyType(
    {
        0: ("F32", 1, 4),
        1: ("F16", 1, 2),
        2: ("Q4_0", 32, 18),
        3: ("Q4_1", 32, 20),
        6: ("Q5_0", 32, 22),
        7: ("Q5_1", 32, 24),
        8: ("Q8_0", 32, 34),
        9: ("Q8_1", 32, 40),
        10: ("Q2_K", 256, 84),
        11: ("Q3_K", 256, 110),
        12: ("Q4_K", 256, 144),
        13: ("Q5_K", 256, 176),
        14: ("Q6_K", 256, 210),
        15: ("Q8_K", 256, 292),
        16: ("IQ2_XXS", 256, 66),
        17: ("IQ2_XS", 256, 74),
        18: ("IQ3_XXS", 256, 98),
        19: ("IQ1_S", 256, 50),
        20: ("IQ4_NL", 32, 18),
        21: ("IQ3_S", 256, 110),
        22: ("IQ2_S", 256, 82),
        23: ("IQ4_XS", 256, 136),
        24: ("I8", 1, 1),
        25: ("I16", 1, 2),
        26: ("I32", 1, 4),
        27: ("I64", 1, 8),
        28: ("F64", 1, 8),
        29: ("IQ1_M", 256, 56),
        30: ("BF16", 1, 2),
        34: ("TQ1_0", 256, 54),
        35: ("TQ2_0", 256, 66),
        39: ("MXFP4", 32, 17),
        40: ("NVFP4", 64, 36),
        41: ("Q1_0", 128, 18),
    }
)


class GgufError(RuleError):
    """A GGUF rule violation; ``kind`` is a stable rule name such as ``"overlap"``."""


@dataclass(frozen=True, slots=True)
class GgufArray:
    """An array value: its element type, its full length and at most ARRAY_HEAD first elements."""

    elem_type: str
    length: int
    head: tuple[bool | int | float | str, ...]


GgufValue = bool | int | float | str | GgufArray


@dataclass(frozen=True, slots=True)
class GgufKV:
    key: str
    type: str  # "UINT32", "STRING", "ARRAY", ...
    value: GgufValue
    offset: int  # where the key's length field starts


@dataclass(frozen=True, slots=True)
class GgufTensorInfo:
    name: str
    dims: tuple[int, ...]  # ne[0] first, as stored
    ggml_type: int
    type_name: str
    offset: int  # relative to the data section
    nbytes: int
    info_offset: int  # where this tensor info starts in the file


@dataclass(frozen=True, slots=True)
class GgufFile:
    """A validated GGUF header. ``trailing_bytes`` is what follows the padded data section."""

    version: int
    alignment: int
    kvs: tuple[GgufKV, ...]
    tensors: tuple[GgufTensorInfo, ...]
    data_start: int
    data_size: int  # sum of padded tensor sizes
    trailing_bytes: int

    @property
    def metadata(self) -> dict[str, GgufValue]:
        return {kv.key: kv.value for kv in self.kvs}


def _fail(kind: str, message: str, offset: int | None, symbol: str | None = None) -> NoReturn:
    raise GgufError(kind, message, offset=offset, symbol=symbol)


class _Reader:
    """Forward reads over ``size`` bytes of a stream through a buffer; never reads past ``size``."""

    def __init__(self, stream: BinaryIO, size: int, chunk: int = 1 << 16) -> None:
        self._stream, self._size, self._chunk = stream, size, chunk
        self._buf = b""
        self._at = 0  # position in _buf
        self.pos = 0  # position in the file

    @property
    def remaining(self) -> int:
        return self._size - self.pos

    def _fill(self, n: int) -> None:
        if n > self.remaining:
            _fail("truncated", f"needs {n} bytes at {self.pos}, {self.remaining} left", self.pos)
        have = len(self._buf) - self._at
        if have >= n:
            return
        want = min(max(n - have, self._chunk), self.remaining - have)
        parts = [self._buf[self._at :]]
        while want > 0:
            got = self._stream.read(want)
            if not got:
                _fail("truncated", f"stream ended before byte {self.pos + n}", self.pos)
            parts.append(got)
            want -= len(got)
            have += len(got)
        self._buf, self._at = b"".join(parts), 0

    def take(self, n: int) -> bytes:
        self._fill(n)
        out = self._buf[self._at : self._at + n]
        self._at += n
        self.pos += n
        return out

    def unpack(self, fmt: str, n: int) -> int | float | bool:
        self._fill(n)
        (value,) = struct.unpack_from(fmt, self._buf, self._at)
        self._at += n
        self.pos += n
        return value  # type: ignore[no-any-return]

    def u32(self) -> int:
        return int(self.unpack("<I", 4))

    def u64(self) -> int:
        return int(self.unpack("<Q", 8))

    def skip(self, n: int) -> None:
        while n > 0:
            step = min(n, 1 << 20)
            self.take(step)
            n -= step

    def skip_strings(self, count: int, cap: int) -> int | None:
        """Skip ``count`` strings; returns the offset of the first one longer than ``cap``."""
        for _ in range(count):
            at = self.pos
            n = self.u64()
            if n > cap:
                return at
            if len(self._buf) - self._at >= n:  # fast path: already buffered
                self._at += n
                self.pos += n
            else:
                self.skip(n)
        return None


class _Parser:
    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.r = _Reader(stream, size)
        self.kept = 0

    def string(
        self,
        what: str,
        cap: int = MAX_STRING,
        key: str | None = None,
        too_long: str = "string-too-long",
    ) -> bytes:
        at = self.r.pos
        n = self.r.u64()
        if n > cap:
            _fail(too_long, f"{what} of {n} bytes exceeds the {cap}-byte cap", at, key)
        if n > self.r.remaining:
            _fail("truncated", f"{what} of {n} bytes runs past the end of the file", at, key)
        self.kept += n
        if self.kept > MAX_KEPT_BYTES:
            _fail("metadata-too-large", f"metadata strings exceed {MAX_KEPT_BYTES} bytes", at, key)
        return self.r.take(n)

    def value(self, vtype: int, key: str) -> bool | int | float | str:
        fmt = VALUE_TYPES[vtype][1]
        if fmt is None:
            return self.string(f"value of {key!r}", key=key).decode("utf-8", "replace")
        return self.r.unpack(fmt, struct.calcsize(fmt))

    def array(self, key: str, at: int) -> GgufArray:
        etype = self.r.u32()
        if etype == _ARRAY:
            _fail("nested-array", f"array {key!r} holds arrays", at, key)
        if etype not in VALUE_TYPES:
            _fail("bad-value-type", f"array {key!r} has element type {etype}", at, key)
        n_at = self.r.pos
        n = self.r.u64()
        ename, fmt = VALUE_TYPES[etype]
        elem = 8 if fmt is None else struct.calcsize(fmt)  # a string needs its length at least
        if n > MAX_ARRAY:
            _fail("array-too-long", f"array {key!r} of {n} elements exceeds {MAX_ARRAY}", n_at, key)
        if n * elem > self.r.remaining:
            _fail("truncated", f"array {key!r} of {n} x {elem} bytes runs past EOF", n_at, key)
        head = tuple(self.value(etype, key) for _ in range(min(n, ARRAY_HEAD)))
        if fmt is None:
            bad = self.r.skip_strings(n - len(head), MAX_STRING)
            if bad is not None:
                _fail(
                    "string-too-long", f"an element of {key!r} exceeds {MAX_STRING} bytes", bad, key
                )
        else:
            self.r.skip((n - len(head)) * elem)
        return GgufArray(ename, n, head)

    def kv(self, seen: set[str]) -> GgufKV:
        at = self.r.pos
        raw = self.string("key")
        if not raw:
            _fail("bad-key", "empty key", at)
        try:
            key = raw.decode("utf-8")
        except UnicodeDecodeError:
            _fail("bad-key", f"key {raw[:64]!r} is not UTF-8", at)
        if key in seen:
            _fail("duplicate-key", f"duplicate key {key!r}", at, key)
        seen.add(key)
        vtype = self.r.u32()
        if vtype not in VALUE_TYPES:
            _fail("bad-value-type", f"key {key!r} has value type {vtype}", at, key)
        value = self.array(key, at) if vtype == _ARRAY else self.value(vtype, key)
        return GgufKV(key, VALUE_TYPES[vtype][0], value, at)

    def tensor(self, seen: set[str]) -> GgufTensorInfo:
        at = self.r.pos
        raw = self.string("tensor name", MAX_NAME - 1, too_long="tensor-name-too-long")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            _fail("bad-tensor-name", f"tensor name {raw!r} is not UTF-8", at)
        if not name:
            _fail("bad-tensor-name", "empty tensor name", at)
        if name in seen:
            _fail("duplicate-tensor", f"duplicate tensor {name!r}", at, name)
        seen.add(name)
        n_dims = self.r.u32()
        if n_dims > MAX_DIMS:
            _fail("too-many-dims", f"tensor {name!r} has {n_dims} dims (max {MAX_DIMS})", at, name)
        dims = tuple(self.r.u64() for _ in range(n_dims))
        numel = 1
        for d in dims:
            if d == 0:
                _fail("zero-dim", f"tensor {name!r} has a zero dimension {dims}", at, name)
            if d > _INT64_MAX or numel > _INT64_MAX // d:
                _fail("dims-overflow", f"tensor {name!r}: dims {dims} overflow int64", at, name)
            numel *= d
        gtype = self.r.u32()
        if gtype not in GGML_TYPES:
            _fail("unknown-type", f"tensor {name!r} has unknown ggml type {gtype}", at, name)
        tname, block, tsize = GGML_TYPES[gtype]
        ne0 = dims[0] if dims else 1
        if ne0 % block:
            _fail("block-misaligned", f"tensor {name!r}: ne[0]={ne0} % {block} ({tname})", at, name)
        offset = self.r.u64()
        return GgufTensorInfo(name, dims, gtype, tname, offset, numel // block * tsize, at)

    def parse(self) -> GgufFile:
        r = self.r
        if r.remaining < 4 or r.take(4) != GGUF_MAGIC:
            _fail("bad-magic", "not a GGUF file (magic)", 0)
        version = r.u32()
        if version == 0:
            _fail("bad-version", "GGUF version 0", 4)
        if version & 0xFFFF == 0:
            _fail("byte-swapped", f"version {version:#x}: big-endian/byte-swapped not supported", 4)
        if version == 1 or version > 3:
            _fail("bad-version", f"unsupported GGUF version {version}", 4)
        n_tensors, n_kv = r.u64(), r.u64()
        if n_kv > MAX_KVS or n_tensors > MAX_TENSORS:
            _fail("count-too-large", f"{n_kv} KV pairs or {n_tensors} tensors: over our caps", 8)
        if n_kv * _MIN_KV + n_tensors * _MIN_TENSOR > r.remaining:
            _fail("count-too-large", f"{n_kv} KVs and {n_tensors} tensors cannot fit the file", 8)
        keys: set[str] = set()
        kvs = tuple(self.kv(keys) for _ in range(n_kv))
        alignment = _alignment(kvs)
        names: set[str] = set()
        tensors = tuple(self.tensor(names) for _ in range(n_tensors))
        header_end = r.pos
        data_start = _pad(header_end, alignment)
        running = 0
        for t in tensors:
            _check_offset(t, running, alignment, data_start)
            running += _pad(t.nbytes, alignment)
        end = data_start + tensors[-1].offset + tensors[-1].nbytes if tensors else header_end
        size = r.pos + r.remaining
        if end > size:
            what = tensors[-1].name if tensors else None
            _fail("data-past-eof", f"tensor data ends at {end}, past EOF {size}", size, what)
        return GgufFile(
            version,
            alignment,
            kvs,
            tensors,
            data_start,
            running,
            max(0, size - data_start - running),
        )


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _alignment(kvs: tuple[GgufKV, ...]) -> int:
    for kv in kvs:
        if kv.key != "general.alignment":
            continue
        v = kv.value
        if kv.type != "UINT32" or not isinstance(v, int):
            _fail("bad-alignment", f"general.alignment is {kv.type}, not UINT32", kv.offset, kv.key)
        if v == 0 or v & (v - 1) or v > MAX_ALIGNMENT:
            _fail(
                "bad-alignment", f"general.alignment {v} is not a power of two <= 1 MiB", kv.offset
            )
        return v
    return DEFAULT_ALIGNMENT


def _check_offset(t: GgufTensorInfo, running: int, alignment: int, data_start: int) -> None:
    """C++: each offset equals the running sum of padded sizes (ordered, aligned, no overlap)."""
    if t.offset == running:
        return
    where = t.info_offset
    if t.offset % alignment:
        _fail(
            "misaligned-offset", f"tensor {t.name!r} offset {t.offset} % {alignment}", where, t.name
        )
    if t.offset < running:
        _fail(
            "overlap",
            f"tensor {t.name!r} at {t.offset} overlaps data before {running}",
            where,
            t.name,
        )
    _fail("gap", f"tensor {t.name!r} at {t.offset} leaves a hole after {running}", where, t.name)


def parse_gguf(stream: BinaryIO, size: int) -> GgufFile:
    """Validate the GGUF file of ``size`` bytes in ``stream`` (reads the header, not the data)."""
    return _Parser(stream, size).parse()


def parse_gguf_bytes(data: bytes) -> GgufFile:
    """:func:`parse_gguf` over an in-memory file."""
    return parse_gguf(io.BytesIO(data), len(data))


__all__ = [
    "GGML_TYPES",
    "MAX_STRING",
    "VALUE_TYPES",
    "GgufArray",
    "GgufError",
    "GgufFile",
    "GgufKV",
    "GgufTensorInfo",
    "GgufValue",
    "parse_gguf",
    "parse_gguf_bytes",
]
