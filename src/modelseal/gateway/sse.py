"""Server-sent events: an incremental parser for upstream streams and the frames we write.

The parser follows the WHATWG event-stream rules that matter for OpenAI-style streams: events
end at a blank line; ``data:`` lines of one event are joined with newlines; one optional space
after the colon is dropped; lines starting with ``:`` are comments; ``\\r\\n``, ``\\r`` and ``\\n``
all end a line. Bytes may arrive split anywhere, including inside a UTF-8 sequence or a CRLF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SseParser:
    """Feed bytes, get complete events. Holds at most one partial event between feeds."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_max")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buf = self._buf + chunk if self._buf else chunk
        events: list[SseEvent] = []
        start = 0
        size = len(buf)
        while start < size:
            nl = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, nl if nl >= 0 else size)
            if cr >= 0:
                if cr + 1 == size:  # a CR at the very end may be half of a CRLF
                    break
                end, step = cr, 2 if buf[cr + 1 : cr + 2] == b"\n" else 1
            elif nl >= 0:
                end, step = nl, 1
            else:
                break
            self._line(buf[start:end], events)
            start = end + step
        self._buf = buf[start:]
        if len(self._buf) > self._max:
            from modelseal.errors import UpstreamError

            raise UpstreamError(f"the upstream sent an event longer than {self._max} bytes")
        return events

    def close(self) -> list[SseEvent]:
        """End of stream: a final event without its blank line still counts."""
        events: list[SseEvent] = []
        if self._buf:
            self._line(self._buf.rstrip(b"\r"), events)
            self._buf = b""
        self._line(b"", events)
        return events

    def _line(self, raw: bytes, events: list[SseEvent]) -> None:
        if not raw:
            if self._data:
                events.append(SseEvent("\n".join(self._data), self._event, self._id))
            self._data, self._event = [], None
            return
        line = raw.decode("utf-8", "replace")
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value


def frame(payload: Any) -> bytes:
    """One ``data:`` event holding ``payload`` as compact JSON."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def comment(text: str) -> bytes:
    """An SSE comment line (ignored by clients, readable by anyone who looks)."""
    return b": " + text.replace("\n", " ").replace("\r", " ").encode() + b"\n\n"
