"""The harm guard's second stage: settings, the ONNX encoder, the English gate, the refinement of
a mixed model's windows and the stage's file next to the model.

The encoders here are real ONNX graphs built in the test: ``input_ids`` -> Gather from a score
per vocabulary id -> mean over the tokens -> ``logit``. Their logit is the mean of the scores of
``[CLS]``, the text's word pieces and ``[SEP]``, so every expected value is known exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from modelseal.errors import InputError
from modelseal.guard import bag as bag_module
from modelseal.guard import encoder as encoder_module
from modelseal.guard.bag import MixedModel, dump_mixed
from modelseal.guard.classifier import parse_guard_model, prepare, sigmoid
from modelseal.guard.encoder import (
    EncoderModel,
    EncoderSettings,
    english_share,
    settings_of,
)
from modelseal.guard.trained import TrainedGuard, load_guard_file
from modelseal.guard.wordpiece import WordPiece
from tests.guard.test_bag import VOCAB, _mixed, _retag

WP = WordPiece(VOCAB)


@pytest.fixture(autouse=True)
def _fresh_sessions() -> Iterator[None]:
    """Each test loads its own encoder sessions (the module shares them between loads)."""
    bag_module._ENCODERS.clear()
    yield
    bag_module._ENCODERS.clear()


# one score per vocabulary id (the others are 0): the encoder's logit is their mean
_SCORE = {"[UNK]": 0.25, "[CLS]": 1.0, "[SEP]": -1.0, "make": 0.5, "bomb": 4.0, "cake": -2.0}
_SCORE |= {"##s": 3.0}
SCORES = np.asarray([_SCORE.get(t, 0.0) for t in VOCAB], dtype=np.float32)
SHA_ZERO = "0" * 64


def graph(
    scores: np.ndarray = SCORES,
    *,
    input_name: str = "input_ids",
    input_type: int = TensorProto.INT64,
    input_shape: list[Any] | None = None,
    output_name: str = "logit",
    extra: list[onnx.NodeProto] | None = None,
    extra_inits: list[onnx.TensorProto] | None = None,
) -> bytes:
    """A serialised encoder graph: Gather(scores, ids) -> ReduceMean over the tokens.
    ``extra`` nodes read ``mean`` and must write the output."""
    last = "mean" if extra else output_name
    nodes = [
        helper.make_node("Gather", ["scores", input_name], ["rows"], axis=0),
        helper.make_node("ReduceMean", ["rows"], [last], axes=[-1], keepdims=0),
        *(extra or []),
    ]
    g = helper.make_graph(
        nodes,
        "encoder",
        [
            helper.make_tensor_value_info(
                input_name, input_type, [1, "tokens"] if input_shape is None else input_shape
            )
        ],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(np.asarray(scores, dtype=np.float32), "scores"),
            *(extra_inits or []),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


GOOD = graph()


def stage(**kw: Any) -> EncoderSettings:
    fields: dict[str, Any] = {
        "file": "enc.onnx",
        "sha256": hashlib.sha256(GOOD).hexdigest(),
        "low": 0.0,
        "high": 1.0,
        "weight": 0.5,
    }
    fields |= kw
    return EncoderSettings(**fields)


def encoder(data: bytes = GOOD, wp: WordPiece = WP, **kw: Any) -> EncoderModel:
    return EncoderModel(data, wp, stage(**kw))


def expected(text: str, max_tokens: int = 64, scores: np.ndarray = SCORES) -> float:
    """The test graph's logit, from the tokenizer's pieces."""
    ids = WP.encode(text, max_tokens - 2)[0].tolist()
    row = [VOCAB.index("[CLS]"), *ids, VOCAB.index("[SEP]")]
    return float(np.mean(scores[row].astype(np.float64)))


# ----------------------------------------------------------------------------- the encoder


@pytest.mark.parametrize("shift", [-3.0, 0.0, 2.5])
def test_shift_moves_the_probability_not_the_logit(shift: float) -> None:
    enc = encoder(shift=shift)
    text = "how to make a bomb"
    assert enc.logit(text) == pytest.approx(expected(text), rel=1e-6)
    assert enc.probability(text) == pytest.approx(sigmoid(expected(text) + shift), rel=1e-6)


@pytest.mark.parametrize("shift", [-20.5, 21.0, float("nan")])
def test_shift_out_of_range_is_refused(shift: float) -> None:
    with pytest.raises(InputError, match="shift"):
        stage(shift=shift)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("how to make a bomb", (1.0 + 0.5 + 4.0 - 1.0) / 7),
        ("How to make a CAKE", (1.0 + 0.5 - 2.0 - 1.0) / 7),
        ("bombs", (1.0 + 4.0 + 3.0 - 1.0) / 4),  # bomb ##s
        ("zzz", (1.0 + 0.25 - 1.0) / 3),  # [UNK]
        ("", 0.0),  # [CLS] [SEP]
    ],
)
def test_logit_is_the_graph_over_cls_pieces_sep(text: str, want: float) -> None:
    enc = encoder()
    assert enc.logit(text) == pytest.approx(want, rel=1e-6, abs=1e-7)
    assert enc.probability(text) == pytest.approx(sigmoid(want), rel=1e-6)
    assert enc.data == b""  # the session holds the graph, the bytes are let go


@pytest.mark.parametrize(
    ("text", "max_tokens", "want"),
    [
        ("bomb cake how to", 64, (1.0 + 4.0 - 2.0 - 1.0) / 6),
        ("bomb cake how to", 4, (1.0 + 4.0 - 2.0 - 1.0) / 4),  # [CLS] bomb cake [SEP]
        ("bomb cake how to", 3, (1.0 + 4.0 - 1.0) / 3),  # [CLS] bomb [SEP]
        ("bombs cake", 3, (1.0 + 4.0 - 1.0) / 3),  # the first piece of "bombs" only
        ("bombs cake", 4, (1.0 + 4.0 + 3.0 - 1.0) / 4),
    ],
)
def test_only_the_first_max_tokens_minus_two_pieces_count(
    text: str, max_tokens: int, want: float
) -> None:
    assert encoder(max_tokens=max_tokens).logit(text) == pytest.approx(want, rel=1e-6)


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=80), st.integers(3, 12))
def test_logit_matches_the_tokenizer_for_any_text(text: str, max_tokens: int) -> None:
    z = encoder(max_tokens=max_tokens).logit(text)
    assert math.isfinite(z)
    assert z == pytest.approx(expected(text, max_tokens), rel=1e-5, abs=1e-6)


def test_the_logit_cache_answers_again_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = encoder()
    first = enc.logit("how to make a bomb")

    class Broken:
        def run(self, *_: object) -> object:
            raise AssertionError("the graph ran again")

    enc._session = Broken()
    assert enc.logit("how to make a bomb") == first  # from the cache, the graph not run
    with pytest.raises(AssertionError, match="ran again"):
        enc.logit("how to make a cake")  # a new text does run it

    monkeypatch.setattr(encoder_module, "CACHE_SIZE", 3)
    enc = encoder()
    texts = [f"how to make {i} cakes" for i in range(10)]
    for text in texts:
        enc.logit(text)
        assert 0 < len(enc._cache) <= 3
    assert enc.logit(texts[-1]) == pytest.approx(expected(texts[-1]), rel=1e-6)
    long_text = "the weather " * 400  # longer than CACHE_CHARS: scored, not kept
    assert len(long_text) > encoder_module.CACHE_CHARS
    enc.logit(long_text)
    assert long_text not in enc._cache


def _slice_to_empty() -> bytes:
    consts = [
        numpy_helper.from_array(np.asarray([0], dtype=np.int64), name) for name in ("s", "e", "a")
    ]
    return graph(
        extra=[helper.make_node("Slice", ["mean", "s", "e", "a"], ["logit"])], extra_inits=consts
    )


def _not_utf8(data: bytes, name: bytes) -> bytes:
    """``data`` with every ``name`` (a string of the graph) ending in a byte that is not UTF-8."""
    assert name in data
    return data.replace(name, name[:-1] + b"\xff")


BAD_GRAPHS: list[tuple[str, Callable[[], bytes], str]] = [
    ("garbage", lambda: b"this is not an onnx model \x00\xff" * 4, "not a loadable ONNX encoder"),
    ("empty", lambda: b"", "not a loadable ONNX encoder"),
    ("truncated", lambda: GOOD[: len(GOOD) // 2], "not a loadable ONNX encoder"),
    ("input name", lambda: graph(input_name="ids"), "'input_ids' (int64"),
    ("int32 input", lambda: graph(input_type=TensorProto.INT32), "'input_ids' (int64"),
    ("1-d input", lambda: graph(input_shape=["tokens"]), "'input_ids' (int64"),
    ("output name", lambda: graph(output_name="score"), "give 'logit'"),
    # names that are not UTF-8 (protobuf lets them through, ONNX Runtime's Python side cannot
    # decode them): a clean refusal, and no "EP Error" print from the provider fallback
    (
        "dimension not utf-8",
        lambda: _not_utf8(graph(input_shape=[1, "tokenz"]), b"tokenz"),
        "(int64",
    ),
    ("input not utf-8", lambda: _not_utf8(GOOD, b"input_ids"), "'input_ids' (int64"),
    ("output not utf-8", lambda: _not_utf8(GOOD, b"logit"), "give 'logit'"),
    ("operator not utf-8", lambda: _not_utf8(GOOD, b"Gather"), "not a loadable ONNX encoder"),
    ("attribute not utf-8", lambda: _not_utf8(GOOD, b"keepdims"), "not a loadable ONNX encoder"),
]


@pytest.mark.parametrize(
    ("data", "message"), [(b[1], b[2]) for b in BAD_GRAPHS], ids=[b[0] for b in BAD_GRAPHS]
)
def test_a_file_that_is_not_such_an_encoder_is_refused_clearly(
    data: Callable[[], bytes], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError) as err:
        EncoderModel(data(), WP, stage(), source="models/enc.onnx")
    assert err.value.message.startswith("models/enc.onnx: ")
    assert message in err.value.message
    assert len(err.value.message) <= 300
    out, errs = capfd.readouterr()
    assert out == errs == ""  # the library never prints (ONNX Runtime's log included)


def test_a_vocabulary_without_cls_is_refused() -> None:
    with pytest.raises(InputError, match=re.escape("lacks [CLS] or [SEP]")):
        EncoderModel(GOOD, WordPiece(["[UNK]", "[SEP]", "how"]), stage())
    with pytest.raises(InputError, match=re.escape("lacks [CLS] or [SEP]")):
        EncoderModel(GOOD, WordPiece(["[UNK]", "[CLS]", "how"]), stage())


def test_a_graph_that_loads_but_fails_on_a_text_raises_input_error(
    capfd: pytest.CaptureFixture[str],
) -> None:
    nan = SCORES.copy()
    nan[VOCAB.index("bomb")] = np.nan
    enc = encoder(graph(nan))
    assert enc.logit("how to make a cake") == pytest.approx(expected("how to make a cake"))
    with pytest.raises(InputError, match="non-finite logit"):
        enc.logit("how to make a bomb")
    assert "how to make a bomb" not in enc._cache
    inf = SCORES.copy()
    inf[VOCAB.index("cake")] = np.inf
    with pytest.raises(InputError, match="non-finite logit"):
        encoder(graph(inf)).logit("cake")
    # fewer scores than vocabulary ids: the Gather fails for the later ids
    short = encoder(graph(SCORES[:6]))
    assert short.logit("how to") == pytest.approx((1.0 + 0.0 + 0.0 - 1.0) / 4)
    with pytest.raises(InputError, match="the encoder failed"):
        short.logit("how to make a bomb")
    # an output without any value, or with more than one
    with pytest.raises(InputError, match="gave 0 values, not one logit"):
        encoder(_slice_to_empty()).logit("how to")
    twice = graph(extra=[helper.make_node("Concat", ["mean", "mean"], ["logit"], axis=0)])
    with pytest.raises(InputError, match="gave 2 values, not one logit"):
        encoder(twice).logit("how to")
    out, errs = capfd.readouterr()
    assert out == errs == ""


# ----------------------------------------------------------------------------- settings

VALID: dict[str, Any] = {
    "file": "guard-encoder.int8.onnx",
    "sha256": "0123456789abcdef" * 4,
    "low": 0.1,
    "high": 0.9,
    "weight": 0.6,
    "max_tokens": 128,
    "min_english": 0.5,
    "shift": 1.5,
}


DROP = object()  # a key left out


def test_settings_round_trip_through_json() -> None:
    s = EncoderSettings.from_json(json.dumps(VALID))
    assert s == EncoderSettings(**VALID)
    assert EncoderSettings.from_json(s.to_json()) == s
    assert json.loads(s.to_json()) == VALID
    assert list(json.loads(s.to_json())) == sorted(VALID)  # sorted keys: deterministic files
    short = {k: VALID[k] for k in ("file", "sha256", "low", "high", "weight")}
    defaults = EncoderSettings.from_json(json.dumps(short))
    assert (defaults.max_tokens, defaults.min_english, defaults.shift) == (64, 0.75, 0.0)
    # the band may be empty (the stage never runs) and its ends may be the extremes
    assert EncoderSettings.from_json(json.dumps(VALID | {"low": 0.5, "high": 0.5})).low == 0.5
    edge = VALID | {"low": 0, "high": 1, "weight": 1, "max_tokens": 512, "min_english": 0}
    assert EncoderSettings.from_json(json.dumps(edge)).high == 1.0
    assert EncoderSettings.from_json(json.dumps(VALID | {"max_tokens": 3})).max_tokens == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"file": "models/enc.onnx"}, "plain file name"),
        ({"file": "../enc.onnx"}, "plain file name"),
        ({"file": "enc..onnx"}, "plain file name"),
        ({"file": ".enc.onnx"}, "plain file name"),
        ({"file": ""}, "plain file name"),
        ({"file": "enc onnx"}, "plain file name"),
        ({"file": "a" * 129}, "plain file name"),
        ({"sha256": "0123456789ABCDEF" * 4}, "64 lower-case hex"),
        ({"sha256": "0" * 63}, "64 lower-case hex"),
        ({"sha256": "g" * 64}, "64 lower-case hex"),
        ({"low": 0.6, "high": 0.5}, "band"),
        ({"low": -0.1}, "band"),
        ({"high": 1.5}, "band"),
        ({"weight": 1.01}, "weight"),
        ({"weight": -0.5}, "weight"),
        ({"max_tokens": 2}, "max_tokens must be 3-512"),
        ({"max_tokens": 513}, "max_tokens must be 3-512"),
        ({"min_english": -0.1}, "min_english"),
        ({"min_english": 1.1}, "min_english"),
        ({"extra": 1}, "unknown encoder settings: extra"),
        ({"sha256": DROP}, "lack 'sha256'"),
        ({"low": DROP}, "lack 'low'"),
        ({"low": None}, "numbers and strings"),
        ({"low": "abc"}, "numbers and strings"),
        ({"weight": [0.5]}, "numbers and strings"),
        ({"max_tokens": "many"}, "numbers and strings"),
        ({"max_tokens": float("inf")}, "numbers and strings"),
        ({"low": float("nan")}, "band"),
        ({"weight": float("nan")}, "weight"),
    ],
)
def test_each_bad_setting_is_refused_clearly(change: dict[str, Any], message: str) -> None:
    fields = {k: v for k, v in (VALID | change).items() if v is not DROP}
    text = json.dumps(fields)
    with pytest.raises(InputError, match=re.escape(message)):
        EncoderSettings.from_json(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a JSON object"),
        ("null", "must be a JSON object"),
        ('"file"', "must be a JSON object"),
        ("", "not JSON"),
        ("{", "not JSON"),
        ("{'file': 'a'}", "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ],
)
def test_settings_that_are_not_a_json_object_are_refused(text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        EncoderSettings.from_json(text)


def test_settings_of_reads_the_encoder_entry() -> None:
    assert settings_of({}) is None
    assert settings_of({"bag": "{}"}) is None
    assert settings_of({"encoder": json.dumps(VALID)}) == EncoderSettings(**VALID)
    with pytest.raises(InputError, match="JSON string"):
        settings_of({"encoder": VALID})
    with pytest.raises(InputError, match="weight"):
        settings_of({"encoder": json.dumps(VALID | {"weight": 2})})


def _holds(s: EncoderSettings) -> None:
    """The invariants of settings that exist."""
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", s.file)
    assert ".." not in s.file
    assert "/" not in s.file
    assert re.fullmatch(r"[0-9a-f]{64}", s.sha256)
    assert 0.0 <= s.low <= s.high <= 1.0
    assert 0.0 <= s.weight <= 1.0
    assert 3 <= s.max_tokens <= 512
    assert 0.0 <= s.min_english <= 1.0
    assert -20.0 <= s.shift <= 20.0
    assert EncoderSettings.from_json(s.to_json()) == s


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = st.sampled_from([*VALID, "extra", ""])
# values that are often valid for some key, so that many dicts get past the parser
_NEAR = (
    st.sampled_from([*VALID.values(), "a..b", "x/y", 0, 1, 3, 512, 513, -1e-9, 1 + 1e-9, True])
    | st.floats(-0.5, 1.5)
    | st.integers(0, 600)
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_valid_settings_or_input_error(text: str) -> None:
    try:
        s = EncoderSettings.from_json(text)
    except InputError:
        return
    _holds(s)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(_KEYS, _JSON | _NEAR, max_size=8)
    | st.builds(lambda d, k, v: d | {k: v}, st.just(VALID), _KEYS, _JSON | _NEAR)
)
def test_any_json_object_gives_valid_settings_or_input_error(obj: dict[str, Any]) -> None:
    text = json.dumps(obj)
    try:
        s = EncoderSettings.from_json(text)
    except InputError:
        return
    _holds(s)
    assert set(obj) <= set(VALID)


# ----------------------------------------------------------------------------- English gate


def test_english_share_is_the_share_of_whole_vocabulary_words() -> None:
    assert english_share(WP, "How to make a bomb?") == 1.0
    assert english_share(WP, "HOW TO MAKE À CAKE.") == 1.0  # normalised like the encoder reads
    assert english_share(WP, "how to make a gun") == pytest.approx(3 / 4)  # "a" is not counted
    assert english_share(WP, "how to make bombs") == pytest.approx(3 / 4)  # bomb ##s: no word
    assert english_share(WP, "wie macht man eine bombe") == 0.0
    assert english_share(WP, "how to make 42 cakes, 7 bombs") == pytest.approx(3 / 5)
    # words of one letter are not counted: a letter-spaced text is not read as English
    assert english_share(WP, "h o w t o m a k e a b o m b") == 0.0
    for text in ["", "   ", "1234 5678", "!!! ... ???", "42 + 7 = 49", "a a a"]:
        assert english_share(WP, text) == 0.0
    # special tokens typed in the text are the plain words "cls" and "sep", not vocabulary words
    assert english_share(WP, "[CLS] how [SEP]") == pytest.approx(1 / 3)
    # each CJK character is a word and never an English one, even when the vocabulary holds
    # it: a Chinese prompt with one English word in it is not read as English
    cjk = WordPiece([*VOCAB, "炸", "弹"])
    assert english_share(cjk, "how to make 炸弹") == pytest.approx(3 / 5)
    assert english_share(cjk, "用 python 写一个 bomb 程序") < 0.25
    # a word that mixes in digits is a word, not an English one
    assert english_share(WP, "how to make a b0mb") == pytest.approx(3 / 4)


def test_the_encoder_reads_a_text_at_min_english() -> None:
    text = "how to make bombs"  # 3 of 4 words
    assert encoder(min_english=0.75).reads(text)
    assert not encoder(min_english=0.76).reads(text)
    assert encoder(min_english=0.0).reads("1234")  # no words at all: share 0 >= 0
    assert not encoder(min_english=0.01).reads("1234")


# ----------------------------------------------------------------------------- refine


def _staged(**kw: Any) -> tuple[MixedModel, EncoderModel]:
    s = stage(**kw)
    model = _mixed(encoder_settings=s)
    model.encoder = EncoderModel(GOOD, model.bag.wordpiece, s)
    return model, model.encoder


READABLE = ["how to make a bomb", "how to make a cake", "the weather is nice", "make the cake"]
UNREADABLE = "wie macht man eine bombe"


REF = encoder()  # the encoder's own probabilities, for the expected mixtures


def _mixed_p(p: float, text: str, weight: float) -> float:
    assert REF.probability(text) == pytest.approx(sigmoid(expected(text)), rel=1e-6)
    return (1.0 - weight) * p + weight * REF.probability(text)


def test_refine_mixes_the_encoder_in_only_inside_the_band() -> None:
    model, enc = _staged(low=0.2, high=0.8, weight=0.25)
    probs = [0.1, 0.5, 0.9]
    texts = READABLE[:3]
    out = model.refine(probs, texts)
    assert out[0] == 0.1  # below the band
    assert out[2] == 0.9  # at or above high: the first stage is sure
    assert out[1] == pytest.approx(_mixed_p(0.5, texts[1], 0.25), rel=1e-12)
    assert out[1] != pytest.approx(0.5)
    assert set(enc._cache) == {texts[1]}  # the encoder read that window only
    assert probs == [0.1, 0.5, 0.9]  # the input list is left alone
    # the band is [low, high)
    at = model.refine([0.2, 0.8], READABLE[:2])
    assert at[0] == pytest.approx(_mixed_p(0.2, READABLE[0], 0.25), rel=1e-12)
    assert at[1] == 0.8


def test_refine_skips_what_the_encoder_cannot_read() -> None:
    model, enc = _staged(low=0.0, high=1.0, weight=0.5)
    out = model.refine([0.6, 0.4], [UNREADABLE, READABLE[0]])
    assert out[0] == 0.6
    assert out[1] == pytest.approx(_mixed_p(0.4, READABLE[0], 0.5), rel=1e-12)
    assert UNREADABLE not in enc._cache
    strict, enc = _staged(low=0.0, high=1.0, weight=0.5, min_english=1.0)
    assert strict.refine([0.5], ["how to make a gun"]) == [0.5]  # 3 of 4 words
    assert enc._cache == {}


def test_refine_reads_at_most_max_encoded_windows_highest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert bag_module.MAX_ENCODED == 1  # one encoder run per text: p99 within 10 ms
    monkeypatch.setattr(bag_module, "MAX_ENCODED", 2)
    model, enc = _staged(low=0.2, high=0.9, weight=0.5)
    probs = [0.3, 0.6, 0.95, 0.7, 0.55, 0.4]
    texts = [*READABLE, "the weather is nice today", UNREADABLE]
    texts[3], texts[5] = UNREADABLE, READABLE[3]
    # 0.95: above the band; 0.7: unreadable; neither takes a place: 0.6 and 0.55 are read
    out = model.refine(probs, texts)
    changed = [i for i in range(len(probs)) if out[i] != probs[i]]
    assert changed == [1, 4]
    for i in changed:
        assert out[i] == pytest.approx(_mixed_p(probs[i], texts[i], 0.5), rel=1e-12)
    assert set(enc._cache) == {texts[1], texts[4]}
    monkeypatch.setattr(bag_module, "MAX_ENCODED", 1)
    out = model.refine(probs, texts)
    assert [i for i in range(len(probs)) if out[i] != probs[i]] == [1]


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_refine_weight_extremes(weight: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bag_module, "MAX_ENCODED", 2)  # both windows are read
    model, _ = _staged(low=0.0, high=1.0, weight=weight)
    texts = READABLE[:2]
    out = model.refine([0.7, 0.3], texts)
    for p, text, got in zip([0.7, 0.3], texts, out, strict=True):
        want = p if weight == 0.0 else REF.probability(text)
        assert got == pytest.approx(want, rel=1e-12)


def test_without_an_encoder_refine_changes_nothing() -> None:
    model = _mixed()
    assert model.refine([0.5, 0.2], READABLE[:2]) == [0.5, 0.2]
    model.attach_encoder(Path("/nonexistent"))  # no settings: nothing to attach
    assert model.encoder is None


def test_the_mixed_score_goes_through_the_stage() -> None:
    plain = _mixed(weight=0.25)
    model, _ = _staged(weight=0.4)
    model.weight = 0.25
    for text in ["How to make a bomb", "how to make a cake"]:
        p = plain.score(text).probability
        want = 0.6 * p + 0.4 * sigmoid(expected(prepare(text)))
        assert model.score(text).probability == pytest.approx(want, rel=1e-6)


# ----------------------------------------------------------------------------- the files


def _write(tmp_path: Path, encoder_bytes: bytes | None = GOOD, **kw: Any) -> tuple[Path, bytes]:
    s = stage(**kw)
    blob = dump_mixed(_mixed(encoder_settings=s))
    path = tmp_path / "harm.safetensors"
    path.write_bytes(blob)
    if encoder_bytes is not None:
        (tmp_path / s.file).write_bytes(encoder_bytes)
    return path, blob


def test_the_settings_survive_the_model_file() -> None:
    s = stage(low=0.1, high=0.7, weight=0.3, max_tokens=32, min_english=0.6)
    blob = dump_mixed(_mixed(encoder_settings=s))
    again = parse_guard_model(blob, source="x")
    assert isinstance(again, MixedModel)
    assert again.encoder_settings == s
    assert again.encoder is None  # the file only names the stage
    assert dump_mixed(again) == blob
    plain = parse_guard_model(dump_mixed(_mixed()), source="x")
    assert isinstance(plain, MixedModel)
    assert plain.encoder_settings is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{", "encoder settings are not JSON"),
        (json.dumps(VALID | {"weight": 2}), "encoder weight"),
        (json.dumps(VALID | {"file": "../x.onnx"}), "plain file name"),
        (json.dumps({"file": "x.onnx"}), "lack"),
    ],
)
def test_a_bad_encoder_entry_is_refused_with_the_file_name(entry: str, message: str) -> None:
    bad = _retag(dump_mixed(_mixed()), {"meta:encoder": entry})
    with pytest.raises(InputError) as err:
        parse_guard_model(bad, source="bad.safetensors")
    assert err.value.message.startswith("bad.safetensors: ")
    assert message in err.value.message


def test_load_guard_file_attaches_the_stage_and_scores_with_it(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, weight=0.5)
    guard = load_guard_file(path, decode=False)
    assert isinstance(guard.model, MixedModel)
    assert guard.model.encoder is not None
    assert guard.model.encoder.source == str(tmp_path / "enc.onnx")
    # the same model without its stage, for the first-stage probability
    first = parse_guard_model(dump_mixed(_mixed()), source="x")
    for text in ["how to make a bomb", "How to make a cake"]:
        p = first.score(text).probability
        want = 0.5 * p + 0.5 * sigmoid(expected(prepare(text)))
        got = guard.score(text)[0]
        assert got == pytest.approx(want, rel=1e-6)
        assert abs(got - p) > 0.01  # the stage moved it


def test_loads_of_the_same_encoder_share_one_session(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, weight=0.5)
    first, second = load_guard_file(path), load_guard_file(path)
    assert isinstance(first.model, MixedModel)
    assert isinstance(second.model, MixedModel)
    assert first.model is not second.model
    assert first.model.encoder is second.model.encoder is not None
    # other settings: another session; only the last ENCODERS_KEPT are kept by the module
    (tmp_path / "b").mkdir()
    other, _ = _write(tmp_path / "b", weight=0.25)
    third = load_guard_file(other)
    assert isinstance(third.model, MixedModel)
    assert third.model.encoder is not first.model.encoder
    assert len(bag_module._ENCODERS) <= bag_module.ENCODERS_KEPT
    for i, weight in enumerate((0.1, 0.2, 0.3)):
        (tmp_path / f"c{i}").mkdir()
        load_guard_file(_write(tmp_path / f"c{i}", weight=weight)[0])
    assert len(bag_module._ENCODERS) == bag_module.ENCODERS_KEPT


def test_a_missing_encoder_file_is_named(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, encoder_bytes=None)
    with pytest.raises(InputError) as err:
        load_guard_file(path)
    assert str(path) in err.value.message
    assert "cannot read its encoder" in err.value.message
    assert str(tmp_path / "enc.onnx") in err.value.message


def test_an_encoder_file_with_another_digest_is_refused(tmp_path: Path) -> None:
    other = graph(SCORES * 2)
    path, _ = _write(tmp_path, encoder_bytes=other)
    with pytest.raises(InputError) as err:
        load_guard_file(path)
    msg = err.value.message
    assert str(tmp_path / "enc.onnx") in msg
    assert "SHA-256" in msg
    assert hashlib.sha256(other).hexdigest()[:16] in msg
    assert hashlib.sha256(GOOD).hexdigest()[:16] in msg


def test_an_encoder_file_that_is_not_onnx_is_refused_by_name(tmp_path: Path) -> None:
    junk = b"not onnx at all"
    path, _ = _write(tmp_path, encoder_bytes=junk, sha256=hashlib.sha256(junk).hexdigest())
    with pytest.raises(InputError) as err:
        load_guard_file(path)
    assert err.value.message.startswith(f"{tmp_path / 'enc.onnx'}: not a loadable ONNX encoder")


def test_a_guard_refuses_a_model_whose_stage_is_not_loaded() -> None:
    model = _mixed(encoder_settings=stage())
    with pytest.raises(InputError, match=r"second stage \(enc\.onnx\).*not loaded"):
        TrainedGuard(model)
    model.encoder = EncoderModel(GOOD, model.bag.wordpiece, stage())
    assert TrainedGuard(model, decode=False).score("how to make a bomb")[0] > 0.0
