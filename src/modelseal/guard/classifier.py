"""Trained text classifiers for the guards: hashed n-gram features and a linear model, in numpy.

A text becomes a set of feature indices (no vocabulary to ship):

* the text is normalised (:func:`modelseal.guard.text.normalise`: invisible characters removed,
  NFKC, mixed-script homoglyphs folded), lower-cased, whitespace runs collapsed, padded with a
  space at each end;
* character n-grams for each size in ``char_ngrams`` (3, 4, 5 by default) are hashed with a
  polynomial over the code points, vectorised in numpy; words (``\\w+`` runs, each CJK character
  on its own) and word pairs are hashed with CRC-32;
* each hash is mixed with a per-kind salt and reduced to ``bits`` bits (a multiply-shift hash).

The feature vector is binary and L2-normalised (each of the ``n`` distinct indices weighs
``1/sqrt(n)``; a text repeating one n-gram 4,000 times weighs no more than one saying it once),
so the logit of the binary head is ``b + sum(w[indices]) / sqrt(n)``. A second, optional head
scores
categories (the MLCommons hazard codes for the harm guard) on the same indices reduced to
``category_bits``. Training (``scripts/train_guards.py``) builds the very same features through
:meth:`Featurizer.indices`, so what is measured is what runs.

Weights are a safetensors file: ``binary.w`` (float16, ``2**bits``), ``binary.b`` (float32, 1),
optionally ``category.w`` (float16, ``2**category_bits`` x K) and ``category.b`` (float32, K);
either weight tensor may instead be int8 steps with a float32 ``NAME.scale`` (one value for
``binary.w``, one per class for ``category.w``: :func:`int8_values`), half the bytes; int8
``binary.w`` steps are stored sparse when that is smaller (most hashed features of a trained
model have zero weight): ``binary.w.mask`` (U8, one bit per weight, bit ``i % 8`` of byte
``i // 8`` set when weight ``i`` is not zero) and ``binary.w.nz`` (I8, the non-zero steps in
index order) in place of ``binary.w`` (:func:`sparse_steps`), the same values in fewer bytes;
the featuriser settings, category names, thresholds and metrics are JSON strings in the file's
``__metadata__``. :func:`load_model` validates the header with the defensive parser in
:mod:`modelseal.formats.safetensors` before touching a byte of data: a guard model is scanned like
any other model file.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from modelseal.errors import InputError
from modelseal.formats.safetensors import SafetensorsError, parse_header_bytes
from modelseal.guard.text import fold_case_and_space, normalise

if TYPE_CHECKING:
    from modelseal.guard.bag import MixedModel

FORMAT = "modelseal-guard-linear/1"
ENSEMBLE_FORMAT = "modelseal-guard-ensemble/1"

_MASK64 = (1 << 64) - 1
_PRIME = np.uint64(0x100000001B3)  # FNV-64 prime: the polynomial base
_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: the multiply-shift constant
_SALT_CHAR = 0x51ED270B27A9C3F1
_SALT_WORD = np.uint64(0x2545F4914F6CDD1D)
_SALT_PAIR = np.uint64(0x6A09E667F3BCC909)
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# words: runs of word characters, except that each CJK character is a word of its own (Chinese
# and Japanese have no spaces; their word pairs are then character bigrams)
_WORD = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_DTYPES = {"F16": np.float16, "F32": np.float32}
_INT_DTYPES = {"I8": np.int8, "U8": np.uint8}  # kept as integers (quantised tables, bytes)


def _unique(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Sorted unique values (a sort and a mask: several times faster than numpy 2's
    hash-based ``np.unique`` on the few thousand indices of a window)."""
    if len(values) < 2:
        return values.copy()
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _ranges(starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``concatenate([arange(s, s + c) for s, c in zip(starts, counts)])`` without the loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    skip = np.cumsum(counts) - counts  # where each run begins in the output
    out: npt.NDArray[np.int64] = np.arange(total, dtype=np.int64) + np.repeat(starts - skip, counts)
    return out


def _char_hashes(codes: npt.NDArray[np.uint64], n: int) -> npt.NDArray[np.uint64]:
    """The salted polynomial hash of every character n-gram (``len(codes) >= n``; wraps mod 2**64,
    callers silence numpy's overflow warning)."""
    length = len(codes)
    h = codes[: length - n + 1].copy()
    for k in range(1, n):
        h = h * _PRIME + codes[k : length - n + 1 + k]
    h ^= np.uint64((_SALT_CHAR * n) & _MASK64)
    return h


def prepare(text: str) -> str:
    """The form features are taken from: normalised, look-alikes and letter-spacing folded,
    lower-cased, single-spaced, padded with a space at each end."""
    return " " + fold_case_and_space(normalise(text).text).strip() + " "


@dataclass(frozen=True, slots=True)
class Featurizer:
    """Hashed character and word n-gram features (see the module docstring)."""

    bits: int = 20
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    words: bool = True
    word_pairs: bool = True
    skip: int = 1  # word pairs up to this many words apart (1: adjacent only)

    def __post_init__(self) -> None:
        if not 8 <= self.bits <= 24:
            raise InputError(f"featuriser bits must be 8-24, not {self.bits}")
        if not self.char_ngrams or any(not 1 <= n <= 8 for n in self.char_ngrams):
            raise InputError(f"char n-gram sizes must be 1-8: {self.char_ngrams}")
        if not 1 <= self.skip <= 8:
            raise InputError(f"word pair distance must be 1-8, not {self.skip}")

    @property
    def size(self) -> int:
        return 1 << self.bits

    def indices(self, text: str) -> npt.NDArray[np.int64]:
        """The sorted, unique feature indices of ``text``."""
        return self.prepared_indices(prepare(text))

    def prepared_indices(self, prepared: str) -> npt.NDArray[np.int64]:
        """The feature indices of a text already passed through :func:`prepare`."""
        shift = np.uint64(64 - self.bits)
        codes = np.frombuffer(prepared.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        parts: list[npt.NDArray[np.uint64]] = []
        length = len(codes)
        with np.errstate(over="ignore"):
            for n in self.char_ngrams:
                if length < n:
                    continue
                parts.append(_char_hashes(codes, n))
            if self.words:
                words = _WORD.findall(prepared)
                if words:
                    wh = np.fromiter(
                        (zlib.crc32(w.encode("utf-8")) for w in words),
                        dtype=np.uint64,
                        count=len(words),
                    )
                    parts.append(wh ^ _SALT_WORD)
                    if self.word_pairs:
                        for d in range(1, min(self.skip, len(words) - 1) + 1):
                            salt = _SALT_PAIR + np.uint64(d - 1)
                            parts.append((wh[:-d] * _PRIME + wh[d:]) ^ salt)
            if not parts:
                return np.zeros(0, dtype=np.int64)
            hashes = np.concatenate(parts)
            reduced = (hashes * _MIX) >> shift
        return _unique(reduced.astype(np.int64))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "char_ngrams": list(self.char_ngrams),
            "words": self.words,
            "word_pairs": self.word_pairs,
            "skip": self.skip,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Featurizer:
        if not isinstance(doc, Mapping):
            raise InputError(f"bad featuriser settings: not a mapping: {doc!r}"[:200])
        try:
            return cls(
                bits=int(doc["bits"]),
                char_ngrams=tuple(int(n) for n in doc["char_ngrams"]),
                words=bool(doc.get("words", True)),
                word_pairs=bool(doc.get("word_pairs", True)),
                skip=int(doc.get("skip", 1)),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"bad featuriser settings: {exc}"[:300]) from None


class TextFeatures:
    """The features of a prepared text, hashed once, from which any window's indices follow.

    :meth:`window` gives exactly ``featurizer.prepared_indices(prepared[start:end])`` (a
    property test holds it to that) without re-hashing: character n-gram hashes are sliced from
    whole-text arrays, words are the whole text's words inside the window plus the cut ends of
    the words crossing its edges (hashed on the spot), and word pairs follow from those.
    """

    __slots__ = ("_chars", "_ends", "_featurizer", "_prepared", "_shift", "_starts", "_words")

    def __init__(self, featurizer: Featurizer, prepared: str) -> None:
        self._featurizer = featurizer
        self._prepared = prepared
        self._shift = np.uint64(64 - featurizer.bits)
        codes = np.frombuffer(prepared.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        length = len(codes)
        self._chars: list[tuple[int, npt.NDArray[np.int64]]] = []
        with np.errstate(over="ignore"):
            for n in featurizer.char_ngrams:
                if length < n:
                    continue
                h = _char_hashes(codes, n)
                self._chars.append((n, ((h * _MIX) >> self._shift).astype(np.int64)))
        spans = [m.span() for m in _WORD.finditer(prepared)] if featurizer.words else []
        self._starts = np.asarray([a for a, _ in spans], dtype=np.int64)
        self._ends = np.asarray([b for _, b in spans], dtype=np.int64)
        self._words = np.fromiter(
            (zlib.crc32(prepared[a:b].encode("utf-8")) for a, b in spans),
            dtype=np.uint64,
            count=len(spans),
        )

    def window(self, start: int, end: int) -> npt.NDArray[np.int64]:
        """The sorted, unique feature indices of ``prepared[start:end]``."""
        start, end = max(start, 0), min(end, len(self._prepared))
        parts = [h[start : end - n + 1] for n, h in self._chars if end - start >= n]
        feats = self._featurizer
        if feats.words and end > start:
            first = int(np.searchsorted(self._ends, start, side="right"))
            last = int(np.searchsorted(self._starts, end, side="left"))
            if last > first:
                wh = self._words[first:last].copy()
                for i in {first, last - 1}:
                    a, b = int(self._starts[i]), int(self._ends[i])
                    if a < start or b > end:
                        cut = self._prepared[max(a, start) : min(b, end)]
                        wh[i - first] = zlib.crc32(cut.encode("utf-8"))
                with np.errstate(over="ignore"):
                    words = [wh ^ _SALT_WORD]
                    if feats.word_pairs:
                        for d in range(1, min(feats.skip, len(wh) - 1) + 1):
                            salt = _SALT_PAIR + np.uint64(d - 1)
                            words.append((wh[:-d] * _PRIME + wh[d:]) ^ salt)
                    hashed = np.concatenate(words)
                    parts.append(((hashed * _MIX) >> self._shift).astype(np.int64))
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return _unique(np.concatenate(parts))

    def windows(
        self, spans: Sequence[tuple[int, int]]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Every span's :meth:`window` at once: ``flat[offsets[i]:offsets[i + 1]]`` equals
        ``window(*spans[i])``. The features of all windows are gathered with array arithmetic
        and made unique per window by one sort of (window, index) keys, instead of a sort and a
        few dozen small numpy calls per window (a long text has ~180 windows)."""
        count_w = len(spans)
        ids = np.arange(count_w, dtype=np.int64)
        bounds = np.asarray(spans, dtype=np.int64).reshape(count_w, 2)
        start = np.maximum(bounds[:, 0], 0)
        end = np.minimum(bounds[:, 1], len(self._prepared))
        width = end - start
        idx_parts: list[npt.NDArray[np.int64]] = []
        win_parts: list[npt.NDArray[np.int64]] = []
        for n, h in self._chars:
            count = np.where(width >= n, width - n + 1, 0)
            idx_parts.append(h[_ranges(start, count)])
            win_parts.append(np.repeat(ids, count))
        feats = self._featurizer
        if feats.words and len(self._words):
            first = np.searchsorted(self._ends, start, side="right").astype(np.int64)
            last = np.searchsorted(self._starts, end, side="left").astype(np.int64)
            count = np.where(end > start, np.maximum(last - first, 0), 0)
            wh = self._words[_ranges(first, count)]  # a copy: cut words are re-hashed in it
            wid = np.repeat(ids, count)
            base = np.cumsum(count) - count
            has = count > 0
            for word, at in ((first, base), (last - 1, base + count - 1)):
                i = np.where(has, word, 0)
                cut = has & ((self._starts[i] < start) | (self._ends[i] > end))
                for w in np.flatnonzero(cut).tolist():
                    a, b = int(self._starts[i[w]]), int(self._ends[i[w]])
                    text = self._prepared[max(a, int(start[w])) : min(b, int(end[w]))]
                    wh[at[w]] = zlib.crc32(text.encode("utf-8"))
            with np.errstate(over="ignore"):
                hashed = [wh ^ _SALT_WORD]
                owners = [wid]
                if feats.word_pairs:
                    for d in range(1, feats.skip + 1):
                        if len(wh) <= d:
                            break
                        same = wid[:-d] == wid[d:]  # pairs never cross windows
                        salt = _SALT_PAIR + np.uint64(d - 1)
                        hashed.append(((wh[:-d] * _PRIME + wh[d:]) ^ salt)[same])
                        owners.append(wid[:-d][same])
                joined = np.concatenate(hashed)
                idx_parts.append(((joined * _MIX) >> self._shift).astype(np.int64))
            win_parts.append(np.concatenate(owners))
        if not idx_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(count_w + 1, dtype=np.int64)
        bits = feats.bits
        keys = np.sort((np.concatenate(win_parts) << bits) | np.concatenate(idx_parts))
        if len(keys) > 1:
            keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        flat = keys & ((1 << bits) - 1)
        offsets = np.searchsorted(keys >> bits, np.arange(count_w + 1)).astype(np.int64)
        return flat, offsets


@dataclass(frozen=True, slots=True)
class Score:
    """A model's result on one text: probability of the positive class and the top category."""

    probability: float
    category: str = ""
    category_probability: float = 0.0


def _top_category(
    probability: float, logits: npt.NDArray[np.float64], categories: tuple[str, ...]
) -> Score:
    """The score with the most probable category of a softmax over ``logits``."""
    shifted = np.exp(logits - logits.max())
    probs = shifted / shifted.sum()
    top = int(probs.argmax())
    return Score(probability, categories[top], float(probs[top]))


class ModelInfo:
    """``name`` and ``version`` of a guard model, from its metadata (a mixin of the models)."""

    __slots__ = ()
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "classifier"))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))


