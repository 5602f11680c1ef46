"""The protobuf wire reader and OnnxScanner: external-data escapes, custom domains, bad bytes."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.formats import FormatError
from modelseal.formats.protobuf import I32, I64, LEN, VARINT, ProtoReader, iter_fields, walk
from modelseal.scan.interface import ScanContext
from modelseal.scan.model import Finding, Verdict
from modelseal.scan.onnx import OnnxScanner

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.external_data_helper import (  # noqa: E402
    convert_model_to_external_data,
    set_external_data,
)

np = pytest.importorskip("numpy")

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_protobuf  # noqa: E402


def no_members(stream: BinaryIO, size: int, name: str, ctx: ScanContext) -> list[Finding]:
    raise AssertionError("the ONNX scanner has no members")


def scan_bytes(data: bytes, file_path: Path | None = None, depth: int = 0) -> list[Finding]:
    path = str(file_path) if file_path else None
    ctx = ScanContext("m.onnx", "m.onnx", depth, None, path, no_members)
    return OnnxScanner().scan(io.BytesIO(data), len(data), ctx)


def scan_file(path: Path) -> list[Finding]:
    return scan_bytes(path.read_bytes(), path)


def by_rule(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for finding in findings:
        out.setdefault(finding.rule, []).append(finding)
    return out


# -- model builders ----------------------------------------------------------------------------


def tensor(name: str, location: str | None = None) -> Any:
    t = numpy_helper.from_array(np.arange(4, dtype=np.float32), name)
    if location is not None:
        set_external_data(t, location)
        t.ClearField("raw_data")
    return t


def add_graph(initializers: list[Any], nodes: list[Any] | None = None) -> Any:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    names = [t.name for t in initializers] or ["x"]
    node = helper.make_node("Add", ["x", names[0]], ["y"])
    return helper.make_graph([*(nodes or []), node], "g", [x], [y], initializer=initializers)


def model_bytes(graph: Any, opsets: list[tuple[str, int]] | None = None, **kw: Any) -> bytes:
    imports = [helper.make_opsetid(d, v) for d, v in (opsets or [("", 17)])]
    model = helper.make_model(graph, opset_imports=imports, **kw)
    data: bytes = model.SerializeToString()
    return data


# -- benign models -----------------------------------------------------------------------------


def test_benign_model_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes(add_graph([tensor("w")]), [("", 17), ("ai.onnx.ml", 3)]))
    onnx.checker.check_model(str(path))
    assert scan_file(path) == []


def test_real_external_data_inside_the_directory_is_clean(tmp_path: Path) -> None:
    model = onnx.ModelProto.FromString(model_bytes(add_graph([tensor("w"), tensor("v")])))
    convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="sub/ok.bin", size_threshold=0
    )
    (tmp_path / "sub").mkdir()
    onnx.save_model(model, str(tmp_path / "m.onnx"))
    assert (tmp_path / "sub" / "ok.bin").is_file()
    assert scan_file(tmp_path / "m.onnx") == []
    # the same bytes with no file behind them: the data is missing
    other = tmp_path / "elsewhere"
    other.mkdir()
    data = (tmp_path / "m.onnx").read_bytes()
    findings = scan_bytes(data, other / "m.onnx")
    assert [f.rule for f in findings] == ["onnx.external-data-missing"]
    assert findings[0].verdict is Verdict.SUSPICIOUS
    assert findings[0].symbol == "sub/ok.bin"


# -- external data escapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "sub/../../x.bin",
        "sub\\..\\..\\x.bin",
        "C:/Windows/win.ini",
        "ok.bin\0.txt",
    ],
)
def test_escaping_locations_are_dangerous(tmp_path: Path, location: str) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes(add_graph([tensor("w", location)])))
    findings = scan_file(path)
    assert [f.rule for f in findings] == ["onnx.external-data-escape"]
    assert findings[0].verdict is Verdict.DANGEROUS
    assert findings[0].symbol == location
    assert "'w'" in findings[0].message
    # lexical checks hold inside containers too, where there is no directory to resolve against
    assert [f.rule for f in scan_bytes(path.read_bytes(), None, depth=1)] == [
        "onnx.external-data-escape"
    ]


def test_over_long_location_fails_closed(tmp_path: Path) -> None:
    data = model_bytes(add_graph([tensor("w", "a/" * 40_000 + "w.bin")]))
    findings = scan_bytes(data, tmp_path / "m.onnx")
    assert [f.rule for f in findings] == ["onnx.external-data-escape"]
    assert "too long" in findings[0].message


def test_symlink_out_of_the_directory_is_dangerous(tmp_path: Path) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * 16)
    release = tmp_path / "release"
    release.mkdir()
    os.symlink(outside, release / "data.bin")
    path = release / "m.onnx"
    path.write_bytes(model_bytes(add_graph([tensor("w", "data.bin")])))
    assert [f.rule for f in scan_file(path)] == ["onnx.external-data-escape"]


def test_symlinked_directory_out_is_dangerous(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    os.symlink("/etc", release / "cfg")
    path = release / "m.onnx"
    path.write_bytes(model_bytes(add_graph([tensor("w", "cfg/passwd")])))
    assert [f.rule for f in scan_file(path)] == ["onnx.external-data-escape"]


def test_links_inside_the_directory_are_suspicious(tmp_path: Path) -> None:
    (tmp_path / "real.bin").write_bytes(b"\0" * 16)
    os.symlink("real.bin", tmp_path / "sym.bin")
    os.link(tmp_path / "real.bin", tmp_path / "hard.bin")
    for name in ("sym.bin", "hard.bin"):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(model_bytes(add_graph([tensor("w", name)])))
        findings = scan_file(path)
        assert [f.rule for f in findings] == ["onnx.external-data-link"], name
        assert findings[0].verdict is Verdict.SUSPICIOUS


def test_a_directory_as_data_is_suspicious(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes(add_graph([tensor("w", "d")])))
    findings = scan_file(path)
    assert [f.rule for f in findings] == ["onnx.external-data-missing"]
    assert "regular file" in findings[0].message


def test_one_finding_per_location(tmp_path: Path) -> None:
    tensors = [tensor(f"w{i}", "../x.bin") for i in range(5)]
    findings = scan_bytes(model_bytes(add_graph(tensors)), tmp_path / "m.onnx")
    assert [f.rule for f in findings] == ["onnx.external-data-escape"]


def test_external_tensor_in_a_nested_subgraph(tmp_path: Path) -> None:
    inner_then = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=tensor("deep", "../../etc/shadow"))],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])],
    )
    inner_else = helper.make_graph(
        [helper.make_node("Constant", [], ["e"], value=tensor("shallow"))],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])],
    )
    # If inside Loop-free If inside another If: two levels of attribute graphs
    outer_then = helper.make_graph(
        [helper.make_node("If", ["c"], ["t2"], then_branch=inner_then, else_branch=inner_else)],
        "outer_then",
        [],
        [helper.make_tensor_value_info("t2", TensorProto.FLOAT, [4])],
    )
    cond = numpy_helper.from_array(np.array(True), "c")
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=outer_then, else_branch=inner_else)],
        "main",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[cond],
    )
    findings = scan_bytes(model_bytes(graph), tmp_path / "m.onnx")
    assert [f.rule for f in findings] == ["onnx.external-data-escape"]
    assert "'deep'" in findings[0].message


def test_sparse_initializer_and_attribute_tensor_lists(tmp_path: Path) -> None:
    values = tensor("vals", "/abs/values.bin")
    indices = numpy_helper.from_array(np.array([0, 1], dtype=np.int64), "idx")
    indices_ext = tensor("idx2", "../indices.bin")
    sparse = helper.make_sparse_tensor(values, indices, [8])
    graph = add_graph([tensor("w")])
    graph.sparse_initializer.append(sparse)
    node = helper.make_node("Custom", [], ["z"], domain="")
    attr = helper.make_attribute("ts", [indices_ext])
    node.attribute.append(attr)
    graph.node.insert(0, node)
    findings = scan_bytes(model_bytes(graph), tmp_path / "m.onnx")
    assert sorted(f.symbol or "" for f in findings) == ["../indices.bin", "/abs/values.bin"]
    assert {f.rule for f in findings} == {"onnx.external-data-escape"}


def test_location_checked_even_without_data_location(tmp_path: Path) -> None:
    t = tensor("w", "../../etc/passwd")
    t.ClearField("data_location")
    findings = scan_bytes(model_bytes(add_graph([t])), tmp_path / "m.onnx")
    assert [f.rule for f in findings] == ["onnx.external-data-escape"]


def test_functions_and_training_info_are_walked(tmp_path: Path) -> None:
    fn_node = helper.make_node("Constant", [], ["o"], value=tensor("fw", "../fn.bin"))
    function = helper.make_function(
        "my.local", "MyFn", [], ["o"], [fn_node], [helper.make_opsetid("", 17)]
    )
    training = onnx.TrainingInfoProto()
    training.initialization.CopyFrom(add_graph([tensor("tw", "/train.bin")]))
    model = onnx.ModelProto.FromString(
        model_bytes(add_graph([tensor("w")]), [("", 17), ("my.local", 1)], functions=[function])
    )
    model.training_info.append(training)
    findings = scan_bytes(model.SerializeToString(), tmp_path / "m.onnx")
    # model-local function domain is not a custom operator library
    assert sorted(f.symbol or "" for f in findings) == ["../fn.bin", "/train.bin"]
    # a node of that domain with no local function behind it is a custom operator
    model.functions[0].domain = "other.local"
    findings = scan_bytes(model.SerializeToString(), tmp_path / "m.onnx")
    assert sorted(f.symbol or "" for f in findings) == ["../fn.bin", "/train.bin", "my.local"]


# -- custom domains ----------------------------------------------------------------------------


def test_custom_domain_is_suspicious(tmp_path: Path) -> None:
    graph = add_graph([tensor("w")])
    graph.node.insert(0, helper.make_node("Evil", ["x"], ["q"], domain="com.evil.ops"))
    data = model_bytes(graph, [("", 17), ("com.evil.ops", 1), ("com.microsoft", 1)])
    findings = scan_bytes(data, tmp_path / "m.onnx")
    assert [f.rule for f in findings] == ["onnx.custom-domain"]
    assert findings[0].symbol == "com.evil.ops"
    assert findings[0].verdict is Verdict.SUSPICIOUS


def test_node_domain_missing_from_opset_import(tmp_path: Path) -> None:
    graph = add_graph([tensor("w")])
    graph.node.insert(0, helper.make_node("Evil", ["x"], ["q"], domain="org.native"))
    findings = scan_bytes(model_bytes(graph), tmp_path / "m.onnx")
    assert [(f.rule, f.symbol) for f in findings] == [("onnx.custom-domain", "org.native")]


# -- malformed ---------------------------------------------------------------------------------


def test_truncated_model_is_malformed_but_keeps_earlier_findings(tmp_path: Path) -> None:
    data = model_bytes(add_graph([tensor("w", "/etc/passwd")]))
    findings = scan_bytes(data[:-5], tmp_path / "m.onnx")
    assert any(f.rule == "onnx.bad-protobuf" for f in findings)
    assert any(f.rule == "onnx.external-data-escape" for f in findings)
    assert by_rule(findings)["onnx.bad-protobuf"][0].verdict is Verdict.MALFORMED


@pytest.mark.parametrize(
    "data",
    [
        b"\x0b",  # field 1, group start
        b"\x0c",  # group end
        b"\x0e",  # wire type 6
        b"\x00\x01",  # field number 0
        b"\x08" + b"\xff" * 10 + b"\x01",  # varint longer than 10 bytes
        b"\x08" + b"\xff" * 9 + b"\x7f",  # varint above 2**64
        b"\x3a\x05abc",  # graph length past the end
        b"\x08",  # truncated varint
        b"\x11\x00\x00",  # truncated fixed64
    ],
)
def test_bad_wire_format(data: bytes) -> None:
    findings = scan_bytes(data)
    assert [f.rule for f in findings] == ["onnx.bad-protobuf"]
    with pytest.raises(FormatError):
        walk(data)


def test_bad_sub_message_is_malformed() -> None:
    data = b"\x3a\x02\x0a\x05"  # graph: a node whose length runs past the graph
    assert list(iter_fields(data)) == [(7, LEN, b"\x0a\x05")]  # the top level is fine
    findings = scan_bytes(data)
    assert [f.rule for f in findings] == ["onnx.bad-protobuf"]
    assert findings[0].location.offset == 2


def test_deep_nesting_is_refused() -> None:
    # graph -> node -> attribute -> graph ... 200 levels deep
    inner = b""
    for _ in range(200):
        graph = b"\x0a" + _len(b"\x2a" + _len(b"\x32" + _len(inner)))
        inner = graph
    data = b"\x3a" + _len(inner)
    findings = scan_bytes(data)
    assert [f.rule for f in findings] == ["onnx.bad-protobuf"]
    assert "nested" in findings[0].message


def _len(payload: bytes) -> bytes:
    n, out = len(payload), bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + payload


def test_wrong_wire_type_for_a_message_field_is_skipped() -> None:
    assert scan_bytes(b"\x38\x05") == []  # graph (7) as a varint: protobuf ignores it


# -- the wire reader itself --------------------------------------------------------------------


def test_iter_fields_decodes_every_wire_type() -> None:
    data = b"\x08\x96\x01" + b"\x11" + (7).to_bytes(8, "little") + b"\x1a\x03abc"
    data += b"\x25" + (9).to_bytes(4, "little")
    assert list(iter_fields(data)) == [(1, VARINT, 150), (2, I64, 7), (3, LEN, b"abc"), (4, I32, 9)]


def test_reader_skips_unread_payloads_on_forward_only_streams() -> None:
    big = b"\x1a" + _len(b"z" * 300_000) + b"\x20\x07"
    reader = ProtoReader(fuzz_protobuf._ForwardOnly(big), len(big))  # type: ignore[arg-type]
    fields = [(f.number, f.value) for f in reader.fields()]
    assert fields == [(3, 300_000), (4, 7)]


def test_read_payload_cap() -> None:
    data = b"\x0a\x05hello"
    reader = ProtoReader(io.BytesIO(data), len(data))
    for f in reader.fields():
        with pytest.raises(FormatError):
            reader.read_payload(f, 4)


def test_large_embedded_initializer_is_streamed(tmp_path: Path) -> None:
    big = numpy_helper.from_array(np.zeros(4_000_000, dtype=np.float32), "big")
    data = model_bytes(add_graph([big, tensor("w", "../escape.bin")]))
    assert len(data) > 16_000_000
    findings = scan_bytes(data, tmp_path / "m.onnx")
    assert [f.rule for f in findings] == ["onnx.external-data-escape"]


# -- properties and fuzzing ---------------------------------------------------------------------


def _seeds() -> list[bytes]:
    graph = add_graph([tensor("w", "../x.bin"), tensor("v")])
    graph.node.insert(0, helper.make_node("E", ["x"], ["q"], domain="com.x"))
    return [model_bytes(add_graph([tensor("w")])), model_bytes(graph, [("com.x", 1)])]


SEEDS = _seeds()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    fuzz_protobuf.test_one_input(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_models(seed: bytes, data: st.DataObject) -> None:
    mutated = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(mutated) - 1))
        mutated[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    fuzz_protobuf.test_one_input(bytes(mutated))
    fuzz_protobuf.test_one_input(bytes(mutated[:cut]))


def test_fuzz_target_on_seeds() -> None:
    for seed in SEEDS:
        fuzz_protobuf.test_one_input(seed)
