"""Coverage-guided fuzzing of the npy header parser and scanner (atheris).

    python fuzz/fuzz_npy.py CORPUS_DIR -atheris_runs=100000

Invariants: the parser raises nothing but FormatError; what it accepts is self-consistent (data
offset within the input, a data size exactly when the dtype holds no object, the stream reader
agrees with the bytes parser); the scanner never raises and returns findings.
"""

from __future__ import annotations

import io

from modelseal.formats import FormatError
from modelseal.formats.npy import parse_header, read_header
from modelseal.scan.interface import ScanContext
from modelseal.scan.model import Finding
from modelseal.scan.numpy import NpyScanner


def _no_members(stream: object, size: int, name: str, ctx: ScanContext) -> list[Finding]:
    return []


CTX = ScanContext("fuzz", "fuzz.npy", 0, None, None, _no_members)


def test_one_input(data: bytes) -> None:
    try:
        header = parse_header(data, len(data))
    except FormatError:
        header = None
    if header is not None:
        if not 10 <= header.data_offset <= len(data):
            raise AssertionError("data offset outside the input")
        if header.has_object != (header.data_size is None):
            raise AssertionError("data size present exactly when the dtype has no object")
        if read_header(io.BytesIO(data), len(data)) != header:
            raise AssertionError("stream and bytes parsers disagree")
    findings = NpyScanner().scan(io.BytesIO(data), len(data), CTX)
    if not all(isinstance(f, Finding) for f in findings):
        raise AssertionError("scanner returned something that is not a Finding")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
