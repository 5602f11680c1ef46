"""Guards backed by the trained classifiers in :mod:`modelseal.guard.classifier`.

One :class:`TrainedGuard` wraps one model and turns its probability into a finding:

* the text is prepared and hashed once (normalised, lower-cased, single-spaced; see
  :class:`~modelseal.guard.classifier.TextFeatures`), then scored in windows of
  ``WINDOW`` characters with ``WINDOW_STRIDE`` overlap, so an attack at the end of a long prompt
  is judged on its own window instead of being diluted by the rest; the score is the highest
  window's;
* encoded payloads (base64, hex, percent-encoding, rot13; see :mod:`modelseal.guard.decode`) are
  decoded and scored too, so wrapping an attack does not hide it, and so is a leetspeak reading
  of the text ("h0w 70 m4k3 4 b0mb") when two or more words mix letters with leet digits, and
  letter-spaced runs ("t e l l m e h o w ...") read back as words
  (:mod:`modelseal.guard.segment`);
* ``score >= threshold`` gives a finding with ``action`` (block by default), ``flag_threshold``
  (optional, lower) gives a ``flag`` finding; the category is the model's own label for binary
  guards, or the top hazard class (``S1``-``S14``) for a model with a category head.

Findings judge the window as a whole: ``start = end = -1`` and a detail that never quotes text.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from modelseal.errors import InputError
from modelseal.guard.bag import MixedModel, logit
from modelseal.guard.base import STAGES, Action, Finding, Stage
from modelseal.guard.classifier import (
    Featurizer,
    GuardModel,
    TextFeatures,
    parse_guard_model,
    prepare,
    sigmoid,
    windows,
)
from modelseal.guard.decode import decoded_variants
from modelseal.guard.segment import LEET, despaced

WINDOW = 512
WINDOW_STRIDE = 256
MAX_WINDOWS = 256  # beyond this the stride grows (up to the window: no gaps), bounding the work
SMALL_WINDOW = 96  # the start and end of long texts are also scored in these, so one
SMALL_STRIDE = 48  # sentence before or after a long document is not diluted
SMALL_EDGE = 4096  # how much of each end gets the small windows
STREAM_CONTEXT = 256  # characters of earlier text kept with each new piece of a stream

Variants = Callable[[str], Iterable[str]]


# a word that mixes letters with the digits leetspeak uses ("h4ck", "b0mb", "m4k3")
_LEET_WORD = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[0134578@])\w{2,}\b")


def unleet(text: str) -> str | None:
    """``text`` with leetspeak digits read as letters, when at least two words use them."""
    words = _LEET_WORD.findall(text)
    if len(words) < 2 or all(w.isdigit() for w in words):
        return None
    return text.translate(LEET)


def payload_variants(text: str) -> list[str]:
    """The other readings of ``text`` a trained guard also scores: decoded payloads, the
    leetspeak reading and the letter-spaced runs read back as words."""
    out = [d.text for d in decoded_variants(text)]
    plain = unleet(text)
    if plain is not None:
        out.append(plain)
    joined = despaced(text)
    if joined is not None:
        out.append(joined)
    return out


def _default_variants() -> Variants | None:
    return payload_variants


class TrainedGuard:
    """A guard from a trained model (see the module docstring)."""

    def __init__(
        self,
        model: GuardModel | MixedModel,
        *,
        name: str | None = None,
        threshold: float | None = None,
        flag_threshold: float | None = None,
        action: Action = "block",
        stages: Iterable[str] | None = None,
        category: str | None = None,
        decode: bool = True,
        digest: str = "",
        system_messages: bool = False,
        variant: str = "",
    ) -> None:
        self.model = model
        meta = model.metadata
        if isinstance(model, MixedModel) and model.encoder_settings and model.encoder is None:
            raise InputError(
                f"model {model.name!r} has a second stage ({model.encoder_settings.file}) that "
                "is not loaded (load the model with load_guard_file)"
            )
        self._name = name or model.name
        try:
            shipped = float(meta.get("threshold", 0.5))
            self.window = int(meta.get("window", WINDOW))
            self.stride = int(meta.get("window_stride", WINDOW_STRIDE))
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"model {model.name!r}: bad threshold or window settings") from None
        if not 0.0 <= shipped <= 1.0:
            raise InputError(f"model {model.name!r}: threshold {shipped} is not in [0, 1]")
        if not 16 <= self.window <= 1 << 16 or not 1 <= self.stride <= self.window:
            raise InputError(
                f"model {model.name!r}: window {self.window} / stride {self.stride} must satisfy "
                "16 <= window <= 65536 and 1 <= stride <= window"
            )
        self.threshold = float(threshold if threshold is not None else shipped)
        self.flag_threshold = flag_threshold
        if flag_threshold is not None and flag_threshold > self.threshold:
            raise InputError("flag_threshold must not be above threshold")
        self.action: Action = action
        stage = str(meta.get("stage", "input"))
        if stage not in STAGES:
            raise InputError(f"model {model.name!r}: unknown stage {stage!r}")
        self._stages = frozenset(stages) if stages is not None else frozenset({stage})
        self.category = category or str(meta.get("category", model.name))
        self._variants = _default_variants() if decode else None
        self.digest = digest
        # an operator's system prompt ("You are a helpful assistant") is not an attack
        self.checks_system = system_messages
        version = model.version or "0"
        self._version = f"{version}+{digest[:12]}" if digest else version
        if variant:  # how this guard runs the file, when not as shipped ("first-stage")
            self._version += f"+{variant}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def stages(self) -> frozenset[str]:
        return self._stages

    @property
    def max_span(self) -> int:
        return STREAM_CONTEXT

    def _spans(self, length: int) -> list[tuple[int, int]]:
        stride = self.stride
        if length > self.window and (length - self.window) // stride + 2 > MAX_WINDOWS:
            stride = min(self.window, -(-(length - self.window) // (MAX_WINDOWS - 1)))
        spans = list(windows(length, self.window, stride))
        if length > self.window:
            edge = min(length, SMALL_EDGE)
            spans.extend(windows(edge, SMALL_WINDOW, SMALL_STRIDE))
            if length > edge:
                tail = length - edge
                spans.extend(
                    (tail + a, tail + b) for a, b in windows(edge, SMALL_WINDOW, SMALL_STRIDE)
                )
        return spans

    def _best(self, text: str) -> tuple[float, npt.NDArray[np.int64]]:
        """The highest window logit of ``text`` and that window's features. For a mixed model
        (n-gram + subword bag) the n-gram model ranks the windows and the mixture scores the
        ``top_windows`` best of them."""
        prepared = _prepared(text)
        feats = self.model.featurizer
        spans = self._spans(len(prepared))
        mixed = self.model if isinstance(self.model, MixedModel) else None
        if len(spans) == 1:
            idx = _short_indices(feats, prepared)
            z = self.model.logit(idx)
            if mixed is not None:
                z = logit(mixed.mix([z], [prepared])[0])
            return z, idx
        # hashed once; every window's features and logit in a few array operations
        flat, off = TextFeatures(feats, prepared).windows(spans)
        zs = self.model.window_logits(flat, off)
        if mixed is not None:
            top = heapq.nlargest(mixed.top_windows, range(len(spans)), key=zs.__getitem__)
            probs = mixed.mix(
                [float(zs[w]) for w in top], [prepared[spans[w][0] : spans[w][1]] for w in top]
            )
            i = top[max(range(len(top)), key=probs.__getitem__)]
            return logit(max(probs)), flat[off[i] : off[i + 1]]
        i = int(np.argmax(zs))  # the first of equal maxima, as a strict ">" scan keeps
        return float(zs[i]), flat[off[i] : off[i + 1]]

    def _top(self, text: str) -> tuple[float, npt.NDArray[np.int64]]:
        best = self._best(text)
        if self._variants is not None:
            for variant in _variants(self._variants, text):
                candidate = self._best(variant)
                if candidate[0] > best[0]:
                    best = candidate
        return best

    def _probability(self, z: float, idx: npt.NDArray[np.int64]) -> float:
        if isinstance(self.model, MixedModel):
            return sigmoid(z)
        return self.model.score_indices(idx, categorise=False).probability

    def score(self, text: str) -> tuple[float, str]:
        """The highest probability over the windows and decoded payloads, and its category."""
        z, idx = self._top(text)
        scored = self.model.score_indices(idx)
        return self._probability(z, idx), scored.category or self.category

    def check(self, text: str, stage: Stage) -> list[Finding]:
        findings, _ = self.check_scored(text, stage)
        return findings

    def check_scored(self, text: str, stage: Stage) -> tuple[list[Finding], float]:
        if not text.strip():
            return [], 0.0
        z, idx = self._top(text)
        # the category head runs only for a finding
        p = self._probability(z, idx)
        lowest = self.threshold if self.flag_threshold is None else self.flag_threshold
        if p < lowest:
            return [], p
        scored = self.model.score_indices(idx)
        category = scored.category or self.category
        if p >= self.threshold:
            action = self.action
            limit = self.threshold
        elif self.flag_threshold is not None and p >= self.flag_threshold:
            action, limit = "flag", self.flag_threshold
        else:
            return [], p
        detail = f"{self.model.metadata.get('title', self.name)}: score at or above {limit:g}"
        return [Finding(self.name, category, action, detail, score=round(p, 4))], p


# Several guards read the same texts (every input classifier sees every prompt): the prepared
# form, the decoded variants and the features of short texts are computed once and kept for
# the next guard. Only texts up to CACHE_CHARS are kept, so the caches stay small.
CACHE_CHARS = 4096


@lru_cache(maxsize=512)
def _prepared_cached(text: str) -> str:
    return prepare(text)


def _prepared(text: str) -> str:
    return _prepared_cached(text) if len(text) <= CACHE_CHARS else prepare(text)


@lru_cache(maxsize=512)
def _variants_cached(variants: Variants, text: str) -> tuple[str, ...]:
    return tuple(variants(text))


def _variants(variants: Variants, text: str) -> Iterable[str]:
    if len(text) <= CACHE_CHARS:
        return _variants_cached(variants, text)
    return variants(text)


@lru_cache(maxsize=1024)
def _short_indices(featurizer: Featurizer, prepared: str) -> npt.NDArray[np.int64]:
    idx = featurizer.prepared_indices(prepared)
    idx.flags.writeable = False  # shared between guards: nobody may change it
    return idx


def load_guard_file(
    path: str | Path, *, second_stage: bool = True, **options: object
) -> TrainedGuard:
    """A guard from a model file (linear, ensemble or mixed, by its format tag), its version
    pinned to the file's SHA-256; a mixed model's second stage is loaded from the same folder
    (its SHA-256 checked against the one the model file names). ``second_stage=False`` runs the
    first stage alone (same threshold: training keeps it where the first stage put it; the
    version then ends in ``+first-stage``); models without a second stage ignore it."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read guard model {p}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    model = parse_guard_model(data, source=str(p))
    if isinstance(model, MixedModel) and model.encoder_settings is not None:
        if second_stage:
            model.attach_encoder(p.parent, source=str(p))
        else:
            model.encoder_settings = None
            options = {**options, "variant": "first-stage"}
    return TrainedGuard(model, digest=digest, **options)  # type: ignore[arg-type]
