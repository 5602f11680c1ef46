"""Prometheus metrics and the live numbers behind the dashboard.

A small registry of our own (counters, gauges, histograms with fixed buckets) rendered in the
Prometheus text exposition format 0.0.4. Metric names follow the OpenTelemetry GenAI semantic
conventions mapped to Prometheus the way the OpenTelemetry exporter does (dots become
underscores, the unit becomes a suffix), and every ``# HELP`` line names the OpenTelemetry
instrument it stands for.

The gateway calls :meth:`Metrics.observe_request` once per answer, inside a 1 ms latency budget,
so that path only does dictionary look-ups, a bisection into fixed buckets and a few additions:
no sorting, no allocation beyond one small tuple. Percentiles for the dashboard come from a
bounded ring of recent ``(time, duration)`` samples and are computed in
:meth:`Metrics.snapshot`, which the dashboard asks for about once a second.

Label values that a client can influence are bounded: at most :data:`MAX_KEYS` distinct API key
ids, :data:`MAX_MODELS` distinct model names and :data:`MAX_ADDRESSES` client addresses get their
own series, later ones are counted under :data:`OTHER`. The extraction-risk gauge covers only the
:data:`RISK_SERIES` riskiest subjects at each refresh.

The gateway runs on one asyncio event loop; a plain lock still guards every update so that a
metrics object shared with a thread (a test, an audit writer) stays consistent.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

#: Histogram buckets (upper bounds) for durations in seconds: 0.5 ms to 60 s.
SECONDS_BUCKETS: Final[tuple[float, ...]] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: Histogram buckets for token counts: powers of four from 1 to 65536 (as OpenTelemetry advises).
TOKEN_BUCKETS: Final[tuple[float, ...]] = tuple(float(4**i) for i in range(9))

MAX_KEYS: Final = 1000
MAX_MODELS: Final = 100
MAX_GUARD_LABELS: Final = 200
MAX_ADDRESSES: Final = 200
RISK_SERIES: Final = 50
#: Extraction-defence actions, as counted by ``modelseal_extraction_actions_total``.
EXTRACTION_ACTIONS: Final = ("alert", "strip_logprobs", "tighten", "refuse")
OTHER: Final = "other"
ANONYMOUS: Final = "anonymous"
NONE: Final = "none"

RATE_WINDOW_S: Final = 10.0
LATENCY_WINDOW_S: Final = 60.0
LATENCY_SAMPLES: Final = 4096
SERIES_S: Final = 60
TOP_N: Final = 10

_OTEL = "(OpenTelemetry GenAI semantic conventions)"
_BINS = 64  # per-second bins kept for rates and the sparkline series (>= SERIES_S + 1)
_NO_SECOND = -(1 << 62)

Labels = tuple[str, ...]


class GuardCategory(Protocol):
    """Anything naming a guard and a category, such as ``modelseal.guard.base.Finding``."""

    @property
    def guard(self) -> str: ...

    @property
    def category(self) -> str: ...


BlockedBy = GuardCategory | tuple[str, str]


# --- text format helpers -------------------------------------------------------------------------


def escape_label_value(value: str) -> str:
    """Escape a label value for the text format: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Escape a HELP text: backslash and line feed."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus expects it (``+Inf``, ``-Inf``, ``NaN``, else Go floats)."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    inner = ",".join(
        f'{name}="{escape_label_value(value)}"' for name, value in zip(names, values, strict=True)
    )
    return "{" + inner + "}"


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted values, interpolating linearly between closest ranks.

    The same definition as ``numpy.percentile``'s default and ``statistics.quantiles(...,
    method="inclusive")``. ``None`` for no values.
    """
    n = len(ordered)
    if n == 0:
        return None
    if n == 1:
        return float(ordered[0])
    pos = min(max(q, 0.0), 1.0) * (n - 1)
    low = math.floor(pos)
    high = min(low + 1, n - 1)
    frac = pos - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * frac)


# --- the registry --------------------------------------------------------------------------------


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterable[str]:
        raise NotImplementedError

    def render(self) -> list[str]:
        return [*self.header(), *self.samples()]


class Counter(_Family):
    """A monotonically increasing value per label set. Names end in ``_total``."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self.values: dict[Labels, float] = {} if labelnames else {(): 0}

    def inc(self, labels: Labels = (), amount: float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + amount

    def get(self, labels: Labels = ()) -> float:
        return self.values.get(labels, 0)

    def samples(self) -> Iterable[str]:
        for labels, value in self.values.items():
            yield f"{self.name}{_label_text(self.labelnames, labels)} {format_value(value)}"


class Gauge(Counter):
    """A value that goes up and down per label set."""

    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def clear(self) -> None:
        self.values = {} if self.labelnames else {(): 0}


class _HistogramChild:
    __slots__ = ("count", "counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is the +Inf overflow
        self.sum = 0.0
        self.count = 0


class Histogram(_Family):
    """Fixed-bucket histogram; ``observe`` is a bisection and three additions."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(float(b) for b in buckets)
        self.children: dict[Labels, _HistogramChild] = {}

    def observe(self, labels: Labels, value: float) -> None:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = _HistogramChild(len(self.buckets))
        child.counts[bisect_left(self.buckets, value)] += 1
        child.sum += value
        child.count += 1

    def samples(self) -> Iterable[str]:
        bounds = [*(format_value(b) for b in self.buckets), "+Inf"]
        names = (*self.labelnames, "le")
        for labels, child in self.children.items():
            cumulative = 0
            for bound, count in zip(bounds, child.counts, strict=True):
                cumulative += count
                text = _label_text(names, (*labels, bound))
                yield f"{self.name}_bucket{text} {cumulative}"
            plain = _label_text(self.labelnames, labels)
            yield f"{self.name}_sum{plain} {format_value(child.sum)}"
            yield f"{self.name}_count{plain} {child.count}"


class _Capped:
    """Lets at most ``limit`` distinct values through; later ones become :data:`OTHER`."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return OTHER


def _unix_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _finite(value: float) -> float:
    """A non-negative finite number of seconds; NaN, infinities and negatives become 0."""
    return float(value) if 0.0 <= value < math.inf else 0.0


def _blocked_pair(blocked_by: BlockedBy | None) -> tuple[str, str] | None:
    if blocked_by is None:
        return None
    if isinstance(blocked_by, tuple):
        return str(blocked_by[0]), str(blocked_by[1])
    return str(blocked_by.guard), str(blocked_by.category)


class Metrics:
    """The gateway's metrics: Prometheus families plus the rolling state the dashboard shows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._keys = _Capped(MAX_KEYS)
        self._models = _Capped(MAX_MODELS)
        self._guard_names = _Capped(MAX_GUARD_LABELS)
        self._categories = _Capped(MAX_GUARD_LABELS)
        self._addresses = _Capped(MAX_ADDRESSES)

        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            f"gen_ai.client.operation.duration: GenAI operation duration {_OTEL}",
            ("gen_ai_operation_name", "gen_ai_request_model", "status", "guard"),
            SECONDS_BUCKETS,
        )
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            f"gen_ai.client.token.usage: Number of input and output tokens used {_OTEL}",
            ("gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"),
            TOKEN_BUCKETS,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            f"gen_ai.server.time_to_first_token: Time to generate first token {_OTEL}",
            ("gen_ai_operation_name", "gen_ai_request_model"),
            SECONDS_BUCKETS,
        )
        self.guard_latency = Histogram(
            "modelseal_guard_latency_seconds",
            "modelseal.guard.latency: Time one guard took to check one text",
            ("guard", "stage"),
            SECONDS_BUCKETS,
        )
        self.guard_decisions = Counter(
            "modelseal_guard_decisions_total",
            "modelseal.guard.decisions: Guard checks by action (pass, flag, block) and category",
            ("guard", "stage", "action", "category"),
        )
        self.ratelimit_rejections = Counter(
            "modelseal_ratelimit_rejections_total",
            "modelseal.ratelimit.rejections: Requests refused by a per-key rate limit",
            ("key", "limit"),
        )
        self.ratelimit_used = Gauge(
            "modelseal_ratelimit_used_ratio",
            "modelseal.ratelimit.used: Fraction of a key's rate limit bucket in use (0..1)",
            ("key", "limit"),
        )
        self.key_requests = Counter(
            "modelseal_key_requests_total",
            "modelseal.key.requests: Requests per API key id and status",
            ("key", "status"),
        )
        self.key_tokens = Counter(
            "modelseal_key_tokens_total",
            "modelseal.key.tokens: Tokens per API key id and token type",
            ("key", "gen_ai_token_type"),
        )
        self.seal_valid = Gauge(
            "modelseal_seal_valid",
            "modelseal.seal.valid: 1 when the seal of the served model verifies, else 0",
            ("model", "serial"),
        )
        self.seal_not_after = Gauge(
            "modelseal_seal_not_after_timestamp_seconds",
            "modelseal.seal.not_after: End of the seal's validity, Unix time",
            ("model", "serial"),
        )
        self.receipts = Counter(
            "modelseal_receipts_issued_total",
            "modelseal.receipts.issued: Signed receipts issued",
        )
        self.inflight = Gauge(
            "modelseal_requests_in_flight",
            "modelseal.requests.in_flight: Requests being answered now",
        )
        self.extraction_risk = Gauge(
            "modelseal_extraction_risk",
            "modelseal.extraction.risk: Extraction (distillation) risk score, 0..1, of the "
            "riskiest subjects (API keys and client addresses)",
            ("subject_kind", "subject"),
        )
        self.extraction_actions = Counter(
            "modelseal_extraction_actions_total",
            "modelseal.extraction.actions: Extraction-defence actions: alerts raised, requests "
            "whose log-probabilities were stripped, checked against tightened limits, refused",
            ("action",),
        )
        for action in EXTRACTION_ACTIONS:
            self.extraction_actions.inc((action,), 0)
        self.extraction_subjects = Gauge(
            "modelseal_extraction_subjects",
            "modelseal.extraction.subjects: API keys and client addresses with statistics",
        )
        self.extraction_updates = Counter(
            "modelseal_extraction_updates_total",
            "modelseal.extraction.updates: Requests added to the extraction statistics",
        )
        self.extraction_update_seconds = Counter(
            "modelseal_extraction_update_seconds_total",
            "modelseal.extraction.update: Time spent updating the extraction statistics",
        )
        self.families: tuple[_Family, ...] = (
            self.duration,
            self.tokens,
            self.ttft,
            self.guard_latency,
            self.guard_decisions,
            self.ratelimit_rejections,
            self.ratelimit_used,
            self.key_requests,
            self.key_tokens,
            self.seal_valid,
            self.seal_not_after,
            self.receipts,
            self.inflight,
            self.extraction_risk,
            self.extraction_actions,
            self.extraction_subjects,
            self.extraction_updates,
            self.extraction_update_seconds,
        )

        # dashboard state
        self._durations: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES)
        self._ttfts: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES)
        # per-second bins: [second, requests, tokens in, tokens out, duration sum, blocked, errors]
        self._bins: list[list[Any]] = [[_NO_SECOND, 0, 0, 0, 0.0, 0, 0] for _ in range(_BINS)]
        self._by_status: dict[str, int] = {}
        self._blocks: dict[tuple[str, str], int] = {}
        self._guards: dict[tuple[str, str], list[float]] = {}  # checks, blocked, flagged, seconds
        self._rejections: dict[tuple[str, str], int] = {}
        self._tokens_in = 0
        self._tokens_out = 0
        self._requests = 0
        self._in_flight = 0
        self._seal: dict[str, Any] | None = None
        self._seal_at = 0.0
        self._key_levels: list[dict[str, Any]] = []
        self._extraction_top: list[dict[str, Any]] = []

    # --- hot path --------------------------------------------------------------------------------

    def observe_request(
        self,
        *,
        model: str,
        operation: str,
        status: str,
        duration_s: float,
        ttft_s: float | None,
        input_tokens: int,
        output_tokens: int,
        key: str | None,
        blocked_by: BlockedBy | None,
    ) -> None:
        """Record one finished request (answered, blocked or failed).

        A token count of 0 means "not known" (for instance a request blocked before the
        upstream) and is not recorded in the token histogram.
        """
        now = self._clock()
        duration = _finite(duration_s)
        blocked = _blocked_pair(blocked_by)
        with self._lock:
            model = self._models(model)
            key_label = self._keys(key) if key is not None else ANONYMOUS
            guard = NONE
            if blocked is not None:
                guard = self._guard_names(blocked[0])
                pair = (guard, self._categories(blocked[1]))
                self._blocks[pair] = self._blocks.get(pair, 0) + 1
            self.duration.observe((operation, model, status, guard), duration)
            if ttft_s is not None:
                ttft = _finite(ttft_s)
                self.ttft.observe((operation, model), ttft)
                self._ttfts.append((now, ttft))
            if input_tokens > 0:
                self.tokens.observe((operation, model, "input"), input_tokens)
                self.key_tokens.inc((key_label, "input"), input_tokens)
                self._tokens_in += input_tokens
            if output_tokens > 0:
                self.tokens.observe((operation, model, "output"), output_tokens)
                self.key_tokens.inc((key_label, "output"), output_tokens)
                self._tokens_out += output_tokens
            self.key_requests.inc((key_label, status))
            self._by_status[status] = self._by_status.get(status, 0) + 1
            self._requests += 1
            self._durations.append((now, duration))
            second = math.floor(now)
            row = self._bins[second % _BINS]
            if row[0] != second:
                row[:] = [second, 0, 0, 0, 0.0, 0, 0]
            row[1] += 1
            row[2] += max(input_tokens, 0)
            row[3] += max(output_tokens, 0)
            row[4] += duration
            if blocked is not None:
                row[5] += 1
            elif status == "error":
                row[6] += 1

    def observe_guard(
        self, *, guard: str, stage: str, blocked: bool, category: str | None, latency_s: float
    ) -> None:
        """Record one guard's verdict on one check: action ``block``, ``flag`` or ``pass``."""
        latency = _finite(latency_s)
        action = "block" if blocked else ("flag" if category else "pass")
        with self._lock:
            guard = self._guard_names(guard)
            label = self._categories(category) if category else NONE
            self.guard_latency.observe((guard, stage), latency)
            self.guard_decisions.inc((guard, stage, action, label))
            stats = self._guards.get((guard, stage))
            if stats is None:
                stats = self._guards[(guard, stage)] = [0, 0, 0, 0.0]
            stats[0] += 1
            if blocked:
                stats[1] += 1
            elif category:
                stats[2] += 1
            stats[3] += latency

    def rate_limited(self, *, key: str, limit: str) -> None:
        """Record a request refused by a rate limit (``limit``: ``requests`` or ``tokens``)."""
        with self._lock:
            pair = (self._keys(key), limit)
            self.ratelimit_rejections.inc(pair)
            self._rejections[pair] = self._rejections.get(pair, 0) + 1

    def observe_extraction(
        self, *, seconds: float, applied: Sequence[str] = (), alerts: int = 0
    ) -> None:
        """Record one update of the extraction statistics, the actions applied to its request
        (``strip_logprobs``, ``tighten``, ``refuse``) and the alerts it raised."""
        with self._lock:
            self.extraction_updates.inc()
            self.extraction_update_seconds.inc((), _finite(seconds))
            for action in applied:
                self.extraction_actions.inc((action,))
            if alerts:
                self.extraction_actions.inc(("alert",), alerts)

    def in_flight(self, delta: int) -> None:
        """Move the in-flight gauge by ``delta`` (+1 when a request starts, -1 when it ends)."""
        with self._lock:
            self._in_flight += delta
            self.inflight.set((), self._in_flight)

    def receipt_issued(self) -> None:
        """Count one signed receipt."""
        with self._lock:
            self.receipts.inc()

    # --- state set from outside ------------------------------------------------------------------

    def set_seal(
        self,
        *,
        serial: str | None,
        model: str,
        root: str | None,
        valid: bool,
        not_after: str | None,
        checks: list[dict[str, Any]],
    ) -> None:
        """Replace the seal in force (shown on the dashboard, exported as gauges)."""
        labels = (model, serial or NONE)
        expiry = _unix_time(not_after)
        with self._lock:
            self.seal_valid.clear()
            self.seal_not_after.clear()
            self.seal_valid.set(labels, 1 if valid else 0)
            if expiry is not None:
                self.seal_not_after.set(labels, expiry)
            self._seal = {
                "serial": serial,
                "model": model,
                "root": root,
                "valid": bool(valid),
                "not_after": not_after,
                "checks": [dict(check) for check in checks],
            }
            self._seal_at = self._clock()

    def set_key_levels(self, levels: list[dict[str, Any]]) -> None:
        """Replace the rate-limit levels: ``[{key, limit, used_fraction}, ...]``."""
        ordered = [
            {**level, "used_fraction": _finite(float(level.get("used_fraction") or 0.0))}
            for level in levels
        ]
        ordered.sort(key=lambda level: float(level["used_fraction"]), reverse=True)
        with self._lock:
            self.ratelimit_used.clear()
            for level in ordered:
                labels = (self._keys(str(level.get("key"))), str(level.get("limit")))
                if labels not in self.ratelimit_used.values:
                    self.ratelimit_used.set(labels, level["used_fraction"])
            self._key_levels = ordered[:TOP_N]

    def set_extraction(self, subjects: Sequence[dict[str, Any]], tracked: int) -> None:
        """Replace the riskiest subjects (reports of ``ExtractionMonitor.top``, riskiest first):
        the risk gauge for the first :data:`RISK_SERIES`, the dashboard's table for the first
        :data:`TOP_N`."""
        with self._lock:
            self.extraction_risk.clear()
            for subject in subjects[:RISK_SERIES]:
                kind = str(subject.get("kind"))
                name = str(subject.get("id"))
                label = self._keys(name) if kind == "key" else self._addresses(name)
                labels = (kind, label)
                score = _finite(float(subject.get("score") or 0.0))
                if score >= self.extraction_risk.values.get(labels, 0.0):
                    self.extraction_risk.set(labels, score)
            self.extraction_subjects.set((), tracked)
            self._extraction_top = [
                {
                    "subject": subject.get("subject"),
                    "kind": subject.get("kind"),
                    "id": subject.get("id"),
                    "score": subject.get("score"),
                    "peak": subject.get("peak"),
                    "actions": list(subject.get("actions") or ()),
                    "requests": subject.get("requests"),
                    "reasons": list(subject.get("reasons") or ()),
                    "features": {
                        name: item.get("value")
                        for name, item in (subject.get("features") or {}).items()
                    },
                }
                for subject in subjects[:TOP_N]
            ]

    # --- output ----------------------------------------------------------------------------------

    def render(self) -> str:
        """All metrics in the Prometheus text exposition format 0.0.4."""
        with self._lock:
            lines: list[str] = []
            for family in self.families:
                lines.extend(family.render())
        return "\n".join(lines) + "\n"

    def snapshot(self) -> dict[str, Any]:
        """The numbers the dashboard shows, as JSON-ready data (no NaN, no infinities).

        Rates (``rps``, tokens per second) cover the last :data:`RATE_WINDOW_S` seconds (or the
        uptime when shorter); latency percentiles cover the last :data:`LATENCY_WINDOW_S` seconds
        of at most :data:`LATENCY_SAMPLES` requests; ``series`` holds the last
        :data:`SERIES_S` complete seconds, oldest first.
        """
        with self._lock:
            now = self._clock()
            durations = list(self._durations)
            ttfts = list(self._ttfts)
            bins = [list(row) for row in self._bins]
            by_status = dict(self._by_status)
            blocks = dict(self._blocks)
            guards = {pair: list(stats) for pair, stats in self._guards.items()}
            rejections = dict(self._rejections)
            seal = None if self._seal is None else dict(self._seal)
            seal_age = now - self._seal_at
            keys = [dict(level) for level in self._key_levels]
            extraction = {
                "subjects": int(self.extraction_subjects.get()),
                "top": [dict(subject) for subject in self._extraction_top],
                "actions": {
                    labels[0]: int(count)
                    for labels, count in self.extraction_actions.values.items()
                },
                "updates": int(self.extraction_updates.get()),
                "update_mean_s": self.extraction_update_seconds.get()
                / self.extraction_updates.get()
                if self.extraction_updates.get()
                else None,
            }
            totals = (self._requests, self._tokens_in, self._tokens_out)
            in_flight = self._in_flight
            receipts = int(self.receipts.get())
            uptime = now - self._start

        second = math.floor(now)
        by_second = {row[0]: row for row in bins}
        window = [by_second[s] for s in range(second - 9, second + 1) if s in by_second]
        span = min(RATE_WINDOW_S - 1 + (now - second), uptime)
        span = max(span, 1.0)
        series_rps: list[float] = []
        series_latency: list[float | None] = []
        for s in range(second - SERIES_S, second):
            row = by_second.get(s)
            count = row[1] if row else 0
            series_rps.append(float(count))
            series_latency.append(row[4] / count if row and count else None)

        def quantiles(samples: list[tuple[float, float]]) -> dict[str, Any]:
            recent = sorted(value for when, value in samples if when > now - LATENCY_WINDOW_S)
            return {
                "p50": percentile(recent, 0.50),
                "p95": percentile(recent, 0.95),
                "p99": percentile(recent, 0.99),
                "samples": len(recent),
            }

        rejected_by_limit: dict[str, int] = {}
        for (_, limit), count in rejections.items():
            rejected_by_limit[limit] = rejected_by_limit.get(limit, 0) + count
        requests, tokens_in, tokens_out = totals
        return {
            "time": time.time(),
            "uptime_s": uptime,
            "requests": {"total": requests, "by_status": by_status},
            "rps": sum(row[1] for row in window) / span,
            "latency": quantiles(durations),
            "ttft": quantiles(ttfts),
            "tokens": {
                "input": tokens_in,
                "output": tokens_out,
                "input_per_s": sum(row[2] for row in window) / span,
                "output_per_s": sum(row[3] for row in window) / span,
            },
            "blocks": [
                {"guard": guard, "category": category, "count": count}
                for (guard, category), count in sorted(
                    blocks.items(), key=lambda item: (-item[1], item[0])
                )
            ],
            "guards": [
                {
                    "guard": guard,
                    "stage": stage,
                    "checks": int(stats[0]),
                    "blocked": int(stats[1]),
                    "flagged": int(stats[2]),
                    "latency_mean_s": stats[3] / stats[0] if stats[0] else None,
                }
                for (guard, stage), stats in sorted(guards.items())
            ],
            "rate_limited": {
                "total": sum(rejections.values()),
                "by_limit": rejected_by_limit,
                "top": [
                    {"key": key, "limit": limit, "count": count}
                    for (key, limit), count in sorted(
                        rejections.items(), key=lambda item: (-item[1], item[0])
                    )[:TOP_N]
                ],
            },
            "seal": None if seal is None else {**seal, "age_s": seal_age},
            "keys": keys,
            "extraction": extraction,
            "in_flight": in_flight,
            "receipts": receipts,
            "series": {"rps": series_rps, "latency_s": series_latency},
        }
