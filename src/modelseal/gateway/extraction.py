"""Distillation / extraction defence: per-subject traffic statistics and a risk score.

Harvesting a model's answers at scale to train another model leaves traces a gateway can see
without reading any logits: many single-turn requests, prompts that sweep a template or cover
topics far more evenly than a person does, requests for full reasoning traces and
log-probabilities, long answers to short prompts, machine-regular timing, and campaigns spread
over many API keys from one client. :class:`ExtractionMonitor` keeps compact running statistics
for every *subject* (each API key, and each client address) and turns them into an
extraction-risk score in [0, 1] that says *why* (every feature is reported next to the score).

Subjects and memory
-------------------
A subject is ``key:<key id>`` or ``addr:<client address>`` (an IPv6 client counts as its /64
network, which one host can rotate through freely). Each subject holds 60 time bins covering the
window (requests, tokens, a count per request flag, the sum and sum of squares of inter-arrival
gaps), so every windowed statistic is one small dot product, and a ring of the sketches of its
last ``history`` opening prompts (a 64-byte b-bit MinHash signature and a digest each). Rings
grow on demand up to ``history``; at most ``max_subjects`` subjects are kept, the least recently
seen one is forgotten first (passing over a few that are under an action). The memory bound is
:meth:`ExtractionMonitor.memory_bound`: about 18 KiB per subject, 70 MiB for the default 4096.

Prompt sketches
---------------
Only opening prompts are sketched: the prompt of a request without an assistant turn (a
follow-up such as "can you give an example" repeats naturally across conversations and says
nothing about templates). The prompt (the last user message, or a legacy completion prompt; its
first 1500 characters) is lower-cased and split into words, punctuation removed (character
trigrams for scripts written without spaces, so Chinese sketches too; prompts of fewer than five
words are not sketched); the first 128 units and the pairs of neighbouring units are hashed
(CRC-32) and :class:`MinHasher` keeps the low 8 bits of each of 64 multiply-shift min-hashes.
Two signatures agreeing on a share ``P`` of their hashes estimate the Jaccard similarity of the
two shingle sets as ``(P - 1/256) / (1 - 1/256)`` (b-bit MinHash, Li and Koenig 2010), with a
standard error of about 0.06.

Features
--------
Each feature is a number in [0, 1] computed over the window (default one hour) from a raw
measurement with a linear ramp (``lo`` gives 0, ``hi`` gives 1; volume and coverage ramp on a
log scale and scale with the window length). The weight says how much a feature that is fully
present raises the score on its own:

=================  =====================================================  ==========  ======
feature            raw measurement                                        ramp lo-hi  weight
=================  =====================================================  ==========  ======
volume             requests per hour                                      120 - 1200  0.25
coverage           requests per hour x share of sketched prompts that      150 - 900   0.30
                   are novel (no earlier one with similarity >= 0.3):
                   topical coverage at scale
output_ratio       completion tokens / prompt tokens (answered requests)   3 - 12     0.15
long_outputs       share asking max_tokens >= 1024 or filling max_tokens   0.5 - 1    0.15
template_reuse     share of sketched prompts with an earlier one of        0.3 - 0.8   0.35
                   similarity >= 0.4 in the ring (templates, repeats)
sweep              share of sketched prompts near-identical to the         0.2 - 0.6   0.55
                   previous one (similarity >= 0.5) yet different:
                   a slot being varied
single_turn        share of requests with no assistant turn before         0.6 - 1     0.25
reasoning          share asking for a reasoning trace ("step by step",     0.2 - 0.7   0.35
                   "show your reasoning", "chain of thought",
                   reasoning_effort, include_reasoning, ...)
logprobs           share using logprobs, top_logprobs, logit_bias, echo,  0.05 - 0.5   0.45
                   n > 1 or best_of > 1
regularity         coefficient of variation of inter-arrival gaps          1.0 - 0.25  0.40
                   (people are bursty, scripts are regular; >= 8 gaps)
keys_per_address   distinct API keys seen from the address (addresses      3 - 12     0.45
                   only): slow-and-low campaigns spread over many keys
=================  =====================================================  ==========  ======

The score combines the features as independent evidence (a noisy-OR) and scales it by the
evidence available::

    score = evidence * (1 - prod(1 - weight_i * feature_i))
    evidence = min(1, requests in window / min_requests)

so a subject with few requests scores low whatever they look like, and no single feature but
``sweep`` crosses the default alert threshold alone. Weights can be changed per deployment
(``extraction.weights``).

Actions
-------
Each action has a threshold (``None`` switches it off) and hysteresis: it starts when the score
reaches the threshold and stops only when the score falls below ``threshold - hysteresis``.
``alert`` writes an audit event and counts a metric; ``strip_logprobs`` removes ``logprobs``,
``top_logprobs`` and ``logit_bias`` from what goes upstream; ``tighten`` scales the subject's
rate limits by ``tighten_factor``; ``refuse`` answers 429 ``extraction_suspected``. A request
gets the union of the actions of its key and its address. A subject not seen for a whole
window has no actions (its next request re-evaluates it).

The request path only calls :meth:`ExtractionMonitor.actions` (two dictionary look-ups, about a
microsecond); :meth:`ExtractionMonitor.observe` runs after the answer is sent (about 30-150
microseconds on one core, most of it the sketch; a subject is re-scored at most once a second,
so a flood costs its statistics, not its scores). The clock is injectable, so tests replay
hours of traffic without sleeping. State is per process (not shared by replicas).
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import math
import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ACTION_NAMES",
    "ALERT",
    "DEFAULT_WEIGHTS",
    "FEATURES",
    "REFUSE",
    "STRIP",
    "TIGHTEN",
    "ExtractionChange",
    "ExtractionMonitor",
    "ExtractionSettings",
    "MinHasher",
    "RequestFacts",
    "action_names",
    "client_address",
    "mentions_reasoning",
    "request_facts",
    "subject_address",
]

# --- actions -------------------------------------------------------------------------------------

ALERT: Final = 1
STRIP: Final = 2
TIGHTEN: Final = 4
REFUSE: Final = 8
#: Action bits and their names, mildest first.
ACTION_NAMES: Final[tuple[tuple[int, str], ...]] = (
    (ALERT, "alert"),
    (STRIP, "strip_logprobs"),
    (TIGHTEN, "tighten"),
    (REFUSE, "refuse"),
)


def action_names(actions: int) -> list[str]:
    """The names of the action bits set in ``actions``, mildest first."""
    return [name for bit, name in ACTION_NAMES if actions & bit]


# --- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Feature:
    name: str
    weight: float
    lo: float
    hi: float
    log: bool
    describes: str


_FEATURE_TABLE: Final[tuple[_Feature, ...]] = (
    _Feature("volume", 0.25, 120.0, 1200.0, True, "requests per hour"),
    _Feature("coverage", 0.30, 150.0, 900.0, True, "novel prompts per hour"),
    _Feature("output_ratio", 0.15, 3.0, 12.0, False, "completion / prompt tokens"),
    _Feature("long_outputs", 0.15, 0.5, 1.0, False, "share asking for or filling long outputs"),
    _Feature("template_reuse", 0.35, 0.3, 0.8, False, "share of prompts reusing a template"),
    _Feature("sweep", 0.55, 0.2, 0.6, False, "share of prompts varying a slot of the previous"),
    _Feature("single_turn", 0.25, 0.6, 1.0, False, "share of requests without history"),
    _Feature("reasoning", 0.35, 0.2, 0.7, False, "share asking for reasoning traces"),
    _Feature("logprobs", 0.45, 0.05, 0.5, False, "share using logprobs/logit_bias/echo/n"),
    _Feature("regularity", 0.40, 1.0, 0.25, False, "coefficient of variation of gaps"),
    _Feature("keys_per_address", 0.45, 3.0, 12.0, False, "distinct keys from the address"),
)
#: Feature names, in the order they are reported.
FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in _FEATURE_TABLE)
#: The default weight of each feature (see the module docstring).
DEFAULT_WEIGHTS: Final[Mapping[str, float]] = {f.name: f.weight for f in _FEATURE_TABLE}

#: Similarity at or above which an earlier prompt counts as the same template.
TEMPLATE_SIMILARITY: Final = 0.4
#: Similarity at or above which consecutive different prompts count as a sweep step.
SWEEP_SIMILARITY: Final = 0.5
#: Similarity below which a prompt counts as novel (for coverage).
NOVEL_SIMILARITY: Final = 0.3
#: A requested output length at or above this many tokens counts as a long output.
LONG_OUTPUT_TOKENS: Final = 1024
#: Fewest words for a prompt to be sketched (shorter chat is left out of the similarity features).
MIN_WORDS: Final = 5
#: Fewest characters for a prompt without spaces (Chinese, Japanese) to be sketched.
MIN_CHARS: Final = 8
#: A subject is re-scored at most this often (seconds): a flood costs its statistics, not scores.
EVALUATE_EVERY_S: Final = 1.0
#: Fewest inter-arrival gaps for the regularity feature.
MIN_GAPS: Final = 8

NUM_HASHES: Final = 64
_BINS: Final = 60
_MAX_UNITS: Final = 128  # words (or trigrams) of a prompt that are sketched
_SKETCH_CHARS: Final = 1500  # the head of a prompt that is sketched
_HEAD_CHARS: Final = 2000  # the head and tail of a text searched for reasoning requests
_TAIL_CHARS: Final = 500
_MAX_KEYS_PER_ADDRESS: Final = 256
_CHANCE: Final = 1.0 / 256.0  # two 8-bit hashes agree by chance this often


def _estimate(agree: int, hashes: int) -> float:
    """The Jaccard similarity estimated from ``agree`` of ``hashes`` 8-bit min-hashes."""
    return max(0.0, (agree / hashes - _CHANCE) / (1.0 - _CHANCE))


def _ramp(value: float, lo: float, hi: float, log: bool) -> float:
    if log:
        if value <= 0:
            return 0.0
        value, lo, hi = math.log(value), math.log(lo), math.log(hi)
    span = hi - lo
    out = (value - lo) / span
    return 0.0 if out <= 0 else (1.0 if out >= 1 else out)


# --- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractionSettings:
    """The ``extraction:`` section of the gateway config (see :mod:`.config`)."""

    enabled: bool = True
    window_s: float = 3600.0
    min_requests: int = 50
    history: int = 128
    max_subjects: int = 4096
    trusted_proxies: int = 0
    exempt_keys: tuple[str, ...] = ()
    hysteresis: float = 0.1
    alert_at: float | None = 0.5
    strip_logprobs_at: float | None = 0.6
    tighten_at: float | None = 0.7
    tighten_factor: float = 0.25
    tighten_requests_per_minute: float = 60.0
    refuse_at: float | None = 0.85
    weights: Mapping[str, float] = field(default_factory=dict)

    def thresholds(self) -> list[tuple[int, str, float]]:
        """``(bit, name, threshold)`` of every action switched on."""
        out: list[tuple[int, str, float]] = []
        for bit, name in ACTION_NAMES:
            at = getattr(self, f"{name}_at")
            if at is not None:
                out.append((bit, name, float(at)))
        return out

    def weight_of(self, name: str) -> float:
        return float(self.weights.get(name, DEFAULT_WEIGHTS[name]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "window_s": self.window_s,
            "min_requests": self.min_requests,
            "history": self.history,
            "max_subjects": self.max_subjects,
            "trusted_proxies": self.trusted_proxies,
            "exempt_keys": list(self.exempt_keys),
            "hysteresis": self.hysteresis,
            "alert_at": self.alert_at,
            "strip_logprobs_at": self.strip_logprobs_at,
            "tighten_at": self.tighten_at,
            "tighten_factor": self.tighten_factor,
            "tighten_requests_per_minute": self.tighten_requests_per_minute,
            "refuse_at": self.refuse_at,
            "weights": {name: self.weight_of(name) for name in FEATURES},
        }


# --- client addresses ----------------------------------------------------------------------------


def client_address(peer: str | None, forwarded: Sequence[str] = (), hops: int = 0) -> str | None:
    """The client's address: the socket peer, or with ``hops`` trusted reverse proxies in front
    of the gateway the ``hops``-th address from the right of ``X-Forwarded-For`` (the one the
    outermost trusted proxy saw; what is left of it the client wrote itself). ``forwarded`` holds
    the header's values (it may repeat). Too few entries: the peer."""
    if hops <= 0 or not forwarded:
        return peer
    entries = [part.strip() for value in forwarded for part in value.split(",")]
    entries = [entry for entry in entries if entry]
    if len(entries) < hops:
        return peer
    return entries[-hops]


