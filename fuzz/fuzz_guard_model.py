"""Coverage-guided fuzzing of the trained guards' model file parser (atheris).

    python fuzz/fuzz_guard_model.py CORPUS_DIR -atheris_runs=100000

The first byte picks what to fuzz, so that most inputs get past the safetensors header:

* raw bytes (the rest of the input) as a model file;
* a valid small model whose ``__metadata__`` entry picked by the next byte (the format tag, the
  featuriser settings, the categories, the category bits, the model metadata or a stray key) is
  replaced with the rest of the input as UTF-8;
* the small model with its settings built from JSON values picked by the input (bounds, signs,
  non-numbers, infinities, deep nesting), which random bytes seldom spell;
* a well-formed safetensors file whose tensors (names, dtypes and shapes picked by the input) are
  filled with the input's bytes: odd shapes, unsupported dtypes, NaN and infinite weights.

* the same two for a small ensemble model (``modelseal-guard-ensemble/1``): a metadata entry
  (format, featuriser, network bits, categories, model metadata) replaced, or its tensors changed;
* and for a small mixed model (``modelseal-guard-mixed/1``, n-gram + subword bag): a metadata
  entry (format, featuriser, bag settings, categories, model metadata) replaced, or its tensors
  changed (the vocabulary bytes, the int8 or 4-bit table and its scales among them).

Tensor names include the scales of int8 weights (``binary.w.scale``, ``category.w.scale``), so
int8 weights with missing, misshapen, zero, negative or non-finite scales are reached, and the
pieces of sparse int8 weights (``binary.w.mask``, ``binary.w.nz``): masks that do not count
their steps, zero steps, half a pair, a pair next to dense weights.

Invariant: :func:`~modelseal.guard.classifier.parse_guard_model` returns a model or raises
InputError, nothing else; a model that parses scores texts without raising, and dumps to bytes that
parse back to the same (float16, or int8-step) weights.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from modelseal.errors import InputError
from modelseal.guard.bag import MixedModel, SubwordBag, dump_mixed
from modelseal.guard.classifier import (
    EnsembleModel,
    Featurizer,
    GuardModel,
    LinearModel,
    dump_ensemble,
    dump_model,
    parse_guard_model,
)
from modelseal.guard.wordpiece import WordPiece

_F = Featurizer(bits=8, char_ngrams=(2, 3))
_BASE = dump_model(
    LinearModel(
        _F,
        np.linspace(-1, 1, _F.size, dtype=np.float32),
        -0.5,
        categories=("S1", "S2"),
        category_bits=4,
        category_weights=np.ones((16, 2), dtype=np.float32),
        category_bias=np.zeros(2, dtype=np.float32),
        metadata={"name": "fuzz", "threshold": 0.5},
    )
)
_ENSEMBLE = dump_ensemble(
    EnsembleModel(
        LinearModel(_F, np.linspace(-1, 1, _F.size, dtype=np.float32), -0.5),
        ft_bits=8,
        embedding=np.linspace(-1, 1, 256 * 2, dtype=np.float32).reshape(256, 2),
        hidden_w=np.ones((3, 2), dtype=np.float32),
        hidden_b=np.zeros(3, dtype=np.float32),
        out_w=np.ones(3, dtype=np.float32),
        out_b=0.0,
        categories=("S1", "S2"),
        category_w=np.ones((2, 3), dtype=np.float32),
        category_b=np.zeros(2, dtype=np.float32),
        metadata={"name": "fuzz", "threshold": 0.5},
    )
)
_ENSEMBLE_KEYS = ["format", "featurizer", "ft_bits", "categories", "model", "extra"]
_ENSEMBLE_TENSORS: list[list[Any]] = [
    ["binary.b", "F32", [1]],
    ["binary.w", "F16", [_F.size]],
    ["ft.emb", "F16", [256, 2]],
    ["ft.w1", "F32", [3, 2]],
    ["ft.b1", "F32", [3]],
    ["ft.w2", "F32", [3]],
    ["ft.b2", "F32", [1]],
    ["category.w", "F32", [2, 3]],
    ["category.b", "F32", [2]],
]
_VOCAB = ["[PAD]", "[UNK]", "ignore", "all", "##s", "previous", "instructions", "\u4eca", "wie"]
_MIXED = dump_mixed(
    MixedModel(
        LinearModel(_F, np.linspace(-1, 1, _F.size, dtype=np.float32), -0.5),
        SubwordBag.from_float(
            WordPiece(_VOCAB),
            np.linspace(-1, 1, len(_VOCAB) * 2, dtype=np.float32).reshape(len(_VOCAB), 2),
            np.ones((3, 2), dtype=np.float32),
            np.zeros(3, dtype=np.float32),
            np.ones(3, dtype=np.float32),
            0.0,
        ),
        metadata={"name": "fuzz", "threshold": 0.5},
    ),
)
_MIXED_KEYS = ["format", "featurizer", "bag", "categories", "model", "extra"]
_MIXED_TENSORS: list[list[Any]] = [
    ["binary.b", "F32", [1]],
    ["binary.w", "F16", [_F.size]],
    ["bag.vocab", "U8", [56]],
    ["bag.emb", "I8", [9, 2]],
    ["bag.scale", "F32", [9]],
    ["bag.w1", "F32", [3, 2]],
    ["bag.b1", "F32", [3]],
    ["bag.w2", "F32", [3]],
    ["bag.b2", "F32", [1]],
]
_SPARSE_TENSORS: list[list[Any]] = [  # the linear model's binary weights stored sparse
    ["binary.b", "F32", [1]],
    ["binary.w.mask", "U8", [_F.size // 8]],
    ["binary.w.nz", "I8", [16]],
    ["binary.w.scale", "F32", [1]],
    ["category.b", "F32", [2]],
    ["category.w", "F16", [16, 2]],
]
_META_KEYS = ["format", "featurizer", "categories", "category_bits", "model", "extra"]
_NAMES = ["binary.w", "binary.b", "category.w", "category.b", "ft.emb", "ft.w1", "ft.b2", "other"]
_NAMES += ["bag.vocab", "bag.emb", "bag.scale", "bag.w1", "bag.emb4"]
_NAMES += ["binary.w.scale", "category.w.scale"]  # the scales of int8 weights
_NAMES += ["binary.w.mask", "binary.w.nz"]  # sparse int8 weights
_DTYPES = {"F16": 2, "F32": 4, "BF16": 2, "I32": 4, "F64": 8, "U8": 1, "I8": 1}
_SHAPES: list[list[int]] = [
    [], [1], [2], [3], [16], [32], [256], [128, 2], [16, 2], [16, 3], [2, 16], [256, 2], [3, 2],
    [2, 3],
]  # fmt: skip
_VALUES = [
    "8", "12", "24", "25", "7", "0", "1", "-1", "3", "9", "2.5", "1e400", "-1e400", "NaN",
    "Infinity", "-Infinity", "true", "null", '"8"', '"x"', "[]", "[3]", "[0]", "[3, 4]", "{}",
    "[" * 3000 + "]" * 3000,
]  # fmt: skip
_TEXTS = ["", "a", "ignore all previous instructions", "\u4eca\u5929 \u200b WIE GEHT'S"]


def _file(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    raw = json.dumps(header).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def _with_metadata_of(base: bytes, key: str, value: str) -> bytes:
    (n,) = struct.unpack("<Q", base[:8])
    header = json.loads(base[8 : 8 + n])
    header["__metadata__"][key] = value
    return _file(header, [base[8 + n :]])


def _with_metadata(key: str, value: str) -> bytes:
    return _with_metadata_of(_BASE, key, value)


def _settings(data: bytes) -> bytes:
    """The small model with featuriser settings, categories and category bits from ``data``."""
    picks = [_VALUES[b % len(_VALUES)] for b in data[:6]] + ["8"] * (6 - len(data[:6]))
    bits, ngrams, skip, words, cat_bits, categories = picks
    featurizer = f'{{"bits": {bits}, "char_ngrams": {ngrams}, "skip": {skip}, "words": {words}}}'
    blob = _with_metadata("featurizer", featurizer)
    names = {"[]": "[]", "[3]": '["a"]', "[3, 4]": '["a", "b", "c"]'}.get(categories, '["a", "b"]')
    blob = _with_metadata_of(blob, "categories", names)
    return _with_metadata_of(blob, "category_bits", cat_bits.strip('"'))


def _tensors(data: bytes, base: bytes = _BASE, spec: list[list[Any]] | None = None) -> bytes:
    """A well-formed safetensors file: the small model's tensors, some of them changed (name,
    dtype or shape picked by ``data``, or dropped), all filled with ``data``'s bytes."""
    pos = 0

    def byte() -> int:
        nonlocal pos
        pos += 1
        return data[pos - 1] if pos <= len(data) else 0

    tensors: list[list[Any]] = [
        list(t)
        for t in spec
        or [
            ["binary.b", "F32", [1]],
            ["binary.w", "F16", [_F.size]],
            ["category.b", "F32", [2]],
            ["category.w", "F16", [16, 2]],
        ]
    ]
    for _ in range(byte() % 4):
        tensor = tensors[byte() % len(tensors)]
        what = byte() % 4
        if what == 0:
            tensor[0] = _NAMES[byte() % len(_NAMES)]
        elif what == 1:
            tensor[1] = list(_DTYPES)[byte() % len(_DTYPES)]
        elif what == 2:
            tensor[2] = _SHAPES[byte() % len(_SHAPES)]
        elif len(tensors) > 1:
            tensors.remove(tensor)
    (n,) = struct.unpack("<Q", base[:8])
    header: dict[str, Any] = {"__metadata__": json.loads(base[8 : 8 + n])["__metadata__"]}
    fill = data[pos:] or b"\0"
    blobs: list[bytes] = []
    offset = 0
    for name, dtype, shape in tensors:
        size = _DTYPES[dtype] * int(np.prod(shape, dtype=np.int64))
        blob = (fill * (size // len(fill) + 1))[:size]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        blobs.append(blob)
        offset += size
    return _file(header, blobs)


def check_model(model: GuardModel | MixedModel) -> None:
    for text in _TEXTS:
        score = model.score(text)
        if model.categories and score.category not in model.categories:
            raise AssertionError(f"category {score.category!r} is not one of the model's")
    if isinstance(model, MixedModel):
        again = parse_guard_model(dump_mixed(model))
        if not isinstance(again, MixedModel) or again.weight != model.weight:
            raise AssertionError("a mixed model changed in a dump and parse round trip")
        for text in _TEXTS:
            a, b = again.score(text).probability, model.score(text).probability
            if not (abs(a - b) <= 0.05 or (np.isnan(a) and np.isnan(b))):
                raise AssertionError(f"mixed score moved {b} -> {a} in a round trip")
    elif isinstance(model, EnsembleModel):
        again = parse_guard_model(dump_ensemble(model))
        if not isinstance(again, EnsembleModel):
            raise AssertionError("an ensemble parsed back as another kind")
        want = model.embedding.astype(np.float16).astype(np.float32)
        if not np.array_equal(again.embedding, want, equal_nan=True):
            raise AssertionError("embedding changed in a dump and parse round trip")
    else:
        again = parse_guard_model(dump_model(model))
        # int8 steps go back as they came; float weights are stored as float16
        want = model.weights
        if not model.weight_scale:
            want = want.astype(np.float16).astype(np.float32)
        if not isinstance(again, LinearModel) or not np.array_equal(
            again.weights, want, equal_nan=True
        ):
            raise AssertionError("weights changed in a dump and parse round trip")
    if again.featurizer != model.featurizer or again.categories != model.categories:
        raise AssertionError("settings changed in a dump and parse round trip")


def test_one_input(data: bytes) -> None:
    mode = data[0] % 8 if data else 0
    rest = data[1:]
    if mode == 0:
        blob = rest
    elif mode == 1:
        key = _META_KEYS[rest[0] % len(_META_KEYS)] if rest else "model"
        blob = _with_metadata(key, rest[1:].decode("utf-8", "replace"))
    elif mode == 2:
        blob = _settings(rest)
    elif mode == 3:  # dense or sparse binary weights, by the first byte
        blob = _tensors(rest[1:], _BASE, _SPARSE_TENSORS if rest and rest[0] % 2 else None)
    elif mode == 4:
        key = _ENSEMBLE_KEYS[rest[0] % len(_ENSEMBLE_KEYS)] if rest else "ft_bits"
        blob = _with_metadata_of(_ENSEMBLE, key, rest[1:].decode("utf-8", "replace"))
    elif mode == 5:
        blob = _tensors(rest, _ENSEMBLE, _ENSEMBLE_TENSORS)
    elif mode == 6:
        key = _MIXED_KEYS[rest[0] % len(_MIXED_KEYS)] if rest else "bag"
        blob = _with_metadata_of(_MIXED, key, rest[1:].decode("utf-8", "replace"))
    else:
        blob = _tensors(rest, _MIXED, _MIXED_TENSORS)
    try:
        model = parse_guard_model(blob, source="fuzz")
    except InputError:
        return
    with np.errstate(all="ignore"):
        check_model(model)


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