@dataclass(slots=True)
class LinearModel(ModelInfo):
    """A binary logistic head, optionally with a multinomial category head, over hashed features."""

    featurizer: Featurizer
    weights: npt.NDArray[np.float32]
    bias: float
    categories: tuple[str, ...] = ()
    category_bits: int = 0
    category_weights: npt.NDArray[np.float32] | None = None
    category_bias: npt.NDArray[np.float32] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # int8 storage (0: float16): the weights are ``q * weight_scale`` for int8 ``q`` (see
    # :func:`int8_values`), the category weights ``q * category_scale`` per class
    weight_scale: float = 0.0
    category_scale: npt.NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight_scale) and self.weight_scale >= 0):
            raise InputError("the binary weights' int8 scale must be a number >= 0")
        if self.weights.shape != (self.featurizer.size,):
            raise InputError(
                f"binary weights have shape {self.weights.shape}, "
                f"expected ({self.featurizer.size},)"
            )
        if self.categories:
            if not 1 <= self.category_bits <= self.featurizer.bits:
                raise InputError(f"category bits must be 1-{self.featurizer.bits}")
            cw, cb = self.category_weights, self.category_bias
            want = (1 << self.category_bits, len(self.categories))
            if cw is None or cb is None or cw.shape != want or cb.shape != (len(self.categories),):
                raise InputError(f"category weights must have shape {want} with a bias per class")
            cs = self.category_scale
            if cs is not None and (
                cs.shape != (len(self.categories),) or not np.all(np.isfinite(cs) & (cs > 0))
            ):
                raise InputError("the category weights' int8 scales must be > 0, one per class")

    def window_logits(
        self, flat: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """:meth:`logit` of every window of :meth:`TextFeatures.windows` at once (the same
        float64 sums: exact for float16-valued weights in any order)."""
        counts = np.diff(offsets)
        owner = np.repeat(np.arange(len(counts)), counts)
        sums = np.bincount(
            owner, weights=self.weights[flat].astype(np.float64), minlength=len(counts)
        )
        out = np.full(len(counts), float(self.bias), dtype=np.float64)
        some = counts > 0
        out[some] = self.bias + sums[some] / np.sqrt(counts[some])
        return out

    def logit(self, indices: npt.NDArray[np.int64]) -> float:
        if len(indices) == 0:
            return self.bias
        return self.bias + float(self.weights[indices].sum(dtype=np.float64)) / math.sqrt(
            len(indices)
        )

    def score_indices(self, indices: npt.NDArray[np.int64], *, categorise: bool = True) -> Score:
        z = self.logit(indices)
        p = 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0
        if not categorise or not self.categories or self.category_weights is None:
            return Score(p)
        assert self.category_bias is not None
        if len(indices):
            reduced = indices >> (self.featurizer.bits - self.category_bits)
            raw = self.category_weights[reduced].sum(axis=0, dtype=np.float64) / math.sqrt(
                len(indices)
            )
            logits = raw + self.category_bias
        else:
            logits = self.category_bias.astype(np.float64)
        return _top_category(p, logits, self.categories)

    def score(self, text: str) -> Score:
        return self.score_indices(self.featurizer.indices(text))


# ----------------------------------------------------------------------------- file format


def _tensor_bytes(array: npt.NDArray[Any]) -> tuple[str, bytes]:
    if array.dtype == np.int8:
        return "I8", array.tobytes()
    if array.dtype == np.uint8:
        return "U8", array.tobytes()
    if array.dtype == np.float16:
        return "F16", array.astype("<f2").tobytes()
    return "F32", array.astype("<f4").tobytes()


def int8_values(
    weights: npt.NDArray[np.floating[Any]], *, per_column: bool = False
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Weights rounded to int8 steps, as a file stores them (:attr:`LinearModel.weight_scale`):
    the scale is the absolute maximum / 127 (of the whole tensor, or of each column), the
    values ``float32(q) * scale``, exactly what loading the file gives back. Returns the
    values and the scales (shape (1,) or one per column). Sums of such values in float64 are
    exact in any order: each is a multiple of its scale's unit in the last place and at most
    127 times the scale."""
    w = np.asarray(weights, dtype=np.float32)
    top = np.abs(w).max(axis=0) if per_column else np.abs(w).max(keepdims=True).reshape(1)
    scale = np.where(top > 0, top / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q.astype(np.float32) * scale, scale


def _int8_of(values: npt.NDArray[np.float32], scale: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    """The int8 steps of :func:`int8_values`'s values (exact: the values are steps x scale)."""
    q: npt.NDArray[np.float32] = np.rint(values / scale)
    if np.abs(q).max(initial=0) > 127:
        raise ValueError("weights exceed their int8 scale")
    return q.astype(np.int8)


def sparse_steps(q: npt.NDArray[np.int8]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int8]]:
    """Int8 steps (1-D, a multiple of 8 long) as a bit mask of the non-zero ones and those steps
    in index order (the file's ``NAME.mask`` and ``NAME.nz``; :func:`dense_steps` inverts)."""
    if q.ndim != 1 or q.size % 8:
        raise ValueError("sparse steps need a 1-D array a multiple of 8 long")
    mask = np.packbits(q != 0, bitorder="little")
    return mask, np.ascontiguousarray(q[q != 0])


def dense_steps(mask: npt.NDArray[Any], nz: npt.NDArray[Any]) -> npt.NDArray[np.int8]:
    """The int8 steps a ``mask`` and its non-zero steps ``nz`` stand for (ValueError when the
    two do not fit: the mask's set bits must count the steps, and no step may be zero)."""
    if mask.dtype != np.uint8 or mask.ndim != 1 or nz.dtype != np.int8 or nz.ndim != 1:
        raise ValueError("a sparse tensor is a 1-D U8 mask and 1-D I8 non-zero steps")
    hit = np.unpackbits(mask, bitorder="little").astype(bool)
    if int(hit.sum()) != nz.size:
        raise ValueError(f"the mask sets {int(hit.sum())} bits for {nz.size} non-zero steps")
    if np.any(nz == 0):
        raise ValueError("a sparse tensor lists a zero step")
    out = np.zeros(hit.size, dtype=np.int8)
    out[hit] = nz
    return out


def linear_tensors(
    model: LinearModel,
) -> tuple[list[tuple[str, npt.NDArray[Any]]], dict[str, str]]:
    """A linear model's tensors and metadata entries (``format`` and ``model`` excepted), the
    part of the file every model kind with an n-gram head shares."""
    tensors: list[tuple[str, npt.NDArray[Any]]] = [
        ("binary.b", np.asarray([model.bias], dtype=np.float32)),
    ]
    if model.weight_scale:
        scale = np.asarray([model.weight_scale], dtype=np.float32)
        steps = _int8_of(model.weights, scale)
        mask, nz = sparse_steps(steps)
        if mask.size + nz.size < steps.size:
            tensors += [("binary.w.mask", mask), ("binary.w.nz", nz)]
        else:
            tensors.append(("binary.w", steps))
        tensors.append(("binary.w.scale", scale))
    else:
        tensors.append(("binary.w", model.weights.astype(np.float16)))
    if model.categories:
        assert model.category_weights is not None
        assert model.category_bias is not None
        tensors.append(("category.b", model.category_bias.astype(np.float32)))
        if model.category_scale is not None:
            cs = model.category_scale.astype(np.float32)
            tensors.append(("category.w", _int8_of(model.category_weights, cs)))
            tensors.append(("category.w.scale", cs))
        else:
            tensors.append(("category.w", model.category_weights.astype(np.float16)))
    meta = {
        "featurizer": json.dumps(model.featurizer.to_dict(), sort_keys=True),
        "categories": json.dumps(list(model.categories)),
        "category_bits": str(model.category_bits),
    }
    return tensors, meta


def dump_model(model: LinearModel) -> bytes:
    """The model as safetensors bytes (deterministic: same model, same bytes)."""
    tensors, meta = linear_tensors(model)
    meta["format"] = FORMAT
    meta["model"] = json.dumps(model.metadata, sort_keys=True)
    return safetensors_bytes(tensors, meta)


def safetensors_bytes(
    tensors: Sequence[tuple[str, npt.NDArray[Any]]], meta: dict[str, str]
) -> bytes:
    """Deterministic safetensors bytes: header keys sorted, padded to 8 bytes."""
    header: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, array in tensors:
        dtype, blob = _tensor_bytes(array)
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = meta
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def _header(data: bytes, source: str) -> Any:
    try:
        return parse_header_bytes(data)
    except SafetensorsError as exc:
        raise InputError(f"{source}: not a valid safetensors file: {exc}") from None


def arrays_of(header: Any, data: bytes, source: str) -> dict[str, npt.NDArray[Any]]:
    """The header's tensors: F16 and F32 as float32 arrays, I8 and U8 as they are."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for t in header.tensors:
        start = header.data_start + t.begin
        if t.dtype in _INT_DTYPES:
            raw = np.frombuffer(data, dtype=_INT_DTYPES[t.dtype], count=t.numel, offset=start)
            arrays[t.name] = raw.reshape(t.shape)
            continue
        dtype = _DTYPES.get(t.dtype)
        if dtype is None:
            raise InputError(f"{source}: tensor {t.name!r} has unsupported dtype {t.dtype}")
        arr = np.frombuffer(
            data, dtype=np.dtype(dtype).newbyteorder("<"), count=t.numel, offset=start
        )
        arrays[t.name] = arr.reshape(t.shape).astype(np.float32)
    return arrays


def _float(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> npt.NDArray[np.float32]:
    """A float tensor of the file (KeyError if absent, ValueError if stored as other integers):
    F16 or F32, or I8 steps with an F32 ``NAME.scale`` (one value, or one per column), dense
    or sparse (``NAME.mask`` and ``NAME.nz``, :func:`dense_steps`)."""
    arr = _steps(arrays, name)
    if arr.dtype == np.int8:
        scale = _int8_scale(arrays, name)
        out: npt.NDArray[np.float32] = arr.astype(np.float32) * scale
        return out
    if arr.dtype != np.float32:
        raise ValueError(f"tensor {name!r} must be F16, F32 or I8 with a scale")
    return arr


def _steps(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> npt.NDArray[Any]:
    """Tensor ``name`` as stored, or, stored sparse, its int8 steps made dense (KeyError if
    neither; ValueError if both, or if the sparse pair does not fit)."""
    sparse = name + ".mask" in arrays or name + ".nz" in arrays
    if name in arrays:
        if sparse:
            raise ValueError(f"tensor {name!r} is stored both dense and sparse")
        return arrays[name]
    if not sparse:
        raise KeyError(name)
    if name + ".mask" not in arrays or name + ".nz" not in arrays:
        raise ValueError(f"sparse tensor {name!r} needs both {name}.mask and {name}.nz")
    return dense_steps(arrays[name + ".mask"], arrays[name + ".nz"])


def _int8_scale(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> npt.NDArray[np.float32]:
    """The scale of an I8 tensor (ValueError if absent, misshapen, not finite or not > 0)."""
    scale = arrays.get(name + ".scale")
    arr = _steps(arrays, name)
    if scale is None or scale.dtype != np.float32:
        raise ValueError(f"I8 tensor {name!r} needs an F32 {name + '.scale'!r}")
    if scale.shape not in {(1,), (arr.shape[-1],)} or arr.ndim not in (1, 2):
        raise ValueError(f"{name + '.scale'!r} must hold one value or one per column")
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"{name + '.scale'!r} must be finite and > 0")
    return scale


def _float_opt(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> npt.NDArray[np.float32] | None:
    return _float(arrays, name) if name in arrays or name + ".mask" in arrays else None


def linear_from(
    meta: Mapping[str, str], arrays: Mapping[str, npt.NDArray[Any]], *, categories: bool
) -> LinearModel:
    """A linear model from a parsed file's metadata and tensors (KeyError / ValueError /
    InputError when incomplete or inconsistent)."""
    featurizer = Featurizer.from_dict(json.loads(meta["featurizer"]))
    cats = json.loads(meta.get("categories", "[]"))
    if not isinstance(cats, list):
        raise ValueError("categories must be a list")
    metadata = json.loads(meta.get("model", "{}"))
    bias_arr = _float(arrays, "binary.b")
    if bias_arr.shape != (1,) or not isinstance(metadata, dict):
        raise ValueError("bad binary.b or metadata")
    if not categories:
        cats = []
    if "binary.w.mask" in arrays or "binary.w.nz" in arrays:  # sparse: made dense once, here
        mask = arrays.get("binary.w.mask")
        if mask is not None and mask.size * 8 != featurizer.size:  # before it is unpacked
            raise ValueError(f"'binary.w.mask' must hold {featurizer.size // 8} bytes")
        dense = _steps(arrays, "binary.w")
        arrays = {k: v for k, v in arrays.items() if k not in {"binary.w.mask", "binary.w.nz"}}
        arrays["binary.w"] = dense
    weight_scale = 0.0
    if arrays["binary.w"].dtype == np.int8:
        scale = _int8_scale(arrays, "binary.w")
        if scale.shape != (1,):
            raise ValueError("'binary.w.scale' must hold one value")
        weight_scale = float(scale[0])
    category_scale = None
    if categories and "category.w" in arrays and arrays["category.w"].dtype == np.int8:
        category_scale = _int8_scale(arrays, "category.w")
        category_scale = np.broadcast_to(category_scale, (len(cats),)).copy()
    return LinearModel(
        featurizer=featurizer,
        weights=np.ascontiguousarray(_float(arrays, "binary.w")),
        bias=float(bias_arr[0]),
        categories=tuple(str(c) for c in cats),
        category_bits=int(meta.get("category_bits", "0")) if categories else 0,
        category_weights=_float_opt(arrays, "category.w"),
        category_bias=_float_opt(arrays, "category.b"),
        metadata=metadata,
        weight_scale=weight_scale,
        category_scale=category_scale,
    )


def parse_model(data: bytes, *, source: str = "model") -> LinearModel:
    """A linear model from safetensors bytes; a malformed or foreign file raises InputError."""
    header = _header(data, source)
    meta = dict(header.metadata)
    if meta.get("format") != FORMAT:
        raise InputError(f"{source}: not a modelseal guard model (format {meta.get('format')!r})")
    arrays = arrays_of(header, data, source)
    try:
        return linear_from(meta, arrays, categories=True)
    except InputError as exc:
        raise InputError(f"{source}: {exc.message}") from None
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InputError(f"{source}: incomplete guard model: {exc}"[:300]) from None


def load_model(path: str | Path) -> LinearModel:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read guard model {p}: {exc.strerror or exc}") from None
    return parse_model(data, source=str(p))


# ----------------------------------------------------------------------------- ensemble


def remember(cache: dict[str, float], text: str, value: float, max_chars: int, size: int) -> None:
    """Keep ``value`` for ``text`` in a per-model cache: texts up to ``max_chars`` only, and up
    to ``size`` of them, then the cache starts over (a conversation re-sends its earlier turns;
    the cache lives on the model, so it goes with it)."""
    if len(text) <= max_chars:
        if len(cache) >= size:
            cache.clear()
        cache[text] = value


def sigmoid(z: float) -> float:
    """The logistic function, without overflow for very negative ``z``."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    if z < -700:
        return 0.0
    ez = math.exp(z)
    return ez / (1.0 + ez)


