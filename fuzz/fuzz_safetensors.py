"""Coverage-guided fuzzing of the safetensors header validator and scanner (atheris).

    python fuzz/fuzz_safetensors.py CORPUS_DIR -atheris_runs=100000

Invariant: any input either validates into a header whose tensors tile the byte buffer exactly
(sorted, contiguous, sizes matching dtype x shape, ending at EOF), or fails with FormatError; the
scanner never raises. Any other exception is a bug.
"""

from __future__ import annotations

import io

from modelseal.formats import FormatError
from modelseal.formats.safetensors import DTYPE_BITS, parse_header_bytes
from modelseal.scan.interface import ScanContext
from modelseal.scan.safetensors import SafetensorsScanner

_CTX = ScanContext.standalone("fuzz")


def test_one_input(data: bytes) -> None:
    SafetensorsScanner().scan(io.BytesIO(data), len(data), _CTX)
    try:
        header = parse_header_bytes(data)
    except FormatError:
        return
    start = 0
    for t in header.tensors:
        if t.begin != start or t.nbytes * 8 != t.numel * DTYPE_BITS[t.dtype]:
            raise AssertionError(f"tensor {t.name!r} does not tile the buffer")
        start = t.end
    if header.data_start + start != len(data):
        raise AssertionError("validated header does not end at EOF")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
