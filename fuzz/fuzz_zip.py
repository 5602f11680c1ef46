"""Coverage-guided fuzzing of the zip reader (atheris).

    python fuzz/fuzz_zip.py CORPUS_DIR -atheris_runs=100000

Invariants: listing the entries and reading each one fails only with FormatError; an entry never
yields more bytes than it declares; the zip scanner never raises on any input.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats import zip as zipfmt
from modelseal.scan.interface import ScanContext
from modelseal.scan.model import Finding
from modelseal.scan.zip import ZipScanner

MAX_ENTRIES = 32
MAX_READ = 1 << 20


def _drain(stream: BinaryIO, size: int, name: str, ctx: ScanContext) -> list[Finding]:
    stream.read(min(size, MAX_READ))
    return []


def test_one_input(data: bytes) -> None:
    file = io.BytesIO(data)
    entries: list[zipfmt.ZipEntry] = []
    try:
        for entry in zipfmt.iter_entries(file, len(data)):
            entries.append(entry)
            if len(entries) >= MAX_ENTRIES:
                break
    except FormatError:
        pass
    for entry in entries:
        if entry.uncompressed_size > MAX_READ:
            continue
        try:
            stream = zipfmt.open_entry(file, entry, size=len(data), allow_encrypted=True)
            out = stream.read()
            stream.read(1)  # the end check: nothing beyond the declared size
        except FormatError:
            continue
        if len(out) > entry.uncompressed_size:
            raise AssertionError("an entry yielded more bytes than it declares")
    ctx = ScanContext("fuzz", "fuzz", 0, None, None, _drain)
    ZipScanner().scan(io.BytesIO(data), len(data), ctx)


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