@dataclass(slots=True)
class EnsembleModel(ModelInfo):
    """The linear model averaged with a small fastText-style network on the same indices.

    The network reduces the indices to ``ft_bits`` bits, sums their embedding rows (inverse
    document frequency folded in at training), divides by the square root of their number, and
    feeds a ReLU hidden layer to a binary output and, optionally, a category head. The score is
    the mean of the two members' probabilities; :meth:`logit` is its log-odds, so windows are
    compared on the ensemble's own scale.
    """

    linear: LinearModel
    ft_bits: int
    embedding: npt.NDArray[np.float32]  # (2**ft_bits, dim)
    hidden_w: npt.NDArray[np.float32]  # (hidden, dim)
    hidden_b: npt.NDArray[np.float32]  # (hidden,)
    out_w: npt.NDArray[np.float32]  # (hidden,)
    out_b: float
    categories: tuple[str, ...] = ()
    category_w: npt.NDArray[np.float32] | None = None  # (K, hidden)
    category_b: npt.NDArray[np.float32] | None = None  # (K,)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bits = self.linear.featurizer.bits
        if not 8 <= self.ft_bits <= bits:
            raise InputError(f"network bits must be 8-{bits}, not {self.ft_bits}")
        if self.embedding.ndim != 2 or self.embedding.shape[0] != 1 << self.ft_bits:
            raise InputError(f"embedding must have shape ({1 << self.ft_bits}, dim)")
        dim = self.embedding.shape[1]
        if self.hidden_w.ndim != 2 or self.hidden_w.shape[1] != dim or dim < 1:
            raise InputError("hidden layer must have shape (hidden, dim)")
        hidden = self.hidden_w.shape[0]
        if hidden < 1 or self.hidden_b.shape != (hidden,) or self.out_w.shape != (hidden,):
            raise InputError("hidden bias and output weights must have one value per unit")
        if self.categories:
            k = len(self.categories)
            cw, cb = self.category_w, self.category_b
            if cw is None or cb is None or cw.shape != (k, hidden) or cb.shape != (k,):
                raise InputError(f"category head must have shape ({k}, {hidden}) with a bias each")

    @property
    def featurizer(self) -> Featurizer:
        return self.linear.featurizer

    def _hidden(self, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        small = _unique(indices >> (self.linear.featurizer.bits - self.ft_bits))
        e = self.embedding[small].sum(axis=0) / np.float32(math.sqrt(len(small)))
        h: npt.NDArray[np.float32] = np.maximum(self.hidden_w @ e + self.hidden_b, 0.0)
        return h

    def _probability(self, indices: npt.NDArray[np.int64]) -> tuple[float, Any]:
        if len(indices) == 0:
            return 0.0, None
        h = self._hidden(indices)
        z_ft = float(self.out_w @ h) + self.out_b
        return (sigmoid(self.linear.logit(indices)) + sigmoid(z_ft)) / 2.0, h

    def window_logits(
        self, flat: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        return np.asarray(
            [self.logit(flat[a:b]) for a, b in itertools.pairwise(offsets.tolist())],
            dtype=np.float64,
        )

    def logit(self, indices: npt.NDArray[np.int64]) -> float:
        p, _ = self._probability(indices)
        p = min(max(p, 1e-15), 1.0 - 1e-15)
        return math.log(p / (1.0 - p))

    def score_indices(self, indices: npt.NDArray[np.int64], *, categorise: bool = True) -> Score:
        p, h = self._probability(indices)
        if h is None or not categorise or self.category_w is None or self.category_b is None:
            return Score(p)
        if not self.categories:
            return Score(p)
        logits = (self.category_w @ h + self.category_b).astype(np.float64)
        return _top_category(p, logits, self.categories)

    def score(self, text: str) -> Score:
        return self.score_indices(self.featurizer.indices(text))


GuardModel = LinearModel | EnsembleModel


def dump_ensemble(model: EnsembleModel) -> bytes:
    """The ensemble as safetensors bytes (deterministic), format ``ENSEMBLE_FORMAT``."""
    tensors: list[tuple[str, npt.NDArray[Any]]] = [
        ("binary.b", np.asarray([model.linear.bias], dtype=np.float32)),
        ("binary.w", model.linear.weights.astype(np.float16)),
        ("ft.emb", model.embedding.astype(np.float16)),
        ("ft.w1", model.hidden_w.astype(np.float32)),
        ("ft.b1", model.hidden_b.astype(np.float32)),
        ("ft.w2", model.out_w.astype(np.float32)),
        ("ft.b2", np.asarray([model.out_b], dtype=np.float32)),
    ]
    if model.categories:
        assert model.category_w is not None
        assert model.category_b is not None
        tensors.append(("category.w", model.category_w.astype(np.float32)))
        tensors.append(("category.b", model.category_b.astype(np.float32)))
    meta = {
        "format": ENSEMBLE_FORMAT,
        "featurizer": json.dumps(model.featurizer.to_dict(), sort_keys=True),
        "ft_bits": str(model.ft_bits),
        "categories": json.dumps(list(model.categories)),
        "model": json.dumps(model.metadata, sort_keys=True),
    }
    return safetensors_bytes(tensors, meta)


def _ensemble(meta: Mapping[str, str], arrays: Mapping[str, npt.NDArray[Any]]) -> Any:
    linear = linear_from(meta, arrays, categories=False)
    cats = json.loads(meta.get("categories", "[]"))
    if not isinstance(cats, list):
        raise ValueError("categories must be a list")
    out_b = _float(arrays, "ft.b2")
    if out_b.shape != (1,):
        raise ValueError("bad ft.b2")
    return EnsembleModel(
        linear=linear,
        ft_bits=int(meta["ft_bits"]),
        embedding=np.ascontiguousarray(_float(arrays, "ft.emb")),
        hidden_w=np.ascontiguousarray(_float(arrays, "ft.w1")),
        hidden_b=_float(arrays, "ft.b1"),
        out_w=_float(arrays, "ft.w2"),
        out_b=float(out_b[0]),
        categories=tuple(str(c) for c in cats),
        category_w=_float_opt(arrays, "category.w"),
        category_b=_float_opt(arrays, "category.b"),
        metadata=linear.metadata,
    )


def parse_guard_model(data: bytes, *, source: str = "model") -> GuardModel | MixedModel:
    """A linear, ensemble or mixed (:mod:`modelseal.guard.bag`) model from safetensors bytes, by
    the file's format tag; a malformed or foreign file raises InputError."""
    from modelseal.guard import bag

    header = _header(data, source)
    meta = dict(header.metadata)
    kind = meta.get("format")
    if kind not in (FORMAT, ENSEMBLE_FORMAT, bag.FORMAT):
        raise InputError(f"{source}: not a modelseal guard model (format {kind!r})")
    arrays = arrays_of(header, data, source)
    try:
        if kind == FORMAT:
            return linear_from(meta, arrays, categories=True)
        if kind == bag.FORMAT:
            return bag.mixed_from(meta, arrays)
        model: EnsembleModel = _ensemble(meta, arrays)
        return model
    except InputError as exc:
        raise InputError(f"{source}: {exc.message}") from None
    except (KeyError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InputError(f"{source}: incomplete guard model: {exc}"[:300]) from None


def parse_ensemble(data: bytes, *, source: str = "model") -> EnsembleModel:
    """An ensemble model from safetensors bytes; anything else raises InputError."""
    model = parse_guard_model(data, source=source)
    if not isinstance(model, EnsembleModel):
        raise InputError(f"{source}: not a modelseal ensemble guard model")
    return model


def windows(length: int, size: int, stride: int) -> Sequence[tuple[int, int]]:
    """``[start, end)`` windows covering ``range(length)``; the last one ends at ``length``."""
    if length <= size:
        return [(0, length)]
    starts = list(range(0, length - size, stride))
    starts.append(length - size)
    return [(s, s + size) for s in starts]
