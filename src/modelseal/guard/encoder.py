"""The harm guard's second stage: a fine-tuned transformer encoder run by ONNX Runtime.

The first stage (the n-gram model and the subword bag of :mod:`modelseal.guard.bag`) is cheap
and scores every window. Where it is unsure, a sentence encoder reads the window as a whole:
all-MiniLM-L6-v2 fine-tuned as a harmful-request classifier (``scripts/guard_encoder.py``),
exported to ONNX with int8 matrices (a scale per output column, int8 arithmetic) and 4-bit
embedding rows (``GatherBlockQuantized``), run on the CPU by ``onnxruntime`` (no torch, no
network). Any ONNX graph of the same signature loads.

* The stage runs on one window per text: the one the first stage scores highest among the
  windows whose first-stage probability is in ``[low, high)`` and that read as English (the
  encoder's vocabulary and fine-tuning data are English; on German, French, Spanish or Chinese
  it would judge the language, not the request): at least ``min_english`` of the window's
  words are English words of the encoder's vocabulary (:func:`english_share`; of the held-out
  and calibration prompts, 95% of the English ones pass at 0.75, 1% of the German, 2% of the
  Spanish, 5% of the French and none of the Chinese).
* There the window's probability becomes ``(1 - weight) * p_first + weight * p_encoder``, with
  ``p_encoder = sigmoid(logit + shift)`` (the shift, picked on the calibration split, puts the
  encoder's scores on the first stage's scale); every other window keeps its first-stage
  probability.
* The encoder reads ``[CLS]`` + the window's first ``max_tokens - 2`` word pieces + ``[SEP]``.

The graph is checked when loaded: one input ``input_ids`` (int64, 1 x tokens) and one output
``logit`` (float32); a file that is not ONNX, or another graph, raises InputError. The
stage's file sits next to the mixed model and is pinned by its SHA-256 in the model's
metadata (``encoder`` entry, :class:`EncoderSettings`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modelseal.errors import InputError
from modelseal.guard.classifier import remember, sigmoid
from modelseal.guard.wordpiece import WordPiece, pre_tokenize

CACHE_CHARS = 4096  # longest window whose logit is kept
CACHE_SIZE = 1024  # windows kept per encoder
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """Where the encoder stage runs and how much it counts (the ``encoder`` metadata entry)."""

    file: str  # the ONNX file, a plain name in the mixed model's folder
    sha256: str  # its SHA-256 (lower-case hex)
    low: float  # the stage runs on windows whose first-stage probability is in [low, high)
    high: float
    weight: float  # the encoder's share of the window's probability there
    max_tokens: int = 64
    min_english: float = 0.75  # share of the window's words that are whole vocabulary words
    shift: float = 0.0  # added to the encoder's logit: puts it on the first stage's scale

    def __post_init__(self) -> None:
        if not _FILE.fullmatch(self.file) or ".." in self.file:
            raise InputError(f"encoder file {self.file!r} must be a plain file name")
        if not _SHA256.fullmatch(self.sha256):
            raise InputError("encoder sha256 must be 64 lower-case hex digits")
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise InputError(f"encoder band [{self.low}, {self.high}) must lie in [0, 1]")
        if not 0.0 <= self.weight <= 1.0:
            raise InputError(f"encoder weight {self.weight} is not in [0, 1]")
        if not 3 <= self.max_tokens <= 512:
            raise InputError(f"encoder max_tokens must be 3-512, not {self.max_tokens}")
        if not 0.0 <= self.min_english <= 1.0:
            raise InputError(f"encoder min_english {self.min_english} is not in [0, 1]")
        if not -20.0 <= self.shift <= 20.0:
            raise InputError(f"encoder shift {self.shift} is not in [-20, 20]")

    @classmethod
    def from_json(cls, text: str) -> EncoderSettings:
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise InputError("encoder settings are not JSON") from None
        if not isinstance(obj, dict):
            raise InputError("encoder settings must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(obj) - known)
        if unknown:
            raise InputError(f"unknown encoder settings: {', '.join(map(str, unknown))}")
        try:
            return cls(
                file=str(obj["file"]),
                sha256=str(obj["sha256"]),
                low=float(obj["low"]),
                high=float(obj["high"]),
                weight=float(obj["weight"]),
                max_tokens=int(obj.get("max_tokens", 64)),
                min_english=float(obj.get("min_english", 0.75)),
                shift=float(obj.get("shift", 0.0)),
            )
        except KeyError as exc:
            raise InputError(f"encoder settings lack {exc.args[0]!r}") from None
        except (TypeError, ValueError, OverflowError):
            raise InputError("encoder settings must be numbers and strings") from None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def english_share(wordpiece: WordPiece, text: str) -> float:
    """The share of ``text``'s words that are English words of the vocabulary: ASCII letters
    only and whole vocabulary entries. Words are the tokenizer's (lower-cased, accents
    stripped), those with a letter, except single ASCII letters (so letter-spaced "h o w t o"
    has none); each CJK character is a word, never an English one, and so is a word that mixes
    in digits ("h4ck"). 0 for a text without words."""
    known = wordpiece.index
    words = [
        w
        for w, _ in pre_tokenize(text)
        if not (len(w) == 1 and w.isascii()) and any(c.isalpha() for c in w)
    ]
    if not words:
        return 0.0
    return sum(w.isascii() and w.isalpha() and w in known for w in words) / len(words)


@dataclass(eq=False)
class EncoderModel:
    """An ONNX classifier over word-piece ids (see the module docstring)."""

    data: bytes = field(repr=False)
    wordpiece: WordPiece
    settings: EncoderSettings
    threads: int = 1
    source: str = "encoder"
    _cache: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - a declared dependency
            raise InputError(f"{self.source}: the encoder stage needs onnxruntime") from None
        vocab = self.wordpiece.index
        if "[CLS]" not in vocab or "[SEP]" not in vocab:
            raise InputError(f"{self.source}: the vocabulary lacks [CLS] or [SEP]")
        self._cls, self._sep = vocab["[CLS]"], vocab["[SEP]"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4  # fatal only: a failed run is an InputError, not a log line
        try:
            self._session = ort.InferenceSession(
                self.data,
                sess_options=opts,
                providers=["CPUExecutionProvider"],
                enable_fallback=0,  # no retry on the same provider, and no "EP Error" print
            )
        except _ort_errors() as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{self.source}: not a loadable ONNX encoder: {first}"[:300]) from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        try:
            fits = (
                [i.name for i in inputs] == ["input_ids"]
                and inputs[0].type == "tensor(int64)"
                and len(inputs[0].shape) == 2
                and [o.name for o in outputs] == ["logit"]
                and outputs[0].type == "tensor(float)"
            )
        except UnicodeDecodeError:  # a name or dimension that is not UTF-8
            fits = False
        if not fits:
            raise InputError(
                f"{self.source}: the encoder must take 'input_ids' (int64, 1 x tokens) and give "
                "'logit' (float)"
            )
        self.data = b""  # the session holds the graph

    def logit(self, text: str) -> float:
        """The encoder's logit for ``text`` (kept for the next time it is asked)."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        ids, _ = self.wordpiece.encode(text, self.settings.max_tokens - 2)
        row = np.empty((1, len(ids) + 2), dtype=np.int64)
        row[0, 0], row[0, 1:-1], row[0, -1] = self._cls, ids, self._sep
        try:
            out = self._session.run(["logit"], {"input_ids": row})[0]
            values = np.asarray(out, dtype=np.float64).reshape(-1)
        except _ort_errors() as exc:  # a graph that loads but cannot run this input
            raise InputError(f"{self.source}: the encoder failed: {exc}"[:300]) from None
        if values.size != 1:
            raise InputError(f"{self.source}: the encoder gave {values.size} values, not one logit")
        z = float(values[0])
        if not np.isfinite(z):
            raise InputError(f"{self.source}: the encoder gave a non-finite logit")
        remember(self._cache, text, z, CACHE_CHARS, CACHE_SIZE)
        return z

    def probability(self, text: str) -> float:
        """``sigmoid(logit + shift)``: the encoder's probability on the first stage's scale."""
        return sigmoid(self.logit(text) + self.settings.shift)

    def reads(self, text: str) -> bool:
        """Whether ``text`` reads as English enough for the encoder (see ``min_english``)."""
        return english_share(self.wordpiece, text) >= self.settings.min_english


def _ort_errors() -> tuple[type[BaseException], ...]:
    """What onnxruntime raises for a bad graph or a failed run: its own exception classes
    (InvalidProtobuf, InvalidGraph, Fail, ...) and Python's for bad arguments."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    own = tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))
    return (*own, RuntimeError, ValueError, TypeError)


def settings_of(meta: Mapping[str, Any]) -> EncoderSettings | None:
    """The encoder settings a model's metadata names, if any."""
    raw = meta.get("encoder")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InputError("encoder settings must be a JSON string")
    return EncoderSettings.from_json(raw)
