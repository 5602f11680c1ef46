"""The harm encoder's 4-bit file format (``scripts/guard_encoder.py``): 4-bit blocks on disk, int8
matrices in ONNX Runtime once it has loaded the graph.

The export itself needs the pretrained encoder (``make train-guards``); these tests build the
same chain of operators over small random matrices and check, value for value, what ONNX
Runtime computes from it, and that its default optimisation folds the chain away."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import guard_encoder as ge


def _matrix(seed: int, rows: int, cols: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.05, (rows, cols)).astype(np.float32)
    w[rng.random((rows, cols)) < 0.01] *= 20  # outliers, as trained matrices have
    return w


def test_blocks4_round_trips_within_half_a_step() -> None:
    w = _matrix(0, 24, 64)
    q, s = ge.blocks4(w, 16)
    assert q.dtype == np.int8
    assert q.shape == w.shape
    assert s.shape == (24, 4)
    assert s.dtype == np.float16
    assert q.min() >= -7
    assert q.max() <= 7
    back = ge.unblocks4(q, s)
    step = np.repeat(s.astype(np.float32), 16, axis=1)
    # half a step of rounding, plus what float16 scales lose
    assert np.all(np.abs(back - w) <= step * 0.5 + np.abs(w) * 2e-3 + 1e-7)
    # each block's largest value lands on +-7 steps
    assert np.all(np.abs(q.reshape(24, 4, 16)).max(-1) == 7)


def test_blocks4_of_an_all_zero_block_is_zero_not_nan() -> None:
    w = np.zeros((2, 32), np.float32)
    w[1, 16:] = 1.0
    q, s = ge.blocks4(w, 16)
    back = ge.unblocks4(q, s)
    assert np.all(np.isfinite(back))
    assert np.array_equal(back[0], np.zeros(32, np.float32))
    assert np.allclose(back[1, 16:], 1.0, rtol=1e-3)


def test_blocks4_refuses_a_width_the_blocks_do_not_divide() -> None:
    with pytest.raises(ValueError, match="blocks of 16"):
        ge.blocks4(np.ones((2, 40), np.float32), 16)


def _chain_model(w: np.ndarray, block: int, levels: int = 7) -> tuple[bytes, np.ndarray]:
    """A graph whose only output is the int8 matrix the chain makes from ``w`` (input x
    output), and the int8 matrix expected: the 4-bit (or 3-bit: ``levels`` 3) values rounded
    to 127 steps of each column's largest value."""
    q, s = ge.blocks4(w.T, block, levels)  # torch layout (output x input), along the input
    rounded = ge.unblocks4(q, s).T
    q, s = q.T, s.T
    col = (np.abs(rounded).max(0) / 127).astype(np.float32)
    col = np.where(col > 0, col, np.float32(1.0))
    expected = ge.int8_steps(q, s, col)
    # float32 arithmetic in the chain's order: the exact rounding but for ties
    exact = np.rint(rounded / col).astype(np.int16)
    assert np.abs(exact - expected).max() <= 1
    out = helper.make_tensor_value_info("m", TensorProto.INT8, list(w.shape))
    graph = helper.make_graph([], "chain", [], [out])
    graph.node.extend(ge._unpack_chain(graph, "m", q, s, col, levels))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model.SerializeToString(), expected


def _run(blob: bytes, optimise: bool) -> np.ndarray:
    opts = ort.SessionOptions()
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {})[0]
    return out


@pytest.mark.parametrize("block", [16, 32])
def test_the_chain_makes_the_int8_matrix_with_and_without_folding(block: int) -> None:
    blob, expected = _chain_model(_matrix(1, 64, 48), block)
    for optimise in (False, True):
        got = _run(blob, optimise)
        assert got.dtype == np.int8
        assert got.shape == (64, 48)
        assert np.array_equal(got, expected)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    blocks=st.integers(1, 4),
    cols=st.integers(1, 9),
    scale=st.sampled_from([1e-4, 0.05, 3.0]),
)
def test_the_chain_matches_numpy_for_any_matrix(
    seed: int, blocks: int, cols: int, scale: float
) -> None:
    w = _matrix(seed, 16 * blocks, cols) * scale
    blob, expected = _chain_model(w, 16)
    assert np.array_equal(_run(blob, False), expected)


