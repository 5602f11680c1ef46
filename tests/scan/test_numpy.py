"""The npy header parser and NpyScanner: real numpy files, object-array hand-off, bad headers."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.formats import FormatError
from modelseal.formats.npy import MAX_HEADER, parse_header, parse_literal, read_header
from modelseal.scan.interface import ScanContext
from modelseal.scan.model import Finding, Location, Severity, Verdict
from modelseal.scan.numpy import PICKLE_MEMBER, NpyScanner

np = pytest.importorskip("numpy")

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
DATA2 = ROOT.parent / "shared" / "testdata" / "picklescan" / "data2"
sys.path.insert(0, str(FUZZ))

import fuzz_npy  # noqa: E402

MARK = Finding("test.member", Verdict.SUSPICIOUS, Severity.LOW, "recorded", None, Location())


class Recorder:
    """A fake dispatcher: records each member's bytes and returns one marker finding."""

    def __init__(self) -> None:
        self.members: list[tuple[str, int, bytes]] = []

    def __call__(self, stream: BinaryIO, size: int, name: str, ctx: ScanContext) -> list[Finding]:
        self.members.append((name, size, stream.read(size)))
        return [MARK.within(name)]

    def ctx(self) -> ScanContext:
        return ScanContext("x.npy", "x.npy", 0, None, None, self)


def npy_bytes(array: object, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True, **kwargs)
    return buf.getvalue()


def scan(data: bytes, recorder: Recorder | None = None) -> list[Finding]:
    rec = recorder or Recorder()
    return NpyScanner().scan(io.BytesIO(data), len(data), rec.ctx())


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def raw_npy(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    body = header.encode("latin-1")
    if version == (1, 0):
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body + data
    return b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(body)) + body + data


# -- real numpy files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(10),
        np.zeros((3, 4), dtype="<f4"),
        np.zeros((2, 3), order="F"),
        np.array(3.5),
        np.zeros(0, dtype=bool),
        np.array(["abc", "de"]),
        np.array([b"xy"]),
        np.array([np.datetime64("2020-01-01")]),
        np.zeros(4, dtype=">i2"),
        np.zeros(2, dtype=np.complex128),
        np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2, 2)), (("title", "c"), "S3")]),
        np.zeros(2, dtype=np.dtype({"names": ["a"], "formats": ["<i2"], "itemsize": 8})),
    ],
)
def test_plain_arrays_are_clean(array: object) -> None:
    data = npy_bytes(array)
    rec = Recorder()
    assert scan(data, rec) == []
    assert rec.members == []
    header = parse_header(data, len(data))
    assert not header.has_object
    assert header.data_size == len(data) - header.data_offset


def test_header_fields_match_numpy() -> None:
    array = np.zeros((2, 5), dtype="<u2", order="F")
    data = npy_bytes(array)
    header = read_header(io.BytesIO(data), len(data))
    assert header.descr == "<u2"
    assert header.fortran_order is True
    assert header.shape == (2, 5)
    assert header.itemsize == 2
    assert header.data_size == 20
    assert header.version == (1, 0)


@pytest.mark.parametrize("version", [(2, 0), (3, 0)])
def test_versions_2_and_3(version: tuple[int, int]) -> None:
    from numpy.lib import format as npformat

    buf = io.BytesIO()
    array = np.arange(6, dtype="<i4")
    npformat.write_array(buf, array, version=version)
    data = buf.getvalue()
    header = parse_header(data, len(data))
    assert header.version == version
    assert header.shape == (6,)
    assert scan(data) == []


@pytest.mark.parametrize(
    "array",
    [
        np.array([1, "a", None], dtype=object),
        np.zeros(3, dtype=[("a", "<i4"), ("b", "O")]),
        np.zeros(2, dtype=[("outer", [("inner", "O")])]),
    ],
)
def test_object_arrays_hand_their_pickle_to_the_dispatcher(array: object) -> None:
    data = npy_bytes(array)
    header = parse_header(data, len(data))
    assert header.has_object
    assert header.data_size is None
    rec = Recorder()
    findings = scan(data, rec)
    assert len(rec.members) == 1
    name, size, payload = rec.members[0]
    assert name == PICKLE_MEMBER
    assert payload.startswith(b"\x80")
    assert payload == data[header.data_offset :]
    assert size == len(payload)
    # the scanner adds nothing of its own: the verdict is the pickle scanner's
    assert findings == [MARK.within(PICKLE_MEMBER)]
    assert all(f.verdict is not Verdict.DANGEROUS for f in findings)


def test_object_array_without_data_is_malformed() -> None:
    data = raw_npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n")
    rec = Recorder()
    assert rules(scan(data, rec)) == {"npy.size-mismatch"}
    assert rec.members == []


# -- picklescan corpus -------------------------------------------------------------------------


