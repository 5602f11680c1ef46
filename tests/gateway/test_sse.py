"""The SSE parser: OpenAI streams, comments, CRLF, and any split of the bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelseal.errors import UpstreamError
from modelseal.gateway.sse import DONE, SseEvent, SseParser, comment, frame


def parse(pieces: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    events: list[SseEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events + parser.close()


def test_openai_stream() -> None:
    raw = frame({"choices": [{"delta": {"content": "hé"}}]}) + comment("receipt x") + DONE
    events = parse([raw])
    assert [e.data for e in events] == ['{"choices":[{"delta":{"content":"h\\u00e9"}}]}', "[DONE]"]
    assert json.loads(events[0].data)["choices"][0]["delta"]["content"] == "hé"


def test_fields_comments_and_line_endings() -> None:
    raw = b": hi\r\nevent: update\r\ndata: a\r\ndata:b\r\n\r\ndata: c\rdata:  d\n\n"
    assert parse([raw]) == [
        SseEvent("a\nb", "update", None),
        SseEvent("c\n d", None, None),
    ]


def test_a_final_event_without_blank_line_counts_at_close() -> None:
    assert parse([b"data: tail"]) == [SseEvent("tail")]


def test_overlong_event_is_an_upstream_error() -> None:
    parser = SseParser(max_event_bytes=100)
    with pytest.raises(UpstreamError, match="longer than 100 bytes"):
        parser.feed(b"data: " + b"x" * 200)


def test_comment_cannot_break_out_of_its_line() -> None:
    assert comment("a\nb\rc") == b": a b c\n\n"


events_text = st.lists(
    st.tuples(
        st.sampled_from([None, "message", "x"]),
        st.lists(
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                max_size=20,
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    max_size=6,
)


@given(
    events=events_text,
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_any_split_gives_the_same_events(
    events: list[tuple[str | None, list[str]]], newline: bytes, cuts: list[int]
) -> None:
    raw = b""
    for name, lines in events:
        if name:
            raw += b"event: " + name.encode() + newline
        for line in lines:
            raw += b"data: " + line.encode() + newline
        raw += newline
    expected = [SseEvent("\n".join(lines), name) for name, lines in events]
    positions = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *positions], [*positions, len(raw)], strict=True)]
    assert parse(pieces) == expected


@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_and_split_invariant(data: bytes) -> None:
    whole = parse([data])
    assert parse([data[i : i + 1] for i in range(len(data))]) == whole
