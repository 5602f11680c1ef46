"""Coverage-guided fuzzing of the gateway's server-sent-events parser (atheris).

    python fuzz/fuzz_sse.py CORPUS_DIR -atheris_runs=100000

Invariant: the parser never raises on any bytes (except UpstreamError for an over-long event),
and feeding the same bytes in one piece or split at any two points gives the same events.
"""

from __future__ import annotations

from modelseal.errors import UpstreamError
from modelseal.gateway.sse import SseEvent, SseParser


def parse(pieces: list[bytes]) -> list[SseEvent]:
    parser = SseParser(max_event_bytes=1 << 20)
    events: list[SseEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.close())
    return events


def test_one_input(data: bytes) -> None:
    try:
        whole = parse([data])
    except UpstreamError:
        return
    if not data:
        return
    a = data[0] % (len(data) + 1)
    b = data[-1] % (len(data) + 1)
    lo, hi = min(a, b), max(a, b)
    split = parse([data[:lo], data[lo:hi], data[hi:]])
    if split != whole:
        raise AssertionError(f"splitting at {lo},{hi} changed the events")
    bytewise = parse([data[i : i + 1] for i in range(len(data))])
    if bytewise != whole:
        raise AssertionError("feeding byte by byte changed the events")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
