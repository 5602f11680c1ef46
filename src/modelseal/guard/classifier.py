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
the featuriser settings, category names, thresholds and metrics are JSON strings in the file's
``__metadata__``. :func:`load_model` validates the header with the defensive parser in
:mod:`modelseal.formats.safetensors` before touching a byte of data: a guard model is scanned like
any other model file.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelseal.errors import InputError
from modelseal.formats.safetensors import SafetensorsError, parse_header_bytes
from modelseal.guard.text import fold_case_and_space, normalise

FORMAT = "modelseal-guard-linear/1"

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
                h = codes[: length - n + 1].copy()
                for k in range(1, n):
                    h = h * _PRIME + codes[k : length - n + 1 + k]
                h ^= np.uint64((_SALT_CHAR * n) & _MASK64)
                parts.append(h)
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
        return np.unique(reduced.astype(np.int64))

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


@dataclass(frozen=True, slots=True)
class Score:
    """A model's result on one text: probability of the positive class and the top category."""

    probability: float
    category: str = ""
    category_probability: float = 0.0


@dataclass(slots=True)
class LinearModel:
    """A binary logistic head, optionally with a multinomial category head, over hashed features."""

    featurizer: Featurizer
    weights: npt.NDArray[np.float32]
    bias: float
    categories: tuple[str, ...] = ()
    category_bits: int = 0
    category_weights: npt.NDArray[np.float32] | None = None
    category_bias: npt.NDArray[np.float32] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
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

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "classifier"))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

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
        logits = logits - logits.max()
        probs = np.exp(logits)
        probs /= probs.sum()
        top = int(probs.argmax())
        return Score(p, self.categories[top], float(probs[top]))

    def score(self, text: str) -> Score:
        return self.score_indices(self.featurizer.indices(text))


# ----------------------------------------------------------------------------- file format


def _tensor_bytes(array: npt.NDArray[Any]) -> tuple[str, bytes]:
    if array.dtype == np.float16:
        return "F16", array.astype("<f2").tobytes()
    return "F32", array.astype("<f4").tobytes()


def dump_model(model: LinearModel) -> bytes:
    """The model as safetensors bytes (deterministic: same model, same bytes)."""
    tensors: list[tuple[str, npt.NDArray[Any]]] = [
        ("binary.b", np.asarray([model.bias], dtype=np.float32)),
        ("binary.w", model.weights.astype(np.float16)),
    ]
    if model.categories:
        assert model.category_weights is not None
        assert model.category_bias is not None
        tensors.append(("category.b", model.category_bias.astype(np.float32)))
        tensors.append(("category.w", model.category_weights.astype(np.float16)))
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
    meta = {
        "format": FORMAT,
        "featurizer": json.dumps(model.featurizer.to_dict(), sort_keys=True),
        "categories": json.dumps(list(model.categories)),
        "category_bits": str(model.category_bits),
        "model": json.dumps(model.metadata, sort_keys=True),
    }
    header["__metadata__"] = meta
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def parse_model(data: bytes, *, source: str = "model") -> LinearModel:
    """A model from safetensors bytes; a malformed or foreign file raises InputError."""
    try:
        header = parse_header_bytes(data)
    except SafetensorsError as exc:
        raise InputError(f"{source}: not a valid safetensors file: {exc}") from None
    meta = dict(header.metadata)
    if meta.get("format") != FORMAT:
        raise InputError(f"{source}: not a modelseal guard model (format {meta.get('format')!r})")
    arrays: dict[str, npt.NDArray[np.float32]] = {}
    for t in header.tensors:
        dtype = _DTYPES.get(t.dtype)
        if dtype is None:
            raise InputError(f"{source}: tensor {t.name!r} has unsupported dtype {t.dtype}")
        start = header.data_start + t.begin
        arr = np.frombuffer(
            data, dtype=np.dtype(dtype).newbyteorder("<"), count=t.numel, offset=start
        )
        arrays[t.name] = arr.reshape(t.shape).astype(np.float32)
    try:
        featurizer = Featurizer.from_dict(json.loads(meta["featurizer"]))
        cats = json.loads(meta.get("categories", "[]"))
        if not isinstance(cats, list):
            raise ValueError("categories must be a list")
        categories = tuple(str(c) for c in cats)
        category_bits = int(meta.get("category_bits", "0"))
        metadata = json.loads(meta.get("model", "{}"))
        bias_arr = arrays["binary.b"]
        weights = arrays["binary.w"]
        if bias_arr.shape != (1,) or not isinstance(metadata, dict):
            raise ValueError("bad binary.b or metadata")
        return LinearModel(
            featurizer=featurizer,
            weights=np.ascontiguousarray(weights),
            bias=float(bias_arr[0]),
            categories=categories,
            category_bits=category_bits,
            category_weights=arrays.get("category.w"),
            category_bias=arrays.get("category.b"),
            metadata=metadata,
        )
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


def windows(length: int, size: int, stride: int) -> Sequence[tuple[int, int]]:
    """``[start, end)`` windows covering ``range(length)``; the last one ends at ``length``."""
    if length <= size:
        return [(0, length)]
    starts = list(range(0, length - size, stride))
    starts.append(length - size)
    return [(s, s + size) for s in starts]
