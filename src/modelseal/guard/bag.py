"""A subword bag next to the n-gram model: pretrained word knowledge at lookup cost.

The n-gram model (:mod:`modelseal.guard.classifier`) knows only the words of its training texts.
The subword bag brings what a pretrained sentence encoder knows about words it never saw in
training ("tabun", "Khmer Rouge", "hoax"), without running the encoder:

* the text is cut into WordPiece tokens (:mod:`modelseal.guard.wordpiece`) with the encoder's
  own vocabulary;
* each token is looked up in an embedding table that training built from the encoder (every
  vocabulary token passed through it alone, projected onto the leading principal components,
  then fine-tuned with the classifier: ``scripts/guard_encoder.py``); the rows are int8 with a
  scale per row;
* the mean of the rows feeds a ReLU layer and a logistic output.

:class:`MixedModel` pairs the bag with an n-gram model. The n-gram model scores every window and
owns the category head; the bag scores the ``top_windows`` windows the n-gram model ranks
highest (bounding the work on long texts), and a window's probability is
``weight * p_ngram + (1 - weight) * p_bag``. A mixed model may name a second stage, a fine-tuned
encoder (:mod:`modelseal.guard.encoder`) that re-reads the windows the mixture is unsure of.

File format ``modelseal-guard-mixed/1``: the linear model's tensors (``binary.*``,
``category.*``) plus ``bag.vocab`` (U8: the vocabulary, newline-separated UTF-8), ``bag.emb``
(I8, vocab x dim), ``bag.scale`` (F32, vocab), ``bag.w1`` (F32, hidden x dim), ``bag.b1``,
``bag.w2`` (F32, hidden), ``bag.b2``; or, for 4-bit rows, ``bag.emb4`` (U8, vocab x dim/2:
:func:`pack4`) in place of ``bag.emb``; settings in the ``bag`` metadata entry; the second
stage's file, digest and settings, if any, in the ``encoder`` entry.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelseal.errors import InputError
from modelseal.guard import classifier
from modelseal.guard.classifier import (
    Featurizer,
    LinearModel,
    ModelInfo,
    Score,
    remember,
    sigmoid,
)
from modelseal.guard.encoder import EncoderModel, EncoderSettings, settings_of
from modelseal.guard.wordpiece import WordPiece

FORMAT = "modelseal-guard-mixed/1"
CACHE_CHARS = 4096  # longest text whose bag logit is kept
CACHE_SIZE = 1024  # texts kept per bag
MAX_ENCODED = 1  # windows per text the second stage re-reads (one run: p99 stays within 10 ms)


def logit(p: float) -> float:
    p = min(max(p, 1e-15), 1.0 - 1e-15)
    return math.log(p / (1.0 - p))


@dataclass(slots=True, eq=False)
class SubwordBag:
    """Mean of subword embeddings -> ReLU layer -> logistic output (see the module docstring)."""

    wordpiece: WordPiece
    table: npt.NDArray[np.int8]  # (vocab, dim): a row per token, int8 ...
    scale: npt.NDArray[np.float32]  # (vocab,): ... times its scale (kept int8 in memory too)
    hidden_w: npt.NDArray[np.float32]  # (hidden, dim)
    hidden_b: npt.NDArray[np.float32]  # (hidden,)
    out_w: npt.NDArray[np.float32]  # (hidden,)
    out_b: float
    max_tokens: int = 256
    bits: int = 8  # the file's table: int8 rows, or 4-bit ones (values -7..7, two per byte)
    # a conversation re-sends its earlier messages with every turn: a window's logit is kept
    # (texts up to CACHE_CHARS; up to CACHE_SIZE of them, then the cache starts over). Kept on
    # the bag, so it goes with the model (a module-wide cache would keep every model alive).
    _cache: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if (
            self.table.ndim != 2
            or self.table.dtype != np.int8
            or self.table.shape[0] != len(self.wordpiece)
        ):
            raise InputError(
                f"bag table must be int8 with one row per vocabulary token ({len(self.wordpiece)})"
            )
        if self.scale.shape != (self.table.shape[0],):
            raise InputError("bag scale must have one value per table row")
        if self.bits not in (4, 8):
            raise InputError(f"bag table bits must be 4 or 8, not {self.bits}")
        if self.bits == 4 and (
            self.table.shape[1] % 2
            or self.table.min(initial=0) < -8
            or self.table.max(initial=0) > 7
        ):
            raise InputError("a 4-bit bag table needs an even width and values in -8..7")
        dim = self.table.shape[1]
        if dim < 1 or self.hidden_w.ndim != 2 or self.hidden_w.shape[1] != dim:
            raise InputError("bag hidden layer must have shape (hidden, dim)")
        hidden = self.hidden_w.shape[0]
        if hidden < 1 or self.hidden_b.shape != (hidden,) or self.out_w.shape != (hidden,):
            raise InputError("bag hidden bias and output weights must have one value per unit")
        if not 1 <= self.max_tokens <= 1 << 16:
            raise InputError(f"bag max_tokens must be 1-65536, not {self.max_tokens}")

    def logits(self, texts: list[str]) -> npt.NDArray[np.float64]:
        """The output logit of each text (a text without tokens has the bias's logit)."""
        dim = self.table.shape[1]
        pooled = np.zeros((len(texts), dim), dtype=np.float32)
        for i, text in enumerate(texts):
            ids, _ = self.wordpiece.encode(text, self.max_tokens)
            if len(ids):
                rows = self.table[ids].astype(np.float32) * self.scale[ids, None]
                pooled[i] = rows.mean(axis=0)
        h = np.maximum(pooled @ self.hidden_w.T + self.hidden_b, 0.0)
        out: npt.NDArray[np.float64] = (h @ self.out_w + self.out_b).astype(np.float64)
        return out

    @classmethod
    def from_float(
        cls,
        wordpiece: WordPiece,
        embedding: npt.NDArray[np.float32],
        hidden_w: npt.NDArray[np.float32],
        hidden_b: npt.NDArray[np.float32],
        out_w: npt.NDArray[np.float32],
        out_b: float,
        max_tokens: int = 256,
        bits: int = 8,
    ) -> SubwordBag:
        """A bag from a float embedding table, quantised as it is shipped (``bits`` 8 or 4)."""
        table, scale = quantise(embedding, bits)
        return cls(wordpiece, table, scale, hidden_w, hidden_b, out_w, out_b, max_tokens, bits)

    @property
    def embedding(self) -> npt.NDArray[np.float32]:
        """The whole table dequantised (for inspection; scoring reads only the rows it needs)."""
        out: npt.NDArray[np.float32] = self.table.astype(np.float32) * self.scale[:, None]
        return out

    def logit(self, text: str) -> float:
        """The output logit of one text, kept for the next time it is asked."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        z = float(self.logits([text])[0])
        remember(self._cache, text, z, CACHE_CHARS, CACHE_SIZE)
        return z

    def probability(self, text: str) -> float:
        return sigmoid(self.logit(text))


@dataclass(slots=True)
class MixedModel(ModelInfo):
    """An n-gram model and a subword bag, their probabilities mixed per window."""

    base: LinearModel
    bag: SubwordBag
    weight: float = 0.5  # the n-gram model's share
    top_windows: int = 8
    metadata: dict[str, Any] = field(default_factory=dict)
    # the second stage: named by the file (settings), loaded beside it (attach_encoder)
    encoder_settings: EncoderSettings | None = None
    encoder: EncoderModel | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise InputError(f"mixture weight {self.weight} is not in [0, 1]")
        if not 1 <= self.top_windows <= 4096:
            raise InputError(f"top_windows must be 1-4096, not {self.top_windows}")

    @property
    def featurizer(self) -> Featurizer:
        return self.base.featurizer

    @property
    def categories(self) -> tuple[str, ...]:
        return self.base.categories

    def logit(self, indices: npt.NDArray[np.int64]) -> float:
        """The n-gram model's logit (it ranks the windows)."""
        return self.base.logit(indices)

    def window_logits(
        self, flat: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        return self.base.window_logits(flat, offsets)

    def mix(self, ngram_logits: list[float], texts: list[str]) -> list[float]:
        """The probability of windows given their n-gram logits and texts: the mixture, then
        the second stage (if attached) on the windows it re-reads."""
        w = self.weight
        probs = [
            w * sigmoid(z) + (1.0 - w) * sigmoid(self.bag.logit(t))
            for z, t in zip(ngram_logits, texts, strict=True)
        ]
        return self.refine(probs, texts)

    def refine(self, probs: list[float], texts: list[str]) -> list[float]:
        """``probs`` with the second stage applied: to the (up to ``MAX_ENCODED``) highest
        windows whose probability is in the stage's band and that it can read, the probability
        becomes ``(1 - weight) * p + weight * p_encoder``."""
        enc = self.encoder
        if enc is None:
            return probs
        s = enc.settings
        out = list(probs)
        done = 0
        for i in sorted(range(len(probs)), key=lambda j: -probs[j]):
            if done == MAX_ENCODED or probs[i] < s.low:
                break
            if probs[i] < s.high and enc.reads(texts[i]):
                out[i] = (1.0 - s.weight) * probs[i] + s.weight * enc.probability(texts[i])
                done += 1
        return out

    def attach_encoder(self, folder: Path, *, source: str = "model") -> None:
        """Load the second stage the file names from ``folder``, checking its SHA-256."""
        s = self.encoder_settings
        if s is None:
            return
        path = folder / s.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(
                f"{source}: cannot read its encoder {path}: {exc.strerror or exc}"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != s.sha256:
            raise InputError(
                f"{source}: encoder {path} has SHA-256 {digest[:16]}..., the model names "
                f"{s.sha256[:16]}... (a different or damaged file)"
            )
        self.encoder = _encoder(data, self.bag.wordpiece, s, str(path))

    def score_indices(self, indices: npt.NDArray[np.int64], *, categorise: bool = True) -> Score:
        """The n-gram model's score and category (the bag has no category head)."""
        return self.base.score_indices(indices, categorise=categorise)

    def score(self, text: str) -> Score:
        """The mixed probability of ``text`` as one window, with the n-gram model's category."""
        prepared = classifier.prepare(text)
        idx = self.base.featurizer.prepared_indices(prepared)
        p = self.mix([self.base.logit(idx)], [prepared])[0]
        scored = self.base.score_indices(idx)
        return Score(p, scored.category, scored.category_probability)


_ENCODERS: dict[tuple[str, EncoderSettings, WordPiece], EncoderModel] = {}
ENCODERS_KEPT = 2


def _encoder(
    data: bytes, wordpiece: WordPiece, settings: EncoderSettings, source: str
) -> EncoderModel:
    """One session per encoder file (by digest and settings), shared by every model loaded with
    it: an ONNX Runtime session holds tens of MB, and each guard pipeline (a gateway reload, a
    test) loads the harm model again. Bounded: the last ``ENCODERS_KEPT`` are kept."""
    key = (settings.sha256, settings, wordpiece)
    hit = _ENCODERS.get(key)
    if hit is None:
        hit = EncoderModel(data, wordpiece, settings, source=source)
        while len(_ENCODERS) >= ENCODERS_KEPT:
            del _ENCODERS[next(iter(_ENCODERS))]
        _ENCODERS[key] = hit
    return hit


# ----------------------------------------------------------------------------- file format


def quantise(
    embedding: npt.NDArray[np.float32], bits: int = 8
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Rows as int8 with a float32 scale each (absolute maximum -> 127; with ``bits=4``,
    -> 7: values -7..7, stored two per byte by :func:`pack4`)."""
    top = 127.0 if bits == 8 else 7.0
    scale = np.abs(embedding).max(axis=1) / top
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(embedding / scale[:, None]), -top, top).astype(np.int8)
    return q, scale


def pack4(table: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """A table of values -8..7 (even width) as bytes: column 2k in the low nibble, 2k + 1 in
    the high one, each stored + 8."""
    t = (table.astype(np.int16) + 8).astype(np.uint8)
    out: npt.NDArray[np.uint8] = (t[:, 0::2] | (t[:, 1::2] << 4)).astype(np.uint8)
    return out


def unpack4(packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.int8]:
    """:func:`pack4` undone: values -8..7, twice the width."""
    out = np.empty((packed.shape[0], 2 * packed.shape[1]), dtype=np.int8)
    out[:, 0::2] = (packed & 15).astype(np.int8) - 8
    out[:, 1::2] = (packed >> 4).astype(np.int8) - 8
    return out


def dump_mixed(model: MixedModel) -> bytes:
    """The mixed model as safetensors bytes (deterministic), format ``FORMAT``."""
    tensors, meta = classifier.linear_tensors(model.base)
    vocab = "\n".join(model.bag.wordpiece.vocab).encode("utf-8")
    at = 1 + max(i for i, (name, _) in enumerate(tensors) if name.startswith("binary."))
    tensors[at:at] = [  # after binary.*, before category.*: the layout of the shipped files
        ("bag.vocab", np.frombuffer(vocab, dtype=np.uint8)),
        ("bag.emb4", pack4(model.bag.table))
        if model.bag.bits == 4
        else ("bag.emb", model.bag.table),
        ("bag.scale", model.bag.scale.astype(np.float32)),
        ("bag.w1", model.bag.hidden_w.astype(np.float32)),
        ("bag.b1", model.bag.hidden_b.astype(np.float32)),
        ("bag.w2", model.bag.out_w.astype(np.float32)),
        ("bag.b2", np.asarray([model.bag.out_b], dtype=np.float32)),
    ]
    settings = {
        "weight": model.weight,
        "top_windows": model.top_windows,
        "max_tokens": model.bag.max_tokens,
    }
    meta["format"] = FORMAT
    meta["bag"] = json.dumps(settings, sort_keys=True)
    if model.encoder_settings is not None:
        meta["encoder"] = model.encoder_settings.to_json()
    meta["model"] = json.dumps(model.metadata, sort_keys=True)
    return classifier.safetensors_bytes(tensors, meta)


@lru_cache(maxsize=4)
def _wordpiece(data: bytes) -> WordPiece:
    """One tokenizer per distinct vocabulary, shared by every model loaded with it (a reloaded
    guard config does not parse 30k entries again; the word cache is shared too)."""
    return WordPiece.parse(data, source="bag.vocab")


def mixed_from(meta: Mapping[str, str], arrays: Mapping[str, npt.NDArray[Any]]) -> MixedModel:
    """A mixed model from a parsed file's metadata and tensors (KeyError/ValueError if
    incomplete; the caller turns those into InputError)."""
    base = classifier.linear_from(meta, arrays, categories=True)
    settings = json.loads(meta["bag"])
    if not isinstance(settings, dict):
        raise ValueError("bag settings must be an object")
    vocab = arrays["bag.vocab"]
    if vocab.dtype != np.uint8 or vocab.ndim != 1:
        raise ValueError("bag.vocab must be a U8 vector")
    wordpiece = _wordpiece(vocab.tobytes())
    bits = 4 if "bag.emb4" in arrays else 8
    if bits == 4:
        if "bag.emb" in arrays:
            raise ValueError("a bag has bag.emb or bag.emb4, not both")
        packed = arrays["bag.emb4"]
        if packed.dtype != np.uint8 or packed.ndim != 2:
            raise ValueError("bag.emb4 must be a U8 matrix")
        emb = unpack4(packed)
    else:
        emb = arrays["bag.emb"]
    scale = arrays["bag.scale"]
    if emb.dtype != np.int8 or scale.dtype != np.float32:
        raise ValueError("bag.emb must be I8 and bag.scale F16 or F32")
    if emb.ndim != 2 or scale.shape != (emb.shape[0],):
        raise ValueError("bag.scale must have one value per bag.emb row")
    out_b = arrays["bag.b2"]
    if out_b.shape != (1,):
        raise ValueError("bad bag.b2")
    bag = SubwordBag(
        wordpiece=wordpiece,
        table=np.array(emb),  # a copy: the file's bytes need not stay in memory
        scale=np.ascontiguousarray(scale),
        hidden_w=np.ascontiguousarray(arrays["bag.w1"], dtype=np.float32),
        hidden_b=np.asarray(arrays["bag.b1"], dtype=np.float32),
        out_w=np.asarray(arrays["bag.w2"], dtype=np.float32),
        out_b=float(out_b[0]),
        max_tokens=int(settings.get("max_tokens", 256)),
        bits=bits,
    )
    return MixedModel(
        base=base,
        bag=bag,
        weight=float(settings["weight"]),
        top_windows=int(settings["top_windows"]),
        metadata=base.metadata,
        encoder_settings=settings_of(meta),
    )