@pytest.mark.skipif(not DATA2.is_dir(), reason="shared picklescan corpus not present")
def test_picklescan_corpus() -> None:
    assert scan((DATA2 / "int_array.npy").read_bytes()) == []
    for name in ("object_array.npy", "dns_exfiltration.npy"):
        data = (DATA2 / name).read_bytes()
        rec = Recorder()
        findings = scan(data, rec)
        header = parse_header(data, len(data))
        assert header.has_object
        assert [m[0] for m in rec.members] == [PICKLE_MEMBER]
        assert rec.members[0][2] == data[header.data_offset :]
        assert rec.members[0][2][:1] == b"\x80"
        assert findings == [MARK.within(PICKLE_MEMBER)]


# -- size mismatches and bad headers -----------------------------------------------------------


def test_trailing_bytes_are_a_size_mismatch() -> None:
    data = npy_bytes(np.arange(4, dtype="<i8")) + b"\x80\x04hidden pickle."
    findings = scan(data)
    assert rules(findings) == {"npy.size-mismatch"}
    assert findings[0].verdict is Verdict.MALFORMED
    assert findings[0].location.offset == parse_header(data, len(data)).data_offset


def test_truncated_data_is_a_size_mismatch() -> None:
    data = npy_bytes(np.arange(4, dtype="<i8"))[:-3]
    assert rules(scan(data)) == {"npy.size-mismatch"}


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': 'object', 'fortran_order': False, 'shape': (1,)}",  # numpy would say object
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
        "{'descr': '<f8', 'fortran_order': False}",
        "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': [1]}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (True,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2)}",  # (2) is an int, not a tuple
        "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f3', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<i8[ns]', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': [('a', 'object')], 'fortran_order': False, 'shape': (1,)}",
        "{'descr': [('a',)], 'fortran_order': False, 'shape': (1,)}",
        "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} # comment",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} {}",
        "{'descr': '<f8\\q', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (01,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)",
        "['descr']",
        "",
    ],
)
def test_bad_headers_are_malformed(header: str) -> None:
    data = raw_npy(header + "\n", b"\0" * 8)
    with pytest.raises(FormatError):
        parse_header(data, len(data))
    findings = scan(data)
    assert rules(findings) == {"npy.bad-header"}
    assert findings[0].verdict is Verdict.MALFORMED


def test_overflowing_shape_is_an_error() -> None:
    big = ", ".join(["4294967296"] * 3)
    data = raw_npy(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({big},)}}\n")
    with pytest.raises(FormatError, match="overflow"):
        parse_header(data, len(data))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x93NUMP",
        b"\x93NUMPX\x01\x00\x10\x00",
        b"\x93NUMPY\x04\x00\x10\x00{}",
        b"\x93NUMPY\x02\x00\x10",
        b"\x93NUMPY\x01\x00\xff\xff{}",  # header longer than the file
        b"\x93NUMPY\x02\x00" + struct.pack("<I", MAX_HEADER + 1) + b" " * 16,
        raw_npy("{'descr': '\xff', 'fortran_order': False, 'shape': ()}", version=(3, 0)),
    ],
)
def test_bad_preambles(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_header(data, len(data))
    assert rules(scan(data)) == {"npy.bad-header"}


def test_literal_grammar() -> None:
    text = "{'a': (1, 2,), \"b\": [('x', '<f8', (2,)), (('t', 'n'), '|S1')], 'c': True, 'd': ()}"
    assert parse_literal(text) == {
        "a": (1, 2),
        "b": [("x", "<f8", (2,)), (("t", "n"), "|S1")],
        "c": True,
        "d": (),
    }
    assert parse_literal("{'s': 'it\\'s', 'l': 3L}") == {"s": "it's", "l": 3}
    with pytest.raises(FormatError, match="nested too deeply"):
        parse_literal("{'a': " + "(" * 100 + ")" * 100 + "}")


def test_header_never_reads_past_the_data_offset() -> None:
    data = npy_bytes(np.arange(3, dtype="<i2"))
    stream = io.BytesIO(data)
    header = read_header(stream, len(data))
    assert stream.tell() == header.data_offset


# -- properties and fuzzing ---------------------------------------------------------------------


SEEDS = [
    npy_bytes(np.arange(5)),
    npy_bytes(np.array([1, None], dtype=object)),
    npy_bytes(np.zeros(2, dtype=[("a", "<i4"), ("b", "O")])),
    raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,)}\n", b"\0" * 8, (2, 0)),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    fuzz_npy.test_one_input(data)
    fuzz_npy.test_one_input(b"\x93NUMPY\x01\x00" + data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_real_files(seed: bytes, data: st.DataObject) -> None:
    mutated = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(mutated) - 1))
        mutated[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    fuzz_npy.test_one_input(bytes(mutated))
    fuzz_npy.test_one_input(bytes(mutated[:cut]))


def test_fuzz_target_on_seeds() -> None:
    for seed in SEEDS:
        fuzz_npy.test_one_input(seed)
