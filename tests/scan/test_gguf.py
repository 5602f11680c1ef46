"""GGUF: the bounded reader, the scanner, the chat-template SSTI check and the fuzz harness.

Valid files are written by the PyPI ``gguf`` package (``GGUFWriter``, writing only); malformed
ones are assembled field by field with :func:`build`, one per llama.cpp rule (scanning.md §4.2).
"""

from __future__ import annotations

import io
import struct
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.formats import FormatError
from modelseal.formats.gguf import (
    ARRAY_HEAD,
    GGML_TYPES,
    GgufArray,
    GgufError,
    parse_gguf,
    parse_gguf_bytes,
)
from modelseal.scan.gguf import GgufScanner
from modelseal.scan.interface import ScanContext
from modelseal.scan.model import Finding, Verdict
from modelseal.scan.templates import MAX_TEMPLATE, MAX_TEMPLATES, UNPARSABLE, check_chat_template

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_gguf  # noqa: E402

CTX = ScanContext.standalone("x")


def scan(data: bytes) -> list[Finding]:
    return GgufScanner().scan(io.BytesIO(data), len(data), CTX)


def kind_of(data: bytes) -> str:
    with pytest.raises(GgufError) as info:
        parse_gguf_bytes(data)
    return info.value.kind


# --- hand assembly -------------------------------------------------------------------------

U8, U32, I32, F32, BOOL, STRING, ARRAY, U64 = 0, 4, 5, 6, 7, 8, 9, 10


def gstr(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str | bytes, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload


def kv_str(key: str, value: str) -> bytes:
    return kv(key, STRING, gstr(value))


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, U32, struct.pack("<I", value))


def tinfo(name: str | bytes, dims: list[int], gtype: int = 0, offset: int = 0) -> bytes:
    packed = b"".join(struct.pack("<Q", d) for d in dims)
    return gstr(name) + struct.pack("<I", len(dims)) + packed + struct.pack("<IQ", gtype, offset)


def build(
    kvs: list[bytes],
    tensors: list[bytes],
    data: bytes = b"",
    *,
    version: int = 3,
    magic: bytes = b"GGUF",
    counts: tuple[int, int] | None = None,
    alignment: int = 32,
) -> bytes:
    n_t, n_kv = counts if counts is not None else (len(tensors), len(kvs))
    head = magic + struct.pack("<IQQ", version, n_t, n_kv) + b"".join(kvs) + b"".join(tensors)
    return head + b"\0" * (-len(head) % alignment) + data


ARCH = kv_str("general.architecture", "llama")
T0 = tinfo("t0", [8], 0, 0)  # F32 x 8 = 32 bytes at 0
T1 = tinfo("t1", [4], 0, 32)  # F32 x 4 = 16 bytes at 32, padded to 64
DATA = b"\1" * 32 + b"\2" * 16 + b"\0" * 16
VALID = build([ARCH], [T0, T1], DATA)


def test_hand_built_baseline_is_valid_for_us_and_for_gguf_py(tmp_path: Path) -> None:
    parsed = parse_gguf_bytes(VALID)
    assert [(t.name, t.dims, t.offset, t.nbytes) for t in parsed.tensors] == [
        ("t0", (8,), 0, 32),
        ("t1", (4,), 32, 16),
    ]
    assert parsed.data_size == 64
    assert parsed.trailing_bytes == 0
    (tmp_path / "v.gguf").write_bytes(VALID)
    reader = gguf.GGUFReader(tmp_path / "v.gguf")
    assert [t.name for t in reader.tensors] == ["t0", "t1"]
    assert scan(VALID) == []


# --- files from the reference writer --------------------------------------------------------

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TOOLS = (
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == 'user' %}{%- set ns.multi_step_tool = false %}"
    "{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}"
    "{%- if tools %}{{- '<tools>' }}{%- for tool in tools %}{{- tool | tojson }}{%- endfor %}"
    "{%- endif %}{%- for message in messages %}{%- if message.content is string %}"
    "{{ message.content }}{%- else %}{%- for c in message.content %}{%- if c.type == 'text' %}"
    "{{ c.text }}{% break %}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message.role == 'assistant' %}{% generation %}{{ message.content }}{% endgeneration %}"
    "{%- endif %}{%- if message.role not in ['user', 'assistant', 'system'] %}"
    "{{ raise_exception('bad role') }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