@functools.lru_cache(maxsize=4096)
def subject_address(address: str) -> str:
    """The subject an address counts as: IPv4 as written, IPv6 as its /64 network, an IPv4
    address mapped into IPv6 as the IPv4 address; anything else (a host name, a port-qualified
    string) as given, at most 100 characters."""
    text = address.strip()
    if ":" not in text:
        return text[:100]
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return text[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# punctuation becomes space before a text is split into words (str.translate: fast on ASCII)
_PUNCTUATION: Final = str.maketrans(
    dict.fromkeys(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u00ab\u00bb\u2018\u2019\u201c\u201d\u2026"
        "\u3001\u3002\uff01\uff0c\uff1a\uff1b\uff1f",
        " ",
    )
)


def _words(lowered: str) -> list[str]:
    return lowered.translate(_PUNCTUATION).split()


# --- request facts -------------------------------------------------------------------------------

# phrases asking for a reasoning trace, matched on the lower-cased words joined by single spaces
_REASONING = re.compile(
    r"\bstep by step\b"
    r"|\bchain of thoughts?\b"
    r"|\bshow (?:me )?(?:all )?(?:your|the) (?:reasoning|work|working|thinking|thought process)\b"
    r"|\bexplain your (?:reasoning|thinking|thought process)\b"
    r"|\b(?:full|complete|detailed|entire|whole) (?:reasoning|thought process|derivation)\b"
    r"|\breasoning (?:trace|traces|steps|process|chain)\b"
    r"|\bwalk me through (?:your|the|each) (?:reasoning|steps?)\b"
    r"|\bthink aloud\b|\bthinking out loud\b|\blet ?s think\b"
    r"|\bschritt f\u00fcr schritt\b|\bpaso a paso\b|\b\u00e9tape par \u00e9tape\b"
)
# a text without one of these substrings cannot match (most texts: the regex never runs)
_REASONING_TRIGGERS: Final = (
    "step",
    "thought",
    "reason",
    "work",
    "think",
    "deriv",
    "loud",
    "schritt",
    "paso",
    "tape",
)
# phrases matched as they are: Chinese has no spaces, <think> is markup
_REASONING_LITERALS: Final = ("<think>", "\u4e00\u6b65\u4e00\u6b65", "\u9010\u6b65")


def mentions_reasoning(text: str) -> bool:
    """Whether ``text`` asks for a reasoning trace ("step by step", "show your reasoning", ...).

    A long text is searched at its head and its tail, where instructions go."""
    if len(text) > _HEAD_CHARS + _TAIL_CHARS:
        text = text[:_HEAD_CHARS] + "\n" + text[-_TAIL_CHARS:]
    lowered = text.lower()
    if any(literal in lowered for literal in _REASONING_LITERALS):
        return True
    if not any(trigger in lowered for trigger in _REASONING_TRIGGERS):
        return False
    return _REASONING.search(" ".join(_words(lowered))) is not None


_REASONING_PARAMS: Final = ("reasoning_effort", "reasoning", "include_reasoning", "thinking")
_LENGTH_PARAMS: Final = ("max_tokens", "max_completion_tokens", "n_predict")


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What one request says about its sender (read from the body as the client sent it)."""

    prompt: str
    single_turn: bool
    reasoning: bool
    logprobs: bool
    max_tokens: int | None


def _active(value: object) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value > 0
    if isinstance(value, dict | list | str):
        return len(value) > 0
    return True


def _count(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 1


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def request_facts(operation: str, body: Mapping[str, Any]) -> RequestFacts:
    """The facts of one chat (``operation == "chat"``) or legacy completion request body."""
    single_turn = True
    prompt = ""
    instructions = ""
    if operation == "chat":
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if not isinstance(message, dict):
                    continue
                role = message.get("role")
                if role == "assistant" or role == "tool":
                    single_turn = False
                elif role == "user":
                    prompt = _content_text(message.get("content"))
                elif role in ("system", "developer"):
                    instructions = _content_text(message.get("content"))
            if not prompt and messages and isinstance(messages[-1], dict):
                prompt = _content_text(messages[-1].get("content"))
    else:
        raw = body.get("prompt")
        if isinstance(raw, str):
            prompt = raw
        elif isinstance(raw, list) and raw and isinstance(raw[0], str):
            prompt = raw[0]
    reasoning = mentions_reasoning(prompt) or bool(
        instructions and mentions_reasoning(instructions)
    )
    if not reasoning:
        reasoning = any(_active(body.get(name)) for name in _REASONING_PARAMS)
        kwargs = body.get("chat_template_kwargs")
        if isinstance(kwargs, dict) and kwargs.get("enable_thinking") is True:
            reasoning = True
    logprobs = (
        _active(body.get("logprobs"))
        or _active(body.get("top_logprobs"))
        or _active(body.get("logit_bias"))
        or body.get("echo") is True
        or _count(body.get("n", 1)) > 1
        or _count(body.get("best_of", 1)) > 1
    )
    max_tokens = None
    for name in _LENGTH_PARAMS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            max_tokens = value
            break
    return RequestFacts(prompt, single_turn, reasoning, logprobs, max_tokens)


# --- MinHash -------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
# scripts written without spaces between words: kana, CJK ideographs, Thai, Lao, Khmer
_UNSPACED = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1780-\u17ff]"
)
_U32: Final = np.uint64(0xFFFFFFFF)
_M1: Final = np.uint64(0x9E3779B1)
_M2: Final = np.uint64(0x85EBCA77)
_M3: Final = np.uint64(0x27D4EB2F)
_SHIFT: Final = np.uint64(32)

_UNIT_CACHE: Final = 1 << 16  # words whose hashes are remembered (cleared when full)

Signature = npt.NDArray[np.uint8]


def _unit_hash(unit: str) -> int:
    # never 0, so a cached hash is never mistaken for a missing one
    return zlib.crc32(unit.encode("utf-8", "surrogatepass")) | 1 << 32


class MinHasher:
    """b-bit MinHash signatures (8 bits x ``num_hashes``) of texts over word shingles.

    Deterministic for a given ``seed`` (every replica and every run sketches alike).
    """

    def __init__(self, num_hashes: int = NUM_HASHES, seed: int = 0x5EA1) -> None:
        rng = np.random.default_rng(seed)
        self.num_hashes = num_hashes
        self._a = rng.integers(1, 2**63, size=num_hashes, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**63, size=num_hashes, dtype=np.uint64)[:, None]
        self._unit_hashes: dict[str, int] = {}

    @staticmethod
    def units(text: str) -> list[str]:
        """The units a text is sketched by: its lower-case words when it has at least
        :data:`MIN_WORDS`; character trigrams for text in a script written without spaces
        (Chinese, Japanese, Thai) of :data:`MIN_CHARS` characters or more; else none
        (short chat such as "thanks!" or "shorter please" repeats naturally and says nothing
        about templates)."""
        lowered = text[:_SKETCH_CHARS].lower()
        words = _words(lowered)
        if len(words) >= MIN_WORDS:
            return words[:_MAX_UNITS]
        compact = _SPACE.sub(" ", lowered).strip()
        if len(compact) < MIN_CHARS or not _UNSPACED.search(compact):
            return []
        return [compact[i : i + 3] for i in range(min(len(compact) - 2, _MAX_UNITS))]

    def signature(self, text: str) -> tuple[Signature, int] | None:
        """``(signature, digest of the normalised text)``, or ``None`` for a text with too
        little to sketch (see :meth:`units`)."""
        units = self.units(text)
        if not units:
            return None
        digest = zlib.crc32(" ".join(units).encode("utf-8", "surrogatepass"))
        cache = self._unit_hashes
        if len(cache) > _UNIT_CACHE:
            cache.clear()
        found = list(map(cache.get, units))
        if None in found:
            found = [cache.setdefault(u, _unit_hash(u)) for u in units]
        hashes = np.array(found, dtype=np.uint64)
        if len(hashes) > 1:
            pairs = (hashes[:-1] * _M1 + hashes[1:] * _M2 + _M3) & _U32
            hashes = np.concatenate((hashes, pairs))
        # h_i(x) = (a_i * x + b_i) mod 2^64, its high 32 bits the hash (multiply-shift); the
        # minimum of the full values has the minimum high bits, so the shift comes after
        mixed = np.multiply.outer(self._a, hashes)
        mixed += self._b
        low = (mixed.min(axis=1) >> _SHIFT) & np.uint64(0xFF)
        return low.astype(np.uint8), digest

    @staticmethod
    def similarity(a: Signature, b: Signature) -> float:
        """The estimated Jaccard similarity of the shingle sets behind two signatures."""
        agree = float(np.count_nonzero(a == b)) / len(a)
        return max(0.0, (agree - _CHANCE) / (1.0 - _CHANCE))

    @staticmethod
    def similarities(sig: Signature, ring: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """Estimated similarities of ``sig`` to every row of ``ring``."""
        agree = (ring == sig).sum(axis=1) / ring.shape[1]
        out: npt.NDArray[np.float64] = np.maximum(0.0, (agree - _CHANCE) / (1.0 - _CHANCE))
        return out


# --- subjects ------------------------------------------------------------------------------------

# what a request adds to its time bin: requests, prompt and completion tokens (answered requests),
# one count per flag, and the inter-arrival gap (sum, sum of squares, count)
_REQ, _PTOK, _CTOK = 0, 1, 2
_SINGLE, _REASON, _LOGPROBS, _LONG, _TEXT, _TEMPLATE, _SWEEP, _NOVEL = range(3, 11)
_GAP, _GAP2, _GAPS = 11, 12, 13
_ROWS: Final = 14


class _Subject:
    __slots__ = (
        "actions",
        "bin_id",
        "bins",
        "cap",
        "count",
        "digests",
        "evaluated",
        "evidence",
        "features",
        "first_seen",
        "keys",
        "last_seen",
        "name",
        "peak",
        "score",
        "sigs",
        "since",
        "sketched",
    )

    def __init__(self, name: str, now: float, num_hashes: int) -> None:
        self.name = name
        self.count = 0  # requests seen
        # the ring of recent prompt sketches (grows on demand up to the history length)
        self.cap = 8
        self.sketched = 0
        self.sigs = np.zeros((self.cap, num_hashes), dtype=np.uint8)
        self.digests = np.zeros(self.cap, dtype=np.uint32)
        # the time bins covering the window: their numbers and what fell into each
        self.bin_id = np.full(_BINS, -(1 << 62), dtype=np.int64)
        self.bins = np.zeros((_ROWS, _BINS), dtype=np.float64)
        self.keys: dict[str, float] | None = {} if name.startswith("addr:") else None
        self.first_seen = now
        self.last_seen = -math.inf
        self.evaluated = -math.inf
        self.score = 0.0
        self.peak = 0.0
        self.evidence = 0.0
        self.actions = 0
        self.since: dict[str, float] = {}
        self.features: dict[str, tuple[float, float | None]] = {}

    def slot(self, history: int) -> int:
        """The ring index for the next sketch (growing the ring while it is short)."""
        if self.sketched < self.cap:
            return self.sketched
        if self.cap < history:
            grown = min(self.cap * 2, history)
            sigs = np.zeros((grown, self.sigs.shape[1]), dtype=np.uint8)
            sigs[: self.cap] = self.sigs
            self.sigs = sigs
            self.digests = np.resize(self.digests, grown)
            self.cap = grown
            return self.sketched
        return self.sketched % self.cap

    def nbytes(self) -> int:
        arrays = (self.sigs, self.digests, self.bin_id, self.bins)
        return sum(a.nbytes for a in arrays) + 1024


@dataclass(frozen=True)
class ExtractionChange:
    """An action that started (``state == "on"``) or stopped for a subject."""

    subject: str
    action: str
    state: str
    score: float
    features: Mapping[str, float]

    def to_event(self) -> dict[str, Any]:
        """The audit-log event."""
        return {
            "event": "extraction",
            "subject": self.subject,
            "action": self.action,
            "state": self.state,
            "score": round(self.score, 4),
            "features": {name: round(value, 4) for name, value in self.features.items()},
        }


class ExtractionMonitor:
    """Per-subject statistics, scores and actions (see the module docstring)."""

    def __init__(
        self,
        settings: ExtractionSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or ExtractionSettings()
        self.clock = clock
        self.hasher = MinHasher()
        self._subjects: dict[str, _Subject] = {}
        self._exempt = frozenset(self.settings.exempt_keys)
        self._thresholds = self.settings.thresholds()
        self._weights = [(f, self.settings.weight_of(f.name)) for f in _FEATURE_TABLE]
        self._per_hour = self.settings.window_s / 3600.0
        self._bin_s = self.settings.window_s / _BINS
        self.updates = 0
        self.update_seconds = 0.0

    # -- the request path ---------------------------------------------------------------------

    def actions(self, key_id: str | None, address: str | None) -> int:
        """The action bits in force for a request from ``key_id`` at ``address`` (cheap)."""
        if key_id is not None and key_id in self._exempt:
            return 0
        subjects = self._subjects
        found = 0
        horizon = self.clock() - self.settings.window_s
        if key_id is not None:
            subject = subjects.get("key:" + key_id)
            if subject is not None and subject.actions and subject.last_seen >= horizon:
                found = subject.actions
        if address:
            subject = subjects.get("addr:" + subject_address(address))
            if subject is not None and subject.actions and subject.last_seen >= horizon:
                found |= subject.actions
        return found

    # -- bookkeeping --------------------------------------------------------------------------

    def observe(
        self,
        *,
        key_id: str | None,
        address: str | None,
        operation: str,
        body: Mapping[str, Any],
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        at: float | None = None,
    ) -> list[ExtractionChange]:
        """Record one request (after its answer is out) and re-score its subjects.

        ``at`` is when it arrived (default: now). Returns the actions that started or stopped.
        """
        if key_id is not None and key_id in self._exempt:
            return []
        started = time.perf_counter()
        now = self.clock() if at is None else at
        facts = request_facts(operation, body)
        # templates and sweeps are judged on opening prompts: follow-ups in a conversation
        # ("can you give an example") repeat naturally
        sketch = self.hasher.signature(facts.prompt) if facts.single_turn else None
        row = [0.0] * _ROWS
        row[_REQ] = 1.0
        if completion_tokens > 0:
            row[_PTOK] = float(max(prompt_tokens, 0))
            row[_CTOK] = float(completion_tokens)
        row[_SINGLE] = float(facts.single_turn)
        row[_REASON] = float(facts.reasoning)
        row[_LOGPROBS] = float(facts.logprobs)
        wanted = facts.max_tokens
        if wanted is not None and (
            wanted >= LONG_OUTPUT_TOKENS or (wanted >= 256 and completion_tokens >= 0.9 * wanted)
        ):
            row[_LONG] = 1.0
        changes: list[ExtractionChange] = []
        if key_id is not None:
            subject = self._subject("key:" + key_id, now)
            self._record(subject, now, row, sketch)
            if now - subject.evaluated >= EVALUATE_EVERY_S:
                changes.extend(self._evaluate(subject, now))
        if address:
            subject = self._subject("addr:" + subject_address(address), now)
            keys = subject.keys
            if keys is not None and key_id is not None:
                keys.pop(key_id, None)
                keys[key_id] = now
                if len(keys) > _MAX_KEYS_PER_ADDRESS:
                    del keys[next(iter(keys))]
            self._record(subject, now, row, sketch)
            if now - subject.evaluated >= EVALUATE_EVERY_S:
                changes.extend(self._evaluate(subject, now))
        self.updates += 1
        self.update_seconds += time.perf_counter() - started
        return changes

    def _subject(self, name: str, now: float) -> _Subject:
        subjects = self._subjects
        subject = subjects.pop(name, None)
        if subject is None:
            subject = _Subject(name, now, self.hasher.num_hashes)
            if len(subjects) >= self.settings.max_subjects:
                self._evict()
        subjects[name] = subject  # most recently seen last
        return subject

    def _evict(self) -> None:
        """Forget the least recently seen subject, passing over (a few) under an action."""
        subjects = self._subjects
        for _, name in zip(range(8), list(subjects), strict=False):
            if not subjects[name].actions:
                del subjects[name]
                return
        del subjects[next(iter(subjects))]

    def _record(
        self, s: _Subject, now: float, row: list[float], sketch: tuple[Signature, int] | None
    ) -> None:
        row = list(row)
        if sketch is not None:
            sig, digest = sketch
            row[_TEXT] = 1.0
            filled = min(s.sketched, s.cap)
            i = s.slot(self.settings.history)
            nearest = 0.0
            if filled:
                # agreeing hashes with every sketch in the ring (the one being replaced: none)
                agree = np.count_nonzero(s.sigs[:filled] == sig, axis=1)
                if i < filled:
                    agree[i] = 0
                nearest = _estimate(int(agree.max()), len(sig))
                previous = (s.sketched - 1) % s.cap
                if (
                    _estimate(int(agree[previous]), len(sig)) >= SWEEP_SIMILARITY
                    and s.digests[previous] != digest
                ):
                    row[_SWEEP] = 1.0
            if nearest >= TEMPLATE_SIMILARITY:
                row[_TEMPLATE] = 1.0
            if nearest < NOVEL_SIMILARITY:
                row[_NOVEL] = 1.0
            s.sigs[i] = sig
            s.digests[i] = digest
            s.sketched += 1
        s.count += 1
        # the gap since the last request, when that one is still in the window
        if now - s.last_seen <= self.settings.window_s:
            gap = max(0.0, now - s.last_seen)
            row[_GAP], row[_GAP2], row[_GAPS] = gap, gap * gap, 1.0
        if now > s.last_seen:
            s.last_seen = now
        current = int(now // self._bin_s)
        slot = current % _BINS
        if s.bin_id[slot] != current:
            s.bin_id[slot] = current
            s.bins[:, slot] = row
        else:
            s.bins[:, slot] += row

    def _evaluate(self, s: _Subject, now: float) -> list[ExtractionChange]:
        """Recompute the features and the score, then start or stop actions."""
        settings = self.settings
        live = (s.bin_id > int(now // self._bin_s) - _BINS).astype(np.float64)
        total: list[float] = np.dot(s.bins, live).tolist()
        requests = total[_REQ]
        with_text = total[_TEXT]
        per_hour = self._per_hour

        def share(row: int) -> float:
            return total[row] / requests if requests else 0.0

        def text_share(row: int) -> float:
            return total[row] / with_text if with_text else 0.0

        gaps = total[_GAPS]
        gaps_cv: float | None = None
        if gaps >= MIN_GAPS:
            mean = total[_GAP] / gaps
            variance = max(0.0, total[_GAP2] / gaps - mean * mean)
            gaps_cv = math.sqrt(variance) / mean if mean > 0 else 0.0
        prompt_tokens, completion_tokens = total[_PTOK], total[_CTOK]
        raw: dict[str, float | None] = {
            "volume": requests / per_hour,
            "coverage": requests * text_share(_NOVEL) / per_hour,
            "output_ratio": completion_tokens / prompt_tokens
            if prompt_tokens
            else completion_tokens,
            "long_outputs": share(_LONG),
            "template_reuse": text_share(_TEMPLATE),
            "sweep": text_share(_SWEEP),
            "single_turn": share(_SINGLE),
            "reasoning": share(_REASON),
            "logprobs": share(_LOGPROBS),
            "regularity": gaps_cv,
        }
        if s.keys is not None:
            horizon = now - settings.window_s
            raw["keys_per_address"] = float(sum(1 for t in s.keys.values() if t >= horizon))
        features: dict[str, tuple[float, float | None]] = {}
        keep = 1.0
        for feature, weight in self._weights:
            if feature.name not in raw:
                continue
            value = raw[feature.name]
            f = 0.0 if value is None else _ramp(value, feature.lo, feature.hi, feature.log)
            features[feature.name] = (f, value)
            keep *= 1.0 - weight * f
        s.features = features
        s.evaluated = now
        s.evidence = min(1.0, requests / settings.min_requests)
        s.score = s.evidence * (1.0 - keep)
        if s.score > s.peak:
            s.peak = s.score
        return self._act(s, now)

    def _act(self, s: _Subject, now: float) -> list[ExtractionChange]:
        changes: list[ExtractionChange] = []
        lower = self.settings.hysteresis
        for bit, name, at in self._thresholds:
            if s.actions & bit:
                if s.score < at - lower:
                    s.actions &= ~bit
                    s.since.pop(name, None)
                    changes.append(self._change(s, name, "off"))
            elif s.score >= at:
                s.actions |= bit
                s.since[name] = now
                changes.append(self._change(s, name, "on"))
        return changes

    @staticmethod
    def _change(s: _Subject, action: str, state: str) -> ExtractionChange:
        values = {name: f for name, (f, _) in s.features.items()}
        return ExtractionChange(s.name, action, state, s.score, values)

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._subjects)

    def _name(self, name: str) -> str:
        return "addr:" + subject_address(name[5:]) if name.startswith("addr:") else name

    def subject(self, name: str) -> dict[str, Any] | None:
        """The report of one subject (``key:<id>`` or ``addr:<address>``), or ``None``."""
        subject = self._subjects.get(self._name(name))
        return None if subject is None else self._report(subject, self.clock())

    def top(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` subjects with the highest scores, riskiest first."""
        now = self.clock()
        best = heapq.nlargest(n, self._subjects.values(), key=lambda s: (s.score, s.last_seen))
        return [self._report(s, now) for s in best]

    def reset(self, name: str) -> bool:
        """Forget a subject (its score and actions start again from nothing)."""
        return self._subjects.pop(self._name(name), None) is not None

    def _report(self, s: _Subject, now: float) -> dict[str, Any]:
        weights = {f.name: w for f, w in self._weights}
        features = {
            name: {
                "value": round(f, 4),
                "raw": None if raw is None else round(raw, 4),
                "weight": weights[name],
                "contribution": round(weights[name] * f, 4),
            }
            for name, (f, raw) in s.features.items()
        }
        contributions = {name: weights[name] * f for name, (f, _) in s.features.items()}
        reasons = sorted(
            (name for name, c in contributions.items() if c > 0), key=lambda n: -contributions[n]
        )
        stale = s.last_seen < now - self.settings.window_s
        return {
            "subject": s.name,
            "kind": "key" if s.name.startswith("key:") else "address",
            "id": s.name.split(":", 1)[1],
            "score": round(s.score, 4),
            "peak": round(s.peak, 4),
            "evidence": round(s.evidence, 4),
            "actions": [] if stale else action_names(s.actions),
            "since_s": {name: round(now - when, 1) for name, when in s.since.items()},
            "requests": s.count,
            "first_seen_s": round(now - s.first_seen, 1),
            "last_seen_s": round(now - s.last_seen, 1),
            "reasons": reasons[:4],
            "features": features,
        }

    def memory_bound(self) -> int:
        """An upper bound of the bytes the subjects can hold (full rings, every subject)."""
        per_entry = self.hasher.num_hashes + 4
        per_subject = self.settings.history * per_entry + _BINS * 8 * (_ROWS + 1) + 2048
        return self.settings.max_subjects * per_subject

    def memory_used(self) -> int:
        """About the bytes the subjects hold now."""
        return sum(s.nbytes() for s in self._subjects.values())

    def report(self, limit: int = 50) -> dict[str, Any]:
        """Everything the admin endpoint shows."""
        return {
            "enabled": True,
            "settings": self.settings.to_dict(),
            "features": [
                {"name": f.name, "weight": w, "lo": f.lo, "hi": f.hi, "measures": f.describes}
                for f, w in self._weights
            ],
            "subjects": len(self._subjects),
            "memory_bytes": self.memory_used(),
            "memory_bound_bytes": self.memory_bound(),
            "updates": self.updates,
            "update_mean_us": round(1e6 * self.update_seconds / self.updates, 2)
            if self.updates
            else None,
            "top": self.top(limit),
        }
