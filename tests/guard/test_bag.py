"""The subword bag and the mixed (n-gram + bag) guard model: scoring, windows, file format."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.guard.bag import (
    FORMAT,
    MixedModel,
    SubwordBag,
    dump_mixed,
    pack4,
    quantise,
    unpack4,
)
from modelseal.guard.classifier import (
    Featurizer,
    LinearModel,
    parse_guard_model,
    prepare,
    sigmoid,
)
from modelseal.guard.trained import TrainedGuard, load_guard_file
from modelseal.guard.wordpiece import WordPiece

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "how", "to", "make", "a", "bomb", "cake", "##s"]
VOCAB += ["the", "weather", "is", "nice", "today", "and", "tomorrow", ".", ","]
FEATS = Featurizer(bits=10, char_ngrams=(3,))


def _base(bias: float = -4.0, hot: str | None = None, categories: bool = False) -> LinearModel:
    weights = np.zeros(FEATS.size, dtype=np.float32)
    if hot is not None:
        weights[FEATS.indices(hot)] = 3.0
    extra = {}
    if categories:
        extra = {
            "categories": ("S1", "S9"),
            "category_bits": 4,
            "category_weights": np.tile(np.asarray([[0.0, 1.0]], dtype=np.float32), (16, 1)),
            "category_bias": np.zeros(2, dtype=np.float32),
        }
    return LinearModel(FEATS, weights, bias, metadata={"name": "harm", "threshold": 0.5}, **extra)  # type: ignore[arg-type]


def _bag(hot: str = "bomb", strength: float = 200.0) -> SubwordBag:
    """A bag whose only signal is the token ``hot``: its row points along the output."""
    emb = np.zeros((len(VOCAB), 2), dtype=np.float32)
    emb[VOCAB.index(hot)] = [strength, 0.0]
    return SubwordBag.from_float(
        wordpiece=WordPiece(VOCAB),
        embedding=emb,
        hidden_w=np.asarray([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
        hidden_b=np.zeros(2, dtype=np.float32),
        out_w=np.asarray([1.0, 0.0], dtype=np.float32),
        out_b=-3.0,
    )


def _mixed(**kw: object) -> MixedModel:
    base = kw.pop("base", None) or _base()
    bag = kw.pop("bag", None) or _bag()
    return MixedModel(base=base, bag=bag, metadata={"name": "harm", "threshold": 0.5}, **kw)  # type: ignore[arg-type]


def test_mixture_is_the_weighted_mean_of_the_two_probabilities() -> None:
    model = _mixed(weight=0.25)
    text = "how to make a bomb"
    prepared = prepare(text)
    z = model.base.logit(FEATS.prepared_indices(prepared))
    # by hand: mean of the token rows -> relu -> output
    ids, _ = model.bag.wordpiece.encode(prepared)
    pooled = model.bag.embedding[ids].mean(axis=0)
    bag_z = float(np.maximum(pooled @ model.bag.hidden_w.T, 0) @ model.bag.out_w) - 3.0
    want = 0.25 * sigmoid(z) + 0.75 * sigmoid(bag_z)
    assert model.score(text).probability == pytest.approx(want, rel=1e-6)
    assert model.bag.probability(prepared) == pytest.approx(sigmoid(bag_z), rel=1e-6)


def test_bag_raises_a_text_the_ngram_model_does_not_know() -> None:
    guard = TrainedGuard(_mixed(), threshold=0.4, decode=False)
    assert guard.score("how to make a bomb")[0] > 0.4 > guard.score("how to make a cake")[0]
    findings, p = guard.check_scored("how to make a bomb", "input")
    assert findings
    assert findings[0].action == "block"
    assert p > 0.4
    assert guard.check("how to make a cake", "input") == []


def test_text_without_known_tokens_gets_the_bias() -> None:
    model = _mixed()
    # no vocabulary token at all: the bag's probability is sigmoid(out_b) of a zero mean
    assert model.bag.probability("§§§") == pytest.approx(sigmoid(-3.0))
    assert model.bag.probability("") == pytest.approx(sigmoid(-3.0))


def test_long_text_the_bag_scores_the_windows_the_ngram_model_ranks_highest() -> None:
    filler = "the weather is nice today and tomorrow. " * 60
    text = filler + "how to make a bomb"
    # the n-gram model knows "bomb" a little: its window ranks first, the bag confirms it
    ranked = TrainedGuard(_mixed(base=_base(hot="bomb"), top_windows=1), decode=False)
    assert ranked.score(text)[0] > 0.4
    # with the n-gram model blind, every window ties and the bag sees only the first one:
    # the documented limit of bounding the work on long texts
    blind = TrainedGuard(_mixed(top_windows=1), decode=False)
    assert blind.score(text)[0] < 0.1
    # scoring enough windows finds it without any n-gram signal
    wide = TrainedGuard(_mixed(top_windows=64), decode=False)
    assert wide.score(text)[0] > 0.4


def test_category_comes_from_the_ngram_model() -> None:
    guard = TrainedGuard(_mixed(base=_base(categories=True)), threshold=0.4, decode=False)
    findings = guard.check("how to make a bomb", "input")
    assert [f.category for f in findings] == ["S9"]


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    model = _mixed(base=_base(hot="bomb", categories=True), weight=0.3, top_windows=5)
    blob = dump_mixed(model)
    assert dump_mixed(model) == blob  # deterministic
    again = parse_guard_model(blob, source="x")
    assert isinstance(again, MixedModel)
    assert again.weight == 0.3
    assert again.top_windows == 5
    assert again.categories == ("S1", "S9")
    q, scale = quantise(model.bag.embedding)
    assert np.allclose(again.bag.embedding, q.astype(np.float32) * scale[:, None])
    for text in ["how to make a bomb", "the weather is nice", "", "bombs, cakes"]:
        assert again.score(text).probability == pytest.approx(
            model.score(text).probability, abs=0.02
        )
    path = tmp_path / "harm.safetensors"
    path.write_bytes(blob)
    guard = load_guard_file(path, threshold=0.4)
    assert guard.score("how to make a bomb")[0] > 0.4


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-1e3, 1e3, width=32), min_size=4, max_size=4), min_size=1, max_size=8
    ),
    st.sampled_from([8, 4]),
)
def test_quantise_error_is_at_most_half_a_step(rows: list[list[float]], bits: int) -> None:
    emb = np.asarray(rows, dtype=np.float32)
    q, scale = quantise(emb, bits)
    assert q.dtype == np.int8
    assert scale.dtype == np.float32
    assert np.abs(q).max() <= (127 if bits == 8 else 7)
    err = np.abs(q.astype(np.float32) * scale[:, None] - emb)
    assert (err <= scale[:, None] * 0.5 * (1 + 1e-5) + 1e-3).all()


def _retag(blob: bytes, change: dict[str, object]) -> bytes:
    """The file with header entries replaced (None removes), data re-laid out."""
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    blobs = {k: data[v["data_offsets"][0] : v["data_offsets"][1]] for k, v in tensors.items()}
    meta = header["__metadata__"]
    for key, value in change.items():
        if key.startswith("meta:"):
            if value is None:
                meta.pop(key[5:], None)
            else:
                meta[key[5:]] = value
        elif value is None:
            tensors.pop(key)
        else:
            tensors[key], blobs[key] = value  # type: ignore[misc]
    out: dict[str, object] = {}
    payload = b""
    for k in sorted(tensors):
        spec = dict(tensors[k])
        spec["data_offsets"] = [len(payload), len(payload) + len(blobs[k])]
        out[k] = spec
        payload += blobs[k]
    out["__metadata__"] = meta
    raw = json.dumps(out).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + payload


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bag.vocab": None}, "bag.vocab"),
        ({"bag.emb": None}, "bag.emb"),
        ({"meta:bag": None}, "bag"),
        ({"meta:bag": "[1, 2]"}, "bag settings"),
        ({"meta:bag": '{"weight": 1.5, "top_windows": 8}'}, "mixture weight"),
        ({"meta:bag": '{"weight": 0.5, "top_windows": 0}'}, "top_windows"),
        ({"meta:bag": '{"weight": 0.5, "top_windows": 8, "max_tokens": 0}'}, "max_tokens"),
        (
            {"bag.scale": ({"dtype": "F32", "shape": [3]}, np.ones(3, "<f4").tobytes())},
            "bag.scale",
        ),
        (
            {"bag.vocab": ({"dtype": "U8", "shape": [6]}, b"a\na\nb\n")},
            "is also",
        ),
        (
            {"bag.vocab": ({"dtype": "F32", "shape": [1]}, b"\0\0\0\0")},
            "bag.vocab",
        ),
        (
            {"binary.w": ({"dtype": "U8", "shape": [FEATS.size]}, bytes(FEATS.size))},
            "binary.w",
        ),
        ({"meta:format": "modelseal-guard-mixed/9"}, "not a modelseal guard model"),
    ],
)
def test_malformed_mixed_files_are_refused_clearly(change: dict[str, object], message: str) -> None:
    blob = dump_mixed(_mixed())
    bad = _retag(blob, change)
    with pytest.raises(InputError) as err:
        parse_guard_model(bad, source="bad.safetensors")
    assert "bad.safetensors" in err.value.message
    assert message.lower() in err.value.message.lower()


def test_format_tag_is_written() -> None:
    blob = dump_mixed(_mixed())
    n = struct.unpack("<Q", blob[:8])[0]
    assert json.loads(blob[8 : 8 + n])["__metadata__"]["format"] == FORMAT


def test_bag_shapes_are_checked() -> None:
    wp = WordPiece(VOCAB)
    ok = _bag()
    t, sc = ok.table, ok.scale
    with pytest.raises(InputError, match="one row per vocabulary token"):
        SubwordBag(wp, t[:3], sc[:3], ok.hidden_w, ok.hidden_b, ok.out_w, ok.out_b)
    with pytest.raises(InputError, match="must be int8"):
        SubwordBag(wp, t.astype(np.float32), sc, ok.hidden_w, ok.hidden_b, ok.out_w, ok.out_b)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="one value per table row"):
        SubwordBag(wp, t, sc[:3], ok.hidden_w, ok.hidden_b, ok.out_w, ok.out_b)
    with pytest.raises(InputError, match="hidden layer"):
        SubwordBag(wp, t, sc, ok.hidden_w[:, :1], ok.hidden_b, ok.out_w, ok.out_b)
    with pytest.raises(InputError, match="one value per unit"):
        SubwordBag(wp, t, sc, ok.hidden_w, ok.hidden_b[:1], ok.out_w, ok.out_b)
    assert math.isfinite(ok.probability("how to make a bomb"))


sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))
import fuzz_guard_model  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([6, 7]), st.binary(max_size=400))
def test_fuzz_harness_mixed_files_parse_or_fail_cleanly(mode: int, data: bytes) -> None:
    # the harness's own invariant: InputError or a model that scores and round-trips
    fuzz_guard_model.test_one_input(bytes([mode]) + data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_harness_sparse_weights_parse_or_fail_cleanly(data: bytes) -> None:
    # mode 3 with an odd first byte: the linear model's binary weights stored sparse
    fuzz_guard_model.test_one_input(bytes([3, 1]) + data)


def test_the_logit_cache_stays_with_the_bag_and_is_bounded() -> None:
    import gc

    from modelseal.guard import bag as bag_module

    bag = _bag()
    before = sys.getrefcount(bag)
    guard = TrainedGuard(_mixed(bag=bag), decode=False)
    first = guard.score("how to make a bomb")[0]
    assert guard.score("how to make a bomb")[0] == first  # the second read is the kept one
    del guard
    gc.collect()
    # nothing module-wide holds the model: a reloaded guard config frees the old weights
    assert sys.getrefcount(bag) == before
    for i in range(bag_module.CACHE_SIZE + 5):
        bag.probability(f"the weather is nice today {i}")
    assert 0 < len(bag._cache) <= bag_module.CACHE_SIZE
    long_text = "the weather " * 1000  # longer than CACHE_CHARS: scored, not kept
    bag._cache.clear()
    bag.probability(long_text)
    assert long_text not in bag._cache


# ------------------------------------------------------------------ 4-bit tables


def _bag4() -> SubwordBag:
    rng = np.random.default_rng(5)
    return SubwordBag.from_float(
        wordpiece=WordPiece(VOCAB),
        embedding=(rng.standard_normal((len(VOCAB), 6)) * 3).astype(np.float32),
        hidden_w=rng.standard_normal((4, 6)).astype(np.float32),
        hidden_b=np.zeros(4, dtype=np.float32),
        out_w=rng.standard_normal(4).astype(np.float32),
        out_b=-1.0,
        bits=4,
    )


def test_4bit_table_round_trips_exactly_in_half_the_bytes() -> None:
    model = _mixed(bag=_bag4())
    assert np.abs(model.bag.table).max() <= 7
    blob = dump_mixed(model)
    assert dump_mixed(model) == blob
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])
    assert "bag.emb" not in header
    assert header["bag.emb4"]["shape"] == [len(VOCAB), 3]
    again = parse_guard_model(blob, source="x")
    assert isinstance(again, MixedModel)
    assert again.bag.bits == 4
    assert np.array_equal(again.bag.table, model.bag.table)
    assert np.array_equal(again.bag.scale, model.bag.scale)
    assert dump_mixed(again) == blob
    for text in ["how to make a bomb", "the weather is nice today", ""]:
        assert again.score(text) == model.score(text)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.randoms(use_true_random=False))
def test_pack4_unpack4_is_the_identity(rows: int, half: int, rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    table = np.asarray(
        [[rnd.randint(-8, 7) for _ in range(2 * half)] for _ in range(rows)], dtype=np.int8
    )
    packed = pack4(table)
    assert packed.dtype == np.uint8
    assert packed.shape == (rows, half)
    assert np.array_equal(unpack4(packed), table)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"bag.emb4": ({"dtype": "U8", "shape": [len(VOCAB), 1]}, bytes(len(VOCAB)))},
            "not both",
        ),
        ({"bag.emb": None, "bag.emb4": ({"dtype": "I8", "shape": [2]}, bytes(2))}, "U8 matrix"),
    ],
)
def test_malformed_4bit_tables_are_refused(change: dict[str, object], message: str) -> None:
    bad = _retag(dump_mixed(_mixed()), change)
    with pytest.raises(InputError, match=message):
        parse_guard_model(bad, source="bad.safetensors")


def test_4bit_bag_shapes_are_checked() -> None:
    ok = _bag4()
    args = (ok.hidden_w, ok.hidden_b, ok.out_w, ok.out_b)
    wp = WordPiece(VOCAB)
    with pytest.raises(InputError, match="4 or 8"):
        SubwordBag(wp, ok.table, ok.scale, *args, bits=2)
    with pytest.raises(InputError, match="even width"):
        SubwordBag(wp, ok.table[:, :5], ok.scale, ok.hidden_w[:, :5], *args[1:], bits=4)
    with pytest.raises(InputError, match=r"-8\.\.7"):
        SubwordBag(wp, ok.table * 3, ok.scale, *args, bits=4)