def write(path: Path, template: str | None = LLAMA3, **kw: object) -> bytes:
    w = gguf.GGUFWriter(str(path), "llama", **kw)  # type: ignore[arg-type]
    w.add_uint8("x.u8", 7)
    w.add_int8("x.i8", -7)
    w.add_uint16("x.u16", 700)
    w.add_int16("x.i16", -700)
    w.add_uint32("x.u32", 70000)
    w.add_int32("x.i32", -70000)
    w.add_uint64("x.u64", 2**40)
    w.add_int64("x.i64", -(2**40))
    w.add_float32("x.f32", 0.5)
    w.add_float64("x.f64", 0.25)
    w.add_bool("x.bool", True)
    w.add_string("general.name", "tiny")
    w.add_token_list([f"tok{i}" for i in range(3000)])
    w.add_array("x.ints", list(range(5000)))
    if template is not None:
        w.add_chat_template(template)
    w.add_tensor("f32", np.arange(96, dtype=np.float32).reshape(3, 32))
    w.add_tensor("f16", np.ones(5, dtype=np.float16))
    w.add_tensor("q8", np.zeros((2, 34), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("q4k", np.zeros((1, 144), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    "template", [LLAMA3, CHATML, TOOLS, None], ids=["llama3", "chatml", "tools", "none"]
)
def test_valid_written_file(tmp_path: Path, template: str | None) -> None:
    data = write(tmp_path / "m.gguf", template)
    with (tmp_path / "m.gguf").open("rb") as f:
        parsed = parse_gguf(f, len(data))
    meta = parsed.metadata
    assert meta["x.u8"] == 7
    assert meta["x.i64"] == -(2**40)
    assert meta["x.f32"] == 0.5
    assert meta["x.bool"] is True
    assert meta["general.name"] == "tiny"
    tokens = meta["tokenizer.ggml.tokens"]
    assert isinstance(tokens, GgufArray)
    assert (tokens.elem_type, tokens.length, len(tokens.head)) == ("STRING", 3000, ARRAY_HEAD)
    assert tokens.head[:2] == ("tok0", "tok1")
    ints = meta["x.ints"]
    assert isinstance(ints, GgufArray)
    assert ints.length == 5000
    assert ints.head[:3] == (0, 1, 2)
    assert meta.get("tokenizer.chat_template") == template
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    ours = [(t.name, t.type_name, t.dims, t.offset, t.nbytes) for t in parsed.tensors]
    theirs = [
        (
            t.name,
            t.tensor_type.name,
            tuple(int(d) for d in t.shape),
            int(t.data_offset) - parsed.data_start,
            int(t.n_bytes),
        )
        for t in reader.tensors
    ]
    assert ours == theirs
    assert [t.type_name for t in parsed.tensors] == ["F32", "F16", "Q8_0", "Q4_K"]
    assert parsed.trailing_bytes == 0
    assert scan(data) == []


def test_custom_alignment_and_non_seekable_stream(tmp_path: Path) -> None:
    w = gguf.GGUFWriter(str(tmp_path / "a.gguf"), "llama")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.ones(3, np.float32))
    w.add_tensor("b", np.ones(3, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = (tmp_path / "a.gguf").read_bytes()
    parsed = parse_gguf(Trickle(data), len(data))  # type: ignore[arg-type]
    assert parsed.alignment == 64
    assert [t.offset for t in parsed.tensors] == [0, 64]
    assert parsed.data_start % 64 == 0
    with pytest.raises(FormatError):
        parse_gguf(io.BytesIO(data[:100]), len(data))  # the stream is shorter than its size


class Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most 5 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        out = self._data[self._pos : self._pos + min(n, 5)]
        self._pos += len(out)
        return out


def test_big_endian_file_from_the_writer_is_byte_swapped(tmp_path: Path) -> None:
    data = write(tmp_path / "be.gguf", endianess=gguf.GGUFEndian.BIG)
    assert kind_of(data) == "byte-swapped"
    assert "big-endian" in scan(data)[0].message


def test_type_table_matches_gguf_py() -> None:
    assert {k: (n, b, s) for k, (n, b, s) in GGML_TYPES.items()} == {
        int(t): (t.name, *gguf.GGML_QUANT_SIZES[t]) for t in gguf.GGMLQuantizationType
    }


# --- malformed files, one per rule ----------------------------------------------------------

FORTY_NINE = build([kv("k", ARRAY, struct.pack("<IQ", U8, 2**63))], [], alignment=1)
BIG = 2**62


CASES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "bad-magic"),
    ("bad-magic", build([ARCH], [T0, T1], DATA, magic=b"GGUX"), "bad-magic"),
    ("version-0", build([ARCH], [T0, T1], DATA, version=0), "bad-version"),
    ("version-1", build([ARCH], [T0, T1], DATA, version=1), "bad-version"),
    ("version-99", build([ARCH], [T0, T1], DATA, version=99), "bad-version"),
    ("byte-swapped", build([ARCH], [T0, T1], DATA, version=0x03000000), "byte-swapped"),
    ("truncated-header", VALID[:20], "truncated"),
    ("huge-kv-count", build([ARCH], [T0, T1], DATA, counts=(2, 2**63)), "count-too-large"),
    ("huge-tensor-count", build([ARCH], [T0, T1], DATA, counts=(2**64 - 1, 1)), "count-too-large"),
    ("kv-count-vs-size", build([ARCH], [], counts=(0, 1000)), "count-too-large"),
    ("49-bytes", FORTY_NINE, "array-too-long"),
    ("array-past-eof", build([kv("k", ARRAY, struct.pack("<IQ", U32, 1 << 20))], []), "truncated"),
    (
        "string-array-past-eof",
        build([kv("k", ARRAY, struct.pack("<IQ", STRING, 1 << 20))], []),
        "truncated",
    ),
    (
        "truncated-string",
        build([kv("k", STRING, struct.pack("<Q", 100) + b"short")], [], alignment=1),
        "truncated",
    ),
    (
        "key-past-eof",
        build([struct.pack("<Q", 2**40)], [], b"\0" * 16, counts=(0, 1)),
        "string-too-long",
    ),
    ("huge-string", build([kv("k", STRING, struct.pack("<Q", 17 << 20))], []), "string-too-long"),
    (
        "nested-array",
        build([kv("k", ARRAY, struct.pack("<IQ", ARRAY, 1) + struct.pack("<IQ", U8, 0))], []),
        "nested-array",
    ),
    ("bad-value-type", build([kv("k", 13, b"\0" * 8)], []), "bad-value-type"),
    ("bad-elem-type", build([kv("k", ARRAY, struct.pack("<IQ", 99, 0))], []), "bad-value-type"),
    ("duplicate-key", build([ARCH, ARCH], [T0, T1], DATA), "duplicate-key"),
    ("empty-key", build([kv_str("", "x")], [T0, T1], DATA), "bad-key"),
    ("non-utf8-key", build([kv_str(b"\xff\xfe", "x")], [T0, T1], DATA), "bad-key"),  # type: ignore[arg-type]
    ("long-tensor-name", build([ARCH], [tinfo("n" * 64, [8])], DATA[:32]), "tensor-name-too-long"),
    ("empty-tensor-name", build([ARCH], [tinfo("", [8])], DATA[:32]), "bad-tensor-name"),
    ("duplicate-tensor", build([ARCH], [T0, tinfo("t0", [4], 0, 32)], DATA), "duplicate-tensor"),
    ("n-dims-5", build([ARCH], [tinfo("t", [1, 1, 1, 1, 8])], DATA[:32]), "too-many-dims"),
    ("n-dims-1000", build([ARCH], [tinfo("t", [1] * 1000)], DATA), "too-many-dims"),
    ("zero-dim", build([ARCH], [tinfo("t", [8, 0])], DATA[:32]), "zero-dim"),
    ("dims-overflow", build([ARCH], [tinfo("t", [BIG, 4])], DATA[:32]), "dims-overflow"),
    (
        "dims-int64-max",
        build([ARCH], [tinfo("t", [2**63 - 1, 2, 1, 1])], DATA[:32]),
        "dims-overflow",
    ),
    ("dim-over-int64", build([ARCH], [tinfo("t", [2**63])], DATA[:32]), "dims-overflow"),
    ("removed-type-4", build([ARCH], [tinfo("t", [32], 4)], DATA[:32]), "unknown-type"),
    ("unknown-type", build([ARCH], [tinfo("t", [32], 1000)], DATA[:32]), "unknown-type"),
    ("ne0-block", build([ARCH], [tinfo("t", [33], 2)], DATA), "block-misaligned"),
    ("misaligned-offset", build([ARCH], [T0, tinfo("t1", [4], 0, 33)], DATA), "misaligned-offset"),
    ("overlap", build([ARCH], [T0, tinfo("t1", [4], 0, 0)], DATA), "overlap"),
    ("gap", build([ARCH], [T0, tinfo("t1", [4], 0, 64)], DATA + b"\0" * 32), "gap"),
    ("out-of-order", build([ARCH], [tinfo("t1", [4], 0, 32), tinfo("t0", [8], 0, 0)], DATA), "gap"),
    ("offset-past-eof", build([ARCH], [T0, T1], DATA[:40]), "data-past-eof"),
    ("size-past-eof", build([ARCH], [T0, tinfo("t1", [4096], 0, 32)], DATA), "data-past-eof"),
    ("alignment-0", build([kv_u32("general.alignment", 0)], [T0, T1], DATA), "bad-alignment"),
    (
        "alignment-48",
        build([kv_u32("general.alignment", 48)], [T0, T1], DATA, alignment=48),
        "bad-alignment",
    ),
    ("alignment-2^30", build([kv_u32("general.alignment", 1 << 30)], []), "bad-alignment"),
    (
        "alignment-u64",
        build([kv("general.alignment", U64, struct.pack("<Q", 32))], [T0, T1], DATA),
        "bad-alignment",
    ),
]


@pytest.mark.parametrize(("data", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed(data: bytes, kind: str) -> None:
    start = time.monotonic()
    assert kind_of(data) == kind
    findings = scan(data)
    assert time.monotonic() - start < 1
    assert [f.rule for f in findings] == [f"gguf.{kind}"]
    assert findings[0].verdict is Verdict.MALFORMED
    assert "\n" not in findings[0].message


def test_the_49_byte_file_fails_at_once() -> None:
    assert len(FORTY_NINE) == 49
    start = time.monotonic()
    with pytest.raises(FormatError):
        parse_gguf_bytes(FORTY_NINE)
    assert time.monotonic() - start < 0.1


def test_trailing_bytes_are_suspicious() -> None:
    findings = scan(VALID + b"PK\x03\x04 polyglot")
    assert [(f.rule, f.verdict) for f in findings] == [("gguf.trailing-bytes", Verdict.SUSPICIOUS)]
    assert findings[0].location.offset == len(VALID)
    assert scan(VALID[:-16]) == []  # the last tensor's padding may be missing


def test_symbol_and_offset_point_at_the_tensor() -> None:
    data = build([ARCH], [T0, tinfo("t1", [4], 0, 0)], DATA)
    (finding,) = scan(data)
    assert finding.symbol == "t1"
    assert data[finding.location.offset or 0 :].startswith(gstr("t1"))


# --- chat templates ------------------------------------------------------------------------

SSTI = [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", {"__class__", "__mro__", "__subclasses__"}),
    (
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
        {"self._TemplateReference__context", "__globals__", "os", "popen"},
    ),
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", {"cycler.__init__"}),
    ("{{ joiner.__init__.__globals__ }}", {"joiner.__init__"}),
    ("{{ namespace.__init__.__globals__ }}", {"namespace.__init__"}),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", {"lipsum.__globals__", "os"}),
    ("{{ ''|attr('__class__') }}", {"__class__"}),
    ("{% set a = '__cla' ~ 'ss__' %}{{ ''|attr(a) }}", {"|attr"}),
    ("{{ x['__globals__'] }}", {"x.__globals__"}),
    ("{{ request.application }}{{ config.items() }}", {"request", "config"}),
    ("{{ ().__class__.__base__.mro() }}", {"mro", "__base__"}),
    (
        "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
        "{{ x()._module.__builtins__['__import__']('os').popen('touch /tmp/p') }}"
        "{% endif %}{% endfor %}",  # CVE-2024-34359
        {"__builtins__", "__import__", "popen", "_module"},
    ),
    ("{{ messages|map(attribute='__class__')|list }}", {"__class__"}),
]


@pytest.mark.parametrize(("template", "markers"), SSTI)
def test_check_chat_template_finds_ssti(template: str, markers: set[str]) -> None:
    found = dict(check_chat_template(template))
    assert markers <= set(found), found
    assert all(found.values())


@pytest.mark.parametrize("template", [LLAMA3, CHATML, TOOLS, "", "Hello {{ name }}"])
def test_benign_templates_are_clean(template: str) -> None:
    assert check_chat_template(template) == []


@pytest.mark.parametrize(
    "template",
    [
        "{% if %}",
        "{{ 1 +",
        "{% endfor %}",
        "{{ " + "9" * 5000 + " }}",
        "{{" + "(" * 5000 + "1" + ")" * 5000 + "}}",
    ],
)
def test_unparsable_templates(template: str) -> None:
    assert [m for m, _ in check_chat_template(template)] == [UNPARSABLE]


def test_oversized_template_is_not_parsed() -> None:
    start = time.monotonic()
    found = check_chat_template("x" * (MAX_TEMPLATE + 1))
    assert time.monotonic() - start < 0.5
    assert [m for m, _ in found] == [UNPARSABLE]
    assert check_chat_template(LLAMA3 + " " * (MAX_TEMPLATE - len(LLAMA3))) == []


def test_ssti_template_in_a_written_file_is_dangerous(tmp_path: Path) -> None:
    payload = SSTI[1][0]
    findings = scan(write(tmp_path / "evil.gguf", payload))
    assert {f.rule for f in findings} == {"gguf.chat-template-ssti"}
    assert all(f.verdict is Verdict.DANGEROUS for f in findings)
    assert "popen" in {f.symbol for f in findings}
    assert all("tokenizer.chat_template" in f.message for f in findings)


def test_named_templates_and_odd_values() -> None:
    evil = kv_str("tokenizer.chat_template.tool_use", SSTI[0][0])
    findings = scan(build([ARCH, kv_str("tokenizer.chat_template", CHATML), evil], [T0, T1], DATA))
    assert {f.rule for f in findings} == {"gguf.chat-template-ssti"}
    assert {f.symbol for f in findings} >= {"__class__"}
    broken = scan(build([kv_str("tokenizer.chat_template", "{% if %}")], []))
    assert [(f.rule, f.verdict) for f in broken] == [
        ("gguf.chat-template-unparsable", Verdict.SUSPICIOUS)
    ]
    not_text = scan(build([kv_u32("tokenizer.chat_template", 1)], []))
    assert [f.rule for f in not_text] == ["gguf.chat-template-unparsable"]
    other_key = scan(build([kv_str("general.description", SSTI[0][0])], []))
    assert other_key == []
    many = [kv_str(f"tokenizer.chat_template.t{i}", CHATML) for i in range(MAX_TEMPLATES + 1)]
    assert [f.rule for f in scan(build(many, []))] == ["gguf.chat-template-unparsable"]


# --- properties ----------------------------------------------------------------------------

FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.data())
def test_mutated_files_only_raise_format_error(data: st.DataObject) -> None:
    blob = bytearray(data.draw(st.sampled_from([VALID, *(c[1] for c in CASES)])))
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "u64", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(blob) - 1)))
        if op == "flip" and blob:
            blob[at] = data.draw(st.integers(0, 255))
        elif op == "u64":
            blob[at : at + 8] = struct.pack(
                "<Q", data.draw(st.sampled_from([0, 1, 2**31, 2**63, 2**64 - 1]))
            )
        elif op == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[at : at + data.draw(st.integers(1, 8))]
    start = time.monotonic()
    try:
        parse_gguf_bytes(bytes(blob))
        valid = True
    except FormatError:
        valid = False
    malformed = [f for f in scan(bytes(blob)) if f.verdict is Verdict.MALFORMED]
    assert valid == (not malformed)
    assert time.monotonic() - start < 1


@FAST
@given(st.text(max_size=200))
def test_template_check_never_raises(text: str) -> None:
    for marker, why in check_chat_template("{{ " + text + " }}") + check_chat_template(text):
        assert marker
        assert why


# --- fuzz harness --------------------------------------------------------------------------


def seeds() -> list[bytes]:
    return [VALID, *(c[1] for c in CASES)]


def test_fuzz_target_on_seeds(tmp_path: Path) -> None:
    for seed in [*seeds(), write(tmp_path / "w.gguf", SSTI[0][0])]:
        fuzz_gguf.test_one_input(seed)


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=2048))
def test_fuzz_target_on_random_bytes(data: bytes) -> None:
    fuzz_gguf.test_one_input(data)
    fuzz_gguf.test_one_input(b"GGUF\3\0\0\0" + data)
