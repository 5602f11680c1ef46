"""Coverage-guided fuzzing of the protobuf wire reader and the ONNX scanner (atheris).

    python fuzz/fuzz_protobuf.py CORPUS_DIR -atheris_runs=100000

Invariants: the reader raises nothing but FormatError; a seekable and a forward-only stream give
the same fields; the ONNX scanner never raises and returns findings.
"""

from __future__ import annotations

import contextlib
import io

from modelseal.formats import FormatError
from modelseal.formats.protobuf import ProtoReader, walk
from modelseal.scan.interface import ScanContext
from modelseal.scan.model import Finding
from modelseal.scan.onnx import OnnxScanner


class _ForwardOnly(io.RawIOBase):
    """A stream that can only be read forward (like a compressed zip member)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._inner.read(n)


def _no_members(stream: object, size: int, name: str, ctx: ScanContext) -> list[Finding]:
    return []


CTX = ScanContext("fuzz", "fuzz.onnx", 1, None, None, _no_members)


def _fields(stream: io.IOBase, size: int) -> list[tuple[int, int, int]] | str:
    reader = ProtoReader(stream, size)  # type: ignore[arg-type]
    try:
        return [(f.number, f.wire_type, f.value) for f in reader.fields()]
    except FormatError as exc:
        return f"error at {exc.offset}"


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        walk(data)
    if _fields(io.BytesIO(data), len(data)) != _fields(_ForwardOnly(data), len(data)):
        raise AssertionError("seekable and forward-only streams disagree")
    findings = OnnxScanner().scan(io.BytesIO(data), len(data), CTX)
    if not all(isinstance(f, Finding) for f in findings):
        raise AssertionError("scanner returned something that is not a Finding")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
