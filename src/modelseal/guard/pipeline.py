"""The guard pipeline: run every guard of a stage on a text, or on a stream of deltas.

Whole texts: :meth:`GuardPipeline.check` runs each guard of the stage once and times it.

Streams: :class:`StreamScanner` checks overlapping windows. Each window is the held tail of
the previous one plus the new text; after a clean check everything but the last
``overlap + 2 * CONTEXT`` visible characters is released. Because every positioned finding is
at most ``max_span`` long, a match split anywhere across deltas lies whole inside some window
with ``CONTEXT`` characters of real text on both sides:

* a match ending within ``CONTEXT`` characters of a window's end is deferred to the next window
  (more text may still change it, e.g. a longer digit run is no card number), except at
  :meth:`StreamScanner.finish`;
* a match starting within ``CONTEXT`` characters of a window's start (past the beginning of the
  stream) is an artefact of the cut and is dropped; the real one was judged in an earlier window;
* a finding is reported once (by guard, category and position in the whole stream).

So in buffer mode no character of a blocked match is ever released, and a match is caught as
soon as ``CONTEXT`` characters follow it. Each character is checked at most
``1 + hold / delta`` times, so the work is linear in the streamed length for a given delta size;
``min_chunk`` batches tiny deltas to cut the repeats.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelseal.errors import InputError
from modelseal.guard.base import (
    ContextGuard,
    Finding,
    Guard,
    LengthGuard,
    ScoredGuard,
    Stage,
    Verdict,
)
from modelseal.guard.text import visible_length

CONTEXT = 4
MAX_FINDINGS = 100
SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass
class PipelineResult:
    """The verdicts of one check (one per guard that ran, in pipeline order)."""

    verdicts: list[Verdict]

    @property
    def blocked(self) -> bool:
        return any(v.blocked for v in self.verdicts)

    @property
    def block(self) -> Finding | None:
        """The first blocking finding (in guard order), if any."""
        for verdict in self.verdicts:
            if verdict.blocked:
                return verdict.block
        return None

    @property
    def findings(self) -> list[Finding]:
        return [f for v in self.verdicts for f in v.findings]

    def to_dict(self) -> dict[str, Any]:
        block = self.block
        return {
            "blocked": self.blocked,
            "block": block.to_dict() if block is not None else None,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


def _capped(findings: list[Finding]) -> tuple[Finding, ...]:
    """At most MAX_FINDINGS findings, keeping the first blocking one."""
    if len(findings) <= MAX_FINDINGS:
        return tuple(findings)
    kept = findings[:MAX_FINDINGS]
    if not any(f.action == "block" for f in kept):
        first = next((f for f in findings if f.action == "block"), None)
        if first is not None:
            kept[-1] = first
    return tuple(kept)


def _verdict(
    guard: Guard,
    stage: Stage,
    findings: list[Finding],
    latency_s: float,
    score: float | None = None,
) -> Verdict:
    return Verdict(
        guard=guard.name,
        stage=stage,
        blocked=any(f.action == "block" for f in findings),
        findings=_capped(findings),
        latency_s=latency_s,
        version=guard.version,
        score=score,
    )


def _run(
    guard: Guard, scored: ScoredGuard | None, text: str, stage: Stage
) -> tuple[list[Finding], float | None]:
    if scored is not None:
        return scored.check_scored(text, stage)
    return guard.check(text, stage), None


class GuardPipeline:
    """An ordered set of guards; each check runs the guards whose ``stages`` hold the stage."""

    def __init__(self, guards: Sequence[Guard]) -> None:
        self.guards: tuple[Guard, ...] = tuple(guards)
        self._by_stage: dict[str, tuple[Guard, ...]] = {
            stage: tuple(g for g in self.guards if stage in g.stages)
            for stage in ("input", "output")
        }
        self._length_guards: dict[int, LengthGuard] = {
            id(g): g for g in self.guards if isinstance(g, LengthGuard)
        }
        self._scored: dict[int, ScoredGuard] = {
            id(g): g for g in self.guards if isinstance(g, ScoredGuard)
        }
        # protocol checks are slow: done once here, not per request
        self._context: tuple[int, ...] = tuple(
            i for i, g in enumerate(self.guards) if isinstance(g, ContextGuard)
        )

    @property
    def contextual(self) -> bool:
        """Whether some guard needs the request's context (see :meth:`bind`)."""
        return bool(self._context)

    def bind(self, context: Mapping[str, str]) -> GuardPipeline:
        """This pipeline with its context guards bound to one request's ``context``.

        Cheap (one call per request): the copy shares what it can; only the bound guards are
        looked at again.
        """
        if not context or not self._context:
            return self
        guards = list(self.guards)
        swap: dict[int, Guard] = {}
        kinds: list[tuple[Guard, bool, bool]] = []
        for i in self._context:
            original = guards[i]
            bound = original.bind(context)  # type: ignore[attr-defined]
            if bound is original:
                continue
            swap[id(original)] = bound
            guards[i] = bound
            if type(bound) is type(original):  # same class: same protocols, no slow check
                kinds.append(
                    (bound, id(original) in self._length_guards, id(original) in self._scored)
                )
            else:
                kinds.append(
                    (bound, isinstance(bound, LengthGuard), isinstance(bound, ScoredGuard))
                )
        if not swap:
            return self
        copy = GuardPipeline.__new__(GuardPipeline)
        copy.guards = tuple(guards)
        copy._by_stage = {
            stage: tuple(swap.get(id(g), g) for g in group)
            for stage, group in self._by_stage.items()
        }
        copy._length_guards = {k: g for k, g in self._length_guards.items() if k not in swap}
        copy._scored = {k: g for k, g in self._scored.items() if k not in swap}
        for bound, is_length, is_scored in kinds:
            if is_length:
                copy._length_guards[id(bound)] = bound  # type: ignore[assignment]
            if is_scored:
                copy._scored[id(bound)] = bound  # type: ignore[assignment]
        copy._context = self._context
        return copy

    def scored_guard(self, guard: Guard) -> ScoredGuard | None:
        """The guard as a :class:`ScoredGuard` when it reports scores, else None."""
        return self._scored.get(id(guard))

    def guards_for(self, stage: Stage) -> tuple[Guard, ...]:
        return self._by_stage.get(stage, ())

    def length_guard(self, guard: Guard) -> LengthGuard | None:
        """The guard as a :class:`LengthGuard` when it judges lengths only, else None."""
        return self._length_guards.get(id(guard))

    @property
    def overlap(self) -> int:
        """The longest span any guard's match can need (the stream overlap), over all stages."""
        return max((g.max_span for g in self.guards), default=0)

    def overlap_for(self, stage: Stage) -> int:
        return max(
            (g.max_span for g in self.guards_for(stage) if self.length_guard(g) is None),
            default=0,
        )

    def check(self, text: str, stage: Stage) -> PipelineResult:
        """Run every guard of ``stage`` on ``text``."""
        verdicts = []
        for guard in self.guards_for(stage):
            started = time.perf_counter()
            findings, score = _run(guard, self._scored.get(id(guard)), text, stage)
            verdicts.append(_verdict(guard, stage, findings, time.perf_counter() - started, score))
        return PipelineResult(verdicts)

    def check_messages(
        self, texts: Sequence[str], stage: Stage, roles: Sequence[str] | None = None
    ) -> PipelineResult:
        """Check several texts (the messages of one request) as one.

        Pattern guards see the texts joined by newlines (offsets point into that joined text);
        length guards judge the total length of the texts. With ``roles`` (one per text), a
        guard whose ``checks_system`` is false (the trained classifiers: an operator's system
        prompt is not an attack) does not see the ``system`` and ``developer`` messages.
        """
        if len(texts) == 1 and roles is None:
            return self.check(texts[0], stage)
        joined = "\n".join(texts)
        untrusted: str | None = None
        total = sum(len(t) for t in texts)
        verdicts = []
        for guard in self.guards_for(stage):
            started = time.perf_counter()
            length_guard = self.length_guard(guard)
            score: float | None = None
            if length_guard is not None:
                findings = length_guard.check_length(total, stage)
            else:
                text = joined
                if roles is not None and not getattr(guard, "checks_system", True):
                    if untrusted is None:
                        untrusted = "\n".join(
                            t for t, r in zip(texts, roles, strict=False) if r not in SYSTEM_ROLES
                        )
                    text = untrusted
                findings, score = _run(guard, self._scored.get(id(guard)), text, stage)
            verdicts.append(_verdict(guard, stage, findings, time.perf_counter() - started, score))
        return PipelineResult(verdicts)

    def stream(self, stage: Stage = "output", *, min_chunk: int = 0) -> StreamScanner:
        """A scanner for one stream of text (one per choice)."""
        return StreamScanner(self, stage, min_chunk=min_chunk)


