"""Coverage-guided fuzzing of the bounded GGUF reader and scanner (atheris).

    python fuzz/fuzz_gguf.py CORPUS_DIR -atheris_runs=100000

Invariant: any input either parses into tensors laid out at the running sum of their padded
sizes, aligned, within the file, or fails with FormatError; the scanner (chat-template check
included) never raises. Any other exception is a bug.
"""

from __future__ import annotations

import io

from modelseal.formats import FormatError
from modelseal.formats.gguf import parse_gguf_bytes
from modelseal.scan.gguf import GgufScanner
from modelseal.scan.interface import ScanContext

_CTX = ScanContext.standalone("fuzz")


def test_one_input(data: bytes) -> None:
    GgufScanner().scan(io.BytesIO(data), len(data), _CTX)
    try:
        parsed = parse_gguf_bytes(data)
    except FormatError:
        return
    align = parsed.alignment
    if align <= 0 or align & (align - 1) or parsed.data_start % align:
        raise AssertionError("bad alignment accepted")
    running = 0
    for t in parsed.tensors:
        if t.offset != running or t.offset % align or not all(d >= 1 for d in t.dims):
            raise AssertionError(f"tensor {t.name!r} is misplaced")
        running += -(-t.nbytes // align) * align
    if parsed.tensors:
        last = parsed.tensors[-1]
        if parsed.data_start + last.offset + last.nbytes > len(data):
            raise AssertionError("tensor data past EOF accepted")
    if len({kv.key for kv in parsed.kvs}) != len(parsed.kvs):
        raise AssertionError("duplicate keys accepted")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
