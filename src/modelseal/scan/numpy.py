"""NumPy ``.npy`` arrays (scanning.md §2.2 #12).

An object-dtype array is stored as a pickle after the header, and ``np.load(allow_pickle=True)``
unpickles it: the bytes after the header go back to the dispatcher as the member
``<object-array-pickle>``, which sniffs them and lets the pickle scanner judge them. An object
dtype is not a finding by itself (a benign object array must not be called dangerous). For
other dtypes the data must be exactly ``prod(shape) * itemsize`` bytes: trailing bytes are
ignored by numpy and could hide anything (``npy.size-mismatch``, malformed). A header that does
not parse under the strict grammar of :mod:`modelseal.formats.npy` is ``npy.bad-header``
(malformed). ``.npz`` archives are zips of ``.npy`` members and go through the zip scanner.
"""

from __future__ import annotations

from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats.npy import read_header
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Location, Severity, Verdict

PICKLE_MEMBER = "<object-array-pickle>"


def _malformed(rule: str, message: str, offset: int | None) -> Finding:
    return Finding(rule, Verdict.MALFORMED, Severity.MEDIUM, message, None, Location(offset=offset))


class NpyScanner(Scanner):
    """A ``.npy`` file: header grammar, data size, and the pickle of object arrays."""

    format = "npy"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        try:
            header = read_header(stream, size)
        except FormatError as exc:
            return [_malformed("npy.bad-header", exc.message, exc.offset)]
        remaining = size - header.data_offset
        if header.data_size is None:  # object dtype: the data is a pickle
            if remaining <= 0:
                message = "object array without pickle data"
                return [_malformed("npy.size-mismatch", message, header.data_offset)]
            return ctx.member(stream, remaining, PICKLE_MEMBER)
        if remaining != header.data_size:
            message = (
                f"data is {remaining} bytes but shape {header.shape} of {header.descr!r}"[:200]
                + f" needs {header.data_size}"
            )
            return [_malformed("npy.size-mismatch", message, header.data_offset)]
        return []


__all__ = ["PICKLE_MEMBER", "NpyScanner"]