@dataclass
class StreamStep:
    """What one delta (or the end) did: text safe to send now, and whether the stream is blocked."""

    release: str
    blocked: bool
    block: Finding | None


@dataclass
class _Tally:
    guard: Guard
    findings: list[Finding] = field(default_factory=list)
    blocked: bool = False
    latency_s: float = 0.0
    score: float | None = None

    def add(self, finding: Finding) -> None:
        is_block = finding.action == "block"
        if len(self.findings) < MAX_FINDINGS or (is_block and not self.blocked):
            self.findings.append(finding)
        self.blocked = self.blocked or is_block


class StreamScanner:
    """Overlapping-window checks over a stream of text deltas (see the module docstring).

    Buffer mode sends ``step.release`` (text that has been checked and cannot be part of a
    match still being written); stream mode sends deltas as they come and only looks at
    ``step.blocked``. Once blocked, the scanner releases nothing more.
    """

    def __init__(self, pipeline: GuardPipeline, stage: Stage, *, min_chunk: int = 0) -> None:
        if isinstance(min_chunk, bool) or min_chunk < 0:
            raise InputError(f"min_chunk must be >= 0, not {min_chunk!r}")
        self.stage: Stage = stage
        self.min_chunk = min_chunk
        guards = pipeline.guards_for(stage)
        self._tallies = [_Tally(g) for g in guards]
        self._window_guards: list[tuple[int, Guard]] = []
        self._scored = {i: pipeline.scored_guard(g) for i, g in enumerate(guards)}
        self._length_guards: list[tuple[int, LengthGuard]] = []
        for i, guard in enumerate(guards):
            length_guard = pipeline.length_guard(guard)
            if length_guard is None:
                self._window_guards.append((i, guard))
            else:
                self._length_guards.append((i, length_guard))
        self.overlap = pipeline.overlap_for(stage)
        self.hold = self.overlap + 2 * CONTEXT if self._window_guards else 0
        self._chunks: list[str] = []
        self._text = ""
        self._length = 0
        self._window = ""  # the text from self._start on: held tail plus unchecked text
        self._start = 0  # everything before it has been released
        self._checked = 0  # everything before it has been through a window check
        self._deferred = False
        self._seen: set[tuple[int, str, int, int, str]] = set()
        self._block: Finding | None = None
        self._finished = False

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if self._chunks:
            self._text += "".join(self._chunks)
            self._chunks.clear()
        return self._text

    @property
    def released(self) -> int:
        """How many characters have been released so far."""
        return self._start

    @property
    def blocked(self) -> bool:
        return self._block is not None

    @property
    def result(self) -> PipelineResult:
        """The merged verdicts so far: one per guard, findings with whole-stream offsets."""
        return PipelineResult(
            [
                Verdict(
                    guard=t.guard.name,
                    stage=self.stage,
                    blocked=t.blocked,
                    findings=tuple(t.findings),
                    latency_s=t.latency_s,
                    version=t.guard.version,
                    score=t.score,
                )
                for t in self._tallies
            ]
        )

    def feed(self, delta: str) -> StreamStep:
        """Take the next piece of text; check it with the held tail once enough is pending."""
        if self._finished:
            raise InputError("this stream has finished; start a new scanner")
        if not delta:
            return self._step("")
        self._chunks.append(delta)
        self._length += len(delta)
        if self._block is not None:
            return self._step("")
        self._window += delta
        self._check_length()
        if self._block is not None:
            return self._step("")
        pending = self._length - self._checked
        if pending < max(self.min_chunk, 1):
            return self._step("")
        return self._scan(final=False)

    def finish(self) -> StreamStep:
        """The stream ended: check what is left and release the held tail if it is clean."""
        if self._finished or self._block is not None:
            self._finished = True
            return self._step("")
        self._finished = True
        self._check_length()
        if self._block is not None:
            return self._step("")
        if self._window and (self._checked < self._length or self._deferred):
            return self._scan(final=True)
        release, self._window = self._window, ""
        self._start = self._length
        return self._step(release)

    def _step(self, release: str) -> StreamStep:
        return StreamStep(release, self._block is not None, self._block)

    def _record(self, index: int, finding: Finding) -> None:
        self._tallies[index].add(finding)
        if finding.action == "block" and self._block is None:
            self._block = finding

    def _check_length(self) -> None:
        for i, guard in self._length_guards:
            started = time.perf_counter()
            findings = guard.check_length(self._length, self.stage)
            self._tallies[i].latency_s += time.perf_counter() - started
            for f in findings:
                key = (i, f.category, -1, -1, f.detail)
                if key not in self._seen:
                    self._seen.add(key)
                    self._record(i, f)

    def _scan(self, *, final: bool) -> StreamStep:
        window, base, n = self._window, self._start, len(self._window)
        keep = n if final else self._hold_start(window)
        deferred = False
        for i, guard in self._window_guards:
            started = time.perf_counter()
            findings, score = _run(guard, self._scored[i], window, self.stage)
            tally = self._tallies[i]
            tally.latency_s += time.perf_counter() - started
            if score is not None and (tally.score is None or score > tally.score):
                tally.score = score
            for f in findings:
                if f.start >= 0:
                    if base > 0 and f.start < CONTEXT:
                        continue  # cut by the window's start: judged whole in an earlier window
                    if not final and f.end > n - CONTEXT:
                        deferred = True  # more text may change it; keep it held
                        keep = min(keep, max(0, f.start - CONTEXT))
                        continue
                    f = f.shifted(base)
                    key = (i, f.category, f.start, f.end, "")
                else:
                    key = (i, f.category, -1, -1, f.detail)
                if key not in self._seen:
                    self._seen.add(key)
                    self._record(i, f)
        self._checked = self._length
        self._deferred = deferred
        if self._block is not None:
            return self._step("")
        release, self._window = window[:keep], window[keep:]
        self._start += keep
        return self._step(release)

    def _hold_start(self, window: str) -> int:
        """Where the held tail starts: it keeps ``hold`` visible characters."""
        n, hold = len(window), self.hold
        if n <= hold:
            return 0
        cut = n - hold
        if window[cut:].isascii():
            return cut
        while cut > 0:
            visible = visible_length(window[cut:])
            if visible >= hold:
                return cut
            cut = max(0, cut - max(hold - visible, n - cut))
        return 0
