"""Incremental decompression with bounded output per call: zlib/deflate/gzip, bzip2 and lzma/xz.

Shared by the zip reader (deflate, bzip2, raw lzma members) and the single-stream scanners
(gzip, zlib, bzip2, xz). ``take(limit)`` never returns more than ``limit`` bytes, so callers can
stop a decompression bomb at any point without having inflated it.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Union

Decompressor = Union["zlib._Decompress", bz2.BZ2Decompressor, lzma.LZMADecompressor]

# wbits for zlib.decompressobj: raw deflate, zlib-wrapped, gzip-wrapped
WBITS = {"deflate": -15, "zlib": 15, "gzip": 31}


class Inflater:
    """One compressed stream fed with ``give`` and drained with ``take``."""

    def __init__(self, decompressor: Decompressor) -> None:
        self._d = decompressor
        self._zlib = not isinstance(decompressor, bz2.BZ2Decompressor | lzma.LZMADecompressor)
        self._input = b""

    @classmethod
    def for_format(cls, fmt: str, lzma_filter: dict[str, int] | None = None) -> Inflater:
        """``deflate``, ``zlib``, ``gzip``, ``bzip2``, ``xz``, or ``lzma-raw`` with its filter."""
        if fmt in WBITS:
            return cls(zlib.decompressobj(WBITS[fmt]))
        if fmt == "bzip2":
            return cls(bz2.BZ2Decompressor())
        if fmt == "xz":
            return cls(lzma.LZMADecompressor(lzma.FORMAT_XZ))
        if fmt == "lzma-raw" and lzma_filter is not None:
            return cls(lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma_filter]))
        raise ValueError(f"unknown compression {fmt!r}")

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    def leftover(self) -> bytes:
        """Bytes after the end of the stream (the start of a concatenated next stream)."""
        return bytes(self._d.unused_data) + self._input

    def wants_input(self) -> bool:
        if self._input:
            return False
        return self._zlib or bool(getattr(self._d, "needs_input", True))

    def give(self, data: bytes) -> None:
        self._input += data

    def take(self, limit: int) -> bytes:
        """At most ``limit`` (> 0) bytes of output; b"" when more input is needed or at eof."""
        if self.eof:
            return b""
        out = self._d.decompress(self._input, limit)
        if self._zlib:
            self._input = self._d.unconsumed_tail  # type: ignore[union-attr]
        else:
            self._input = b""
        return out
