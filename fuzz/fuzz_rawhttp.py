"""Coverage-guided fuzzing of the gateway's HTTP/1.1 response parser (atheris).

    python fuzz/fuzz_rawhttp.py CORPUS_DIR -atheris_runs=100000

Feeds arbitrary bytes, as the upstream's answer, to the response-parsing layer of
:class:`~modelseal.gateway._http.RawUpstream` (``ResponseReader``, httptools underneath).
Invariant: it raises nothing but UpstreamError, and feeding the same bytes in one piece, split at
two points, or byte by byte gives the same outcome (status, body, complete, reusable, or an error).
"""

from __future__ import annotations

from modelseal.errors import UpstreamError
from modelseal.gateway._http import ResponseReader

Outcome = tuple[int, bytes, bool, bool] | None


def parse(pieces: list[bytes]) -> Outcome:
    reader = ResponseReader()
    body: list[bytes] = []
    try:
        for piece in pieces:
            reader.feed(piece)
            body.extend(reader.take())
        reader.feed_eof()
    except UpstreamError:
        return None
    body.extend(reader.take())
    return reader.status, b"".join(body), reader.done, reader.reusable


def test_one_input(data: bytes) -> None:
    whole = parse([data])
    if not data:
        return
    a = data[0] % (len(data) + 1)
    b = data[-1] % (len(data) + 1)
    lo, hi = min(a, b), max(a, b)
    split = parse([data[:lo], data[lo:hi], data[hi:]])
    if split != whole:
        raise AssertionError(f"splitting at {lo},{hi} changed the outcome: {split} != {whole}")
    bytewise = parse([data[i : i + 1] for i in range(len(data))])
    if bytewise != whole:
        raise AssertionError(f"feeding byte by byte changed the outcome: {bytewise} != {whole}")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
