"""The pickle scanner on hand-assembled opcode streams: every technique and its benign twin."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.scan.model import Verdict
from modelseal.scan.pickle import scan_pickle_stream
from modelseal.scan.pickle_rules import classify_global


def scan(data: bytes) -> list:  # type: ignore[type-arg]
    return scan_pickle_stream(io.BytesIO(data), len(data))


def verdicts(data: bytes) -> set[Verdict]:
    return {f.verdict for f in scan(data)} or {Verdict.SAFE}


def symbols(data: bytes) -> set[str]:
    return {f.symbol for f in scan(data) if f.symbol}


def su(text: str) -> bytes:  # SHORT_BINUNICODE
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


P4 = b"\x80\x04"


def test_benign_pickles_of_all_protocols_are_safe() -> None:
    import collections

    value = {
        "weights": [1.5, 2, None, True],
        "od": collections.OrderedDict(a=1),
        "s": {1, 2},
        "fs": frozenset([3]),
        "b": bytearray(b"xy"),
        "c": complex(1, 2),
        "sl": slice(1, 2),
        "t": (1, "x", b"y"),
    }
    for proto in range(6):
        assert verdicts(pickle.dumps(value, protocol=proto)) == {Verdict.SAFE}, proto


@pytest.mark.parametrize(
    ("data", "symbol"),
    [
        (b"cos\nsystem\n(S'true'\ntR.", "os.system"),  # protocol 0 GLOBAL + REDUCE
        (b"(S'true'\nios\nsystem\n.", "os.system"),  # INST
        (
            b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
            "posix.system",
        ),
        # STACK_GLOBAL with operands stored in and fetched from the memo
        (
            P4 + su("os") + b"\x94" + su("system") + b"\x94h\x00h\x01\x93" + su("true") + b"\x85R.",
            "os.system",
        ),
        # STACK_GLOBAL operands pushed with protocol-0 STRING opcodes (GHSA-9gvj-pp9x-gcfr)
        (P4 + b"S'os'\nS'system'\n\x93" + su("true") + b"\x85R.", "os.system"),
        # dotted name under an innocuous module reaches os.system (GHSA-5j3x-jp52-966f)
        (
            P4 + su("pathlib") + su("os.system") + b"\x93" + su("true") + b"\x85R.",
            "pathlib.os.system",
        ),
        # OBJ whose result is discarded with POP (GHSA-mxhj-88fx-4pcv)
        (
            P4 + b"(" + su("subprocess") + su("Popen") + b"\x93" + su("true") + b"o0N.",
            "subprocess.Popen",
        ),
        # NEWOBJ_EX
        (
            P4 + su("subprocess") + su("Popen") + b"\x93" + su("true") + b"\x85}\x92.",
            "subprocess.Popen",
        ),
        (
            P4 + su("builtins") + su("__import__") + b"\x93" + su("os") + b"\x85R.",
            "builtins.__import__",
        ),
        (
            P4 + su("importlib") + su("import_module") + b"\x93" + su("os") + b"\x85R.",
            "importlib.import_module",
        ),
        (
            P4 + su("torch.serialization") + su("load") + b"\x93" + su("x") + b"\x85R.",
            "torch.serialization.load",
        ),
        (P4 + su("torch") + su("load") + b"\x93" + su("x") + b"\x85R.", "torch.load"),
        (P4 + su("marshal") + su("loads") + b"\x93" + su("x") + b"\x85R.", "marshal.loads"),
        (
            P4 + su("collections") + su("OrderedDict.__init__.__globals__") + b"\x93.",
            "collections.OrderedDict.__init__.__globals__",
        ),
        (P4 + su("modelseal.scan") + su("api") + b"\x93.", "modelseal.scan.api"),
    ],
)
def test_dangerous_imports_are_found(data: bytes, symbol: str) -> None:
    assert Verdict.DANGEROUS in verdicts(data)
    assert symbol in symbols(data)


def test_memo_confusion_resolves_what_get_really_fetches() -> None:
    # decoy strings memoised at 0/1, the real operands at 5/6 (picklescan issue #22)
    data = (
        P4
        + su("torch") + b"q\x00" + su("LongStorage") + b"q\x01" + b"00"
        + su("os") + b"q\x05" + su("system") + b"q\x06" + b"00"
        + b"h\x05h\x06\x93" + su("true") + b"\x85R."
    )  # fmt: skip
    assert "os.system" in symbols(data)


def test_non_string_stack_global_operand_fails_closed() -> None:
    data = P4 + su("os") + b"K\x05\x93."
    found = scan(data)
    assert any(f.rule == "pickle.unresolved-global" for f in found)
    assert Verdict.DANGEROUS in {f.verdict for f in found}


def test_payload_then_broken_stream_is_dangerous_and_malformed() -> None:
    data = b"cos\nsystem\n(S'true'\ntR" + b"\xff\xfe garbage, no STOP"
    assert verdicts(data) == {Verdict.DANGEROUS, Verdict.MALFORMED}
    truncated = P4 + su("os") + su("system") + b"\x93" + su("true") + b"\x85R"  # no STOP
    assert verdicts(truncated) == {Verdict.DANGEROUS, Verdict.MALFORMED}


def test_every_pickle_in_a_stream_is_checked() -> None:
    benign = pickle.dumps({"a": 1}, protocol=4)
    evil = b"cos\nsystem\n(S'true'\ntR."
    assert verdicts(benign + evil) == {Verdict.DANGEROUS}
    assert verdicts(benign + benign) == {Verdict.SAFE}
    assert verdicts(benign + b"trailing junk") >= {Verdict.MALFORMED}


def test_frame_straddling_an_opcode_is_dangerous() -> None:
    hidden = b"cbuiltins\nprint\n" + su("HIDDEN") + b"\x85R0"
    payload = b"B" + struct.pack("<I", len(hidden)) + hidden
    data = P4 + b"\x95" + struct.pack("<Q", 2) + payload + b"N."  # frame ends inside BINBYTES
    found = scan(data)
    assert any(f.rule == "pickle.frame-straddle" for f in found)
    assert Verdict.DANGEROUS in {f.verdict for f in found}
    twin = P4 + b"\x95" + struct.pack("<Q", len(payload) + 1) + payload + b"N."
    assert not any(f.rule == "pickle.frame-straddle" for f in scan(twin))


def test_real_framed_pickles_are_not_straddles() -> None:
    data = pickle.dumps([b"x" * 100_000, "y" * 70_000, list(range(10_000))], protocol=5)
    assert verdicts(data) == {Verdict.SAFE}


def test_extension_registry_and_build_on_global_are_suspicious() -> None:
    assert verdicts(P4 + b"\x82\x01.") == {Verdict.SUSPICIOUS}
    build = P4 + su("torch") + su("Tensor") + b"\x93}b."
    assert any(f.rule == "pickle.build-on-global" for f in scan(build))


def test_unknown_imports_are_suspicious_not_dangerous() -> None:
    data = P4 + su("sklearn.linear_model") + su("LogisticRegression") + b"\x93)\x81."
    assert verdicts(data) == {Verdict.SUSPICIOUS}


def test_missing_memo_key_after_payload() -> None:
    data = b"cos\nsystem\n(S'true'\ntRh\x03."
    assert verdicts(data) == {Verdict.DANGEROUS, Verdict.MALFORMED}


def test_unknown_protocol_and_misplaced_proto() -> None:
    assert Verdict.MALFORMED in verdicts(b"\x80\x09N.")
    assert any(f.rule == "pickle.misplaced-proto" for f in scan(b"\x80\x04N0\x80\x04N."))


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    [
        ("torch._utils", "_rebuild_tensor_v2", Verdict.SAFE),
        ("numpy._core.multiarray", "_reconstruct", Verdict.SAFE),
        ("__builtin__", "set", Verdict.SAFE),
        ("_codecs", "encode", Verdict.SAFE),
        ("numpy.dtypes", "Float32DType", Verdict.SAFE),
        ("nt", "system", Verdict.DANGEROUS),
        ("asyncio.unix_events", "_UnixSubprocessTransport._start", Verdict.DANGEROUS),
        ("shutil", "os.system", Verdict.DANGEROUS),
        ("webbrowser", "open", Verdict.DANGEROUS),
        ("numpy", "load", Verdict.DANGEROUS),
        ("sklearn.tree", "DecisionTreeClassifier", Verdict.SUSPICIOUS),
        ("__main__", "MyModel", Verdict.SUSPICIOUS),
    ],
)
def test_classification(module: str, name: str, expected: Verdict) -> None:
    assert classify_global(module, name)[0] is expected


def test_joblib_arrays_are_skipped_and_payloads_after_them_found(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    benign = tmp_path / "arrays.joblib"
    joblib.dump({"w": np.arange(100_000, dtype="float32"), "o": np.array([1, "a"], dtype=object),
                 "i": np.ones((3, 4), dtype="int16")}, benign)  # fmt: skip
    assert verdicts(benign.read_bytes()) == {Verdict.SAFE}

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, ("true",))

    evil = tmp_path / "evil.joblib"
    joblib.dump({"w": np.arange(50_000, dtype="float64"), "p": Payload()}, evil)
    assert Verdict.DANGEROUS in verdicts(evil.read_bytes())


def test_legacy_torch_layout_stops_at_the_storage_bytes() -> None:
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    parts = [magic, pickle.dumps(1001, protocol=2), pickle.dumps({"little_endian": True}, 2)]
    parts += [pickle.dumps({"w": 1}, protocol=2), pickle.dumps(["0"], protocol=2)]
    raw_storage = struct.pack("<q", 4) + b"\xff\xfe\x00\x01" * 4  # not pickle: never read
    assert verdicts(b"".join(parts) + raw_storage) == {Verdict.SAFE}
    assert verdicts(b"".join(parts[:3])) == {Verdict.MALFORMED}  # pickles missing


def test_large_payloads_are_skipped_in_bounded_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.pkl"
    length = 300 * 1024 * 1024
    with open(big, "wb") as handle:
        handle.write(P4 + b"\x8e" + struct.pack("<Q", length))  # BINBYTES8
        handle.seek(length, os.SEEK_CUR)  # a sparse 300 MB payload
        handle.write(b"0cos\nsystem\n(S'true'\ntR.")
    tracemalloc.start()
    with open(big, "rb") as handle:
        found = scan_pickle_stream(handle, big.stat().st_size)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "os.system" in {f.symbol for f in found}
    assert peak < 8 * 1024 * 1024


def test_picklescan_pickles(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "picklescan"
    if not root.is_dir():
        pytest.skip("../shared/testdata/picklescan is not present")
    safe = {"benign0_v0.pkl", "benign0_v3.pkl", "benign0_v4.pkl"}
    for path in sorted(root.glob("data*/*.p*")):
        if path.suffix not in (".pkl", ".pickle"):
            continue
        got = verdicts(path.read_bytes())
        if path.name in safe:
            assert got == {Verdict.SAFE}, path.name
        else:
            assert Verdict.DANGEROUS in got, path.name


# --- property tests ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    scan(data)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [pickle.dumps({"a": [1, 2.0, "x"], "b": (None, True)}, protocol=p) for p in range(6)]
    ),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    st.integers(0, 10_000),
)
def test_mutated_pickles_never_raise(base: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    scan(bytes(data[: max(1, cut % (len(data) + 1))]))


def test_opcode_table_matches_pickletools() -> None:
    import pickletools

    from modelseal.formats.pickle import OPCODES

    expected = {
        ord(op.code): (op.name, op.arg.name if op.arg is not None else None)
        for op in pickletools.opcodes
    }
    assert expected == OPCODES


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300)
    | st.binary(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4) | st.tuples(inner),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(values, st.integers(0, 5))
def test_reader_agrees_with_pickletools(value: object, protocol: int) -> None:
    import pickletools

    from modelseal.formats.pickle import PickleReader

    data = pickle.dumps(value, protocol=protocol)
    reader = PickleReader(io.BytesIO(data), len(data), materialize_limit=64)
    ours = []
    while not reader.at_end():
        op = reader.next_op()
        ours.append((op.name, op.pos))
    assert ours == [(op.name, pos) for op, _, pos in pickletools.genops(data)]
    assert verdicts(data) == {Verdict.SAFE}