def test_onnx_runtime_folds_the_chain_into_an_int8_constant(tmp_path: Path) -> None:
    """A MatMulInteger fed by the chain: after loading, the optimised graph holds the int8
    matrix as a constant and none of the chain's operators, so runs multiply int8 values."""
    w = _matrix(2, 32, 8)
    blob, expected = _chain_model(w, 16)
    model = onnx.load_from_string(blob)
    graph = model.graph
    graph.input.append(helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 32]))
    graph.initializer.append(numpy_helper.from_array(np.array(0, np.uint8), "xz"))
    graph.initializer.append(numpy_helper.from_array(np.zeros(8, np.int8), "wz"))
    graph.node.append(helper.make_node("MatMulInteger", ["x", "m", "xz", "wz"], ["y"]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("y", TensorProto.INT32, [1, 8]))
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    session = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    x = np.arange(32, dtype=np.uint8).reshape(1, 32)
    y = session.run(None, {"x": x})[0]
    assert np.array_equal(y, x.astype(np.int32) @ expected.astype(np.int32))
    folded = onnx.load(str(tmp_path / "opt.onnx"))
    ops = {n.op_type for n in folded.graph.node}
    assert ops == {"MatMulInteger"}, ops
    consts = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    assert any(
        a.dtype == np.int8 and a.shape == (32, 8) and np.array_equal(a, expected)
        for a in consts.values()
    )


# ------------------------------------------------------------------ 3-bit steps as bit planes


def _unplanes(planes: np.ndarray, levels: int, size: int) -> np.ndarray:
    """numpy's reading of :func:`ge.planes`: each plane's bits, weighed by the bit's value."""
    bits = np.unpackbits(planes[..., 0], axis=1, bitorder="little")[:, :size].astype(np.int16)
    code = (bits * (1 << np.arange(len(planes)))[:, None]).sum(0)
    return (code - levels).astype(np.int8)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.sampled_from([1, 2, 3, 7]),
    data=st.data(),
)
def test_planes_hold_every_step_in_as_many_bits_as_its_levels_need(
    levels: int, data: st.DataObject
) -> None:
    n = 8 * data.draw(st.integers(1, 12))
    q = np.asarray(data.draw(st.lists(st.integers(-levels, levels), min_size=n, max_size=n)))
    planes = ge.planes(q.astype(np.int8), levels)
    bits = ge.plane_bits(levels)
    assert planes.dtype == np.uint8
    assert planes.shape == (bits, n // 8, 1)
    assert np.array_equal(_unplanes(planes, levels, n), q)


def test_plane_bits_and_planes_refuse_what_they_cannot_hold() -> None:
    assert [ge.plane_bits(v) for v in (1, 2, 3, 7)] == [2, 3, 3, 4]
    with pytest.raises(ValueError, match="levels must be 1-7"):
        ge.plane_bits(0)
    with pytest.raises(ValueError, match="whole bytes"):
        ge.planes(np.zeros(12, np.int8), 3)
    with pytest.raises(ValueError, match=r"exceed -3\.\.3"):
        ge.planes(np.full(8, 4, np.int8), 3)


@pytest.mark.parametrize("levels", [1, 3])
def test_the_plane_chain_makes_the_int8_matrix_with_and_without_folding(levels: int) -> None:
    blob, expected = _chain_model(_matrix(3, 64, 48), 16, levels)
    model = onnx.load_from_string(blob)
    assert not [t for t in model.graph.initializer if t.data_type == TensorProto.INT4]
    stored = sum(len(t.raw_data) for t in model.graph.initializer if "planes" in t.name)
    assert stored == 64 * 48 * ge.plane_bits(levels) // 8  # 3 (or 2) bits a weight
    for optimise in (False, True):
        got = _run(blob, optimise)
        assert got.dtype == np.int8
        assert np.array_equal(got, expected)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), cols=st.integers(1, 9), scale=st.sampled_from([1e-4, 3.0]))
def test_the_plane_chain_matches_numpy_for_any_matrix(seed: int, cols: int, scale: float) -> None:
    blob, expected = _chain_model(_matrix(seed, 32, cols * 8) * scale, 16, 3)
    assert np.array_equal(_run(blob, False), expected)


def test_3_bit_embedding_rows_read_back_as_steps_times_scales(tmp_path: Path) -> None:
    """The embedding's replacement for ``GatherBlockQuantized``: 3-bit rows in bit planes made an
    int8 table at load; each run gathers rows and scales and multiplies them."""
    rng = np.random.default_rng(4)
    table = rng.normal(0, 0.05, (40, 64)).astype(np.float32)
    q, s = ge.blocks4(table, 32, 3)
    expected = ge.unblocks4(q, s)
    graph = helper.make_graph(
        [],
        "embedding",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, None])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [1, None, 64])],
    )
    stand_in = helper.make_node("GatherBlockQuantized", ["data", "ids", "scales"], ["rows"])
    chains: list[object] = []
    drop: set[str] = set()
    runtime = ge._plane_embedding(graph, stand_in, chains, drop, q, s, 3)
    assert drop == {"data", "scales"}
    graph.node.extend([*chains, *runtime])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    ids = np.array([[0, 39, 7, 7, 12]], np.int64)
    for optimise in (False, True):
        opts = ort.SessionOptions()
        if not optimise:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        else:
            opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
        session = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        got = session.run(None, {"ids": ids})[0]
        assert got.shape == (1, 5, 64)
        assert np.allclose(got[0], expected[ids[0]], rtol=1e-6, atol=1e-8)
    # folded: the planes are gone, an int8 table is left for the runs' Gather
    folded = onnx.load(str(tmp_path / "opt.onnx"))
    left = {n.op_type for n in folded.graph.node}
    assert not left & {"BitShift", "BitwiseAnd", "ReduceSum"}, left
    int8 = [numpy_helper.to_array(t) for t in folded.graph.initializer]
    assert any(a.dtype == np.int8 and a.shape == (40, 64) for a in int8)
