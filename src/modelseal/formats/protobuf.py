"""A minimal, bounded, streaming protobuf wire-format reader.

Wire format (protobuf encoding spec): each field is a varint key ``(number << 3) | wire_type``
followed by a varint (type 0), 8 bytes (type 1), a varint length and that many bytes (type 2)
or 4 bytes (type 5). Groups (types 3 and 4) are deprecated and refused, as are types 6 and 7,
field number 0 and varints longer than 10 bytes or above 2**64 - 1.

:class:`ProtoReader` walks a binary stream forward through a small buffer and never holds more
than the one payload a caller asks for (:meth:`ProtoReader.read_payload`, capped). A caller
iterates :meth:`ProtoReader.fields` of a message; for a length-delimited field it may read the
payload, descend into it as a sub-message with ``fields(field.end, depth + 1)``, or do nothing,
and the iterator skips whatever the caller left. Every length is checked against the end of
its enclosing message before anything is read, and nesting deeper than ``max_depth`` is refused.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from modelseal.formats import FormatError

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_VARINT_BYTES = 10
MAX_FIELD_NUMBER = (1 << 29) - 1
DEFAULT_MAX_DEPTH = 100
CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Field:
    """One field. ``value`` is the integer for types 0/1/5 and the payload length for type 2."""

    number: int
    wire_type: int
    value: int
    offset: int  # where the key starts
    start: int  # where the value (payload) starts
    end: int  # where the field ends


class ProtoReader:
    """Forward reader over ``size`` bytes of ``stream`` (positions count from its start)."""

    def __init__(self, stream: BinaryIO, size: int, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self._stream = stream
        self.size = size
        self.max_depth = max_depth
        self._buf = b""
        self._buf_pos = 0  # index of the next unread byte in _buf
        self.pos = 0  # absolute position of the next unread byte

    # -- low level ---------------------------------------------------------------------------

    def _fill(self, limit: int) -> bool:
        """Make at least one byte available before ``limit``; False when none can be."""
        if self._buf_pos < len(self._buf):
            return True
        want = min(CHUNK, limit - self.pos, self.size - self.pos)
        if want <= 0:
            return False
        self._buf = self._stream.read(want)
        self._buf_pos = 0
        if not self._buf:
            raise FormatError("stream ended before its declared size", offset=self.pos)
        return True

    def read_exact(self, n: int, limit: int) -> bytes:
        """``n`` bytes; ``n`` must fit before ``limit`` (the end of the enclosing message)."""
        if n < 0 or self.pos + n > min(limit, self.size):
            raise FormatError("field runs past the end of its message", offset=self.pos)
        parts: list[bytes] = []
        need = n
        while need:
            self._fill(self.pos + need)
            take = self._buf[self._buf_pos : self._buf_pos + need]
            self._buf_pos += len(take)
            self.pos += len(take)
            need -= len(take)
            parts.append(take)
        return b"".join(parts)

    def skip_to(self, target: int) -> None:
        """Advance to ``target`` without keeping the bytes (seeks when the stream can)."""
        if target < self.pos or target > self.size:
            raise FormatError("cannot skip outside the message", offset=self.pos)
        buffered = len(self._buf) - self._buf_pos
        gap = target - self.pos
        if gap <= buffered:
            self._buf_pos += gap
            self.pos = target
            return
        beyond = gap - buffered
        self._buf, self._buf_pos, self.pos = b"", 0, self.pos + buffered
        if self._stream.seekable():
            self._stream.seek(beyond, io.SEEK_CUR)
            self.pos += beyond
            return
        while self.pos < target:
            got = self._stream.read(min(1 << 20, target - self.pos))
            if not got:
                raise FormatError("stream ended before its declared size", offset=self.pos)
            self.pos += len(got)

    def read_varint(self, limit: int) -> int:
        start = self.pos
        result = 0
        for index in range(MAX_VARINT_BYTES):
            if self.pos >= limit or not self._fill(limit):
                raise FormatError("truncated varint", offset=start)
            byte = self._buf[self._buf_pos]
            self._buf_pos += 1
            self.pos += 1
            result |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if result >> 64:
                    raise FormatError("varint exceeds 64 bits", offset=start)
                return result
        raise FormatError("varint longer than 10 bytes", offset=start)

    # -- fields ------------------------------------------------------------------------------

    def fields(self, end: int | None = None, depth: int = 0) -> Iterator[Field]:
        """The fields of the message from here to ``end`` (default: the whole stream).

        After each yielded field the reader continues at that field's end, whatever the caller
        read of its payload (a caller must not read past ``field.end``).
        """
        limit = self.size if end is None else end
        if limit > self.size:
            raise FormatError("message runs past the end of the data", offset=self.pos)
        if depth > self.max_depth:
            raise FormatError(f"messages nested deeper than {self.max_depth}", offset=self.pos)
        while self.pos < limit:
            offset = self.pos
            key = self.read_varint(limit)
            number, wire_type = key >> 3, key & 7
            if number == 0 or number > MAX_FIELD_NUMBER:
                raise FormatError(f"invalid field number {number}", offset=offset)
            start = self.pos
            if wire_type == VARINT:
                value = self.read_varint(limit)
            elif wire_type == I64:
                value = int.from_bytes(self.read_exact(8, limit), "little")
            elif wire_type == I32:
                value = int.from_bytes(self.read_exact(4, limit), "little")
            elif wire_type == LEN:
                value = self.read_varint(limit)
                start = self.pos
                if value > limit - start:
                    raise FormatError("length-delimited field runs past its message", offset=offset)
            elif wire_type in (SGROUP, EGROUP):
                raise FormatError("protobuf groups are not supported", offset=offset)
            else:
                raise FormatError(f"invalid wire type {wire_type}", offset=offset)
            field_end = start + value if wire_type == LEN else self.pos
            yield Field(number, wire_type, value, offset, start, field_end)
            if self.pos > field_end:
                raise FormatError("a field was read past its end", offset=field_end)
            self.skip_to(field_end)
        if self.pos != limit:
            raise FormatError("field runs past the end of its message", offset=self.pos)

    def read_payload(self, field: Field, cap: int) -> bytes:
        """The payload of a length-delimited ``field`` (at most ``cap`` bytes, else an error)."""
        if field.wire_type != LEN:
            raise FormatError(f"field {field.number} is not length-delimited", offset=field.offset)
        if field.value > cap:
            raise FormatError(f"field {field.number} longer than {cap} bytes", offset=field.offset)
        if self.pos != field.start:
            raise FormatError("payload already consumed", offset=field.offset)
        return self.read_exact(field.value, field.end)


def iter_fields(
    data: bytes, max_depth: int = DEFAULT_MAX_DEPTH
) -> Iterator[tuple[int, int, int | bytes]]:
    """The top-level fields of an in-memory message: (number, wire type, int or payload bytes)."""
    reader = ProtoReader(io.BytesIO(data), len(data), max_depth=max_depth)
    for field in reader.fields():
        if field.wire_type == LEN:
            yield field.number, field.wire_type, reader.read_payload(field, len(data))
        else:
            yield field.number, field.wire_type, field.value


def walk(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> int:
    """Parse ``data`` as a message and, greedily, every payload that parses as one; returns the
    number of fields seen. A payload that is not a valid message is treated as bytes; only the
    top level must be valid. Used by the fuzz targets and property tests."""
    count = 0
    stack: list[tuple[bytes, int]] = [(data, 0)]
    while stack:
        chunk, depth = stack.pop()
        try:
            fields = list(iter_fields(chunk, max_depth))
        except FormatError:
            if depth == 0:
                raise
            continue
        count += len(fields)
        for _number, wire_type, value in fields:
            if wire_type == LEN and isinstance(value, bytes) and value and depth < max_depth:
                stack.append((value, depth + 1))
    return count
