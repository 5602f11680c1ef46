"""The guard interface: findings, verdicts and the one-method :class:`Guard` protocol.

A guard looks at one text (a prompt, a whole answer, or a window of a streamed answer) and
returns :class:`Finding` objects. A finding names what was found (``category``), whether it
blocks, and where (offsets into the checked text), but never carries the matched text itself:
findings travel into receipts, metrics, logs and error messages.

Streaming: a guard declares ``max_span``, the longest stretch of text one of its matches can
need, lookaround included. The stream scanner keeps that much text (plus a few characters of
context) from one window to the next, so a match split across deltas is always seen whole.
Findings with positions must cover at most ``max_span`` characters; a guard that judges a
window as a whole (a classifier) reports ``start = end = -1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Stage = Literal["input", "output"]
Action = Literal["block", "flag"]

STAGES: frozenset[str] = frozenset({"input", "output"})
ACTIONS: frozenset[str] = frozenset({"block", "flag"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a guard found. ``detail`` is human text that never contains the matched text."""

    guard: str
    category: str
    action: Action
    detail: str
    start: int = -1
    end: int = -1
    score: float = 1.0

    @property
    def blocks(self) -> bool:
        return self.action == "block"

    def shifted(self, offset: int) -> Finding:
        """The same finding with its offsets moved by ``offset`` (window -> whole text)."""
        if self.start < 0 or offset == 0:
            return self
        return Finding(
            self.guard,
            self.category,
            self.action,
            self.detail,
            self.start + offset,
            self.end + offset,
            self.score,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "category": self.category,
            "action": self.action,
            "detail": self.detail,
            "start": self.start,
            "end": self.end,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """One guard's result on one check (or on a whole stream, merged)."""

    guard: str
    stage: Stage
    blocked: bool
    findings: tuple[Finding, ...]
    latency_s: float
    version: str = ""
    score: float | None = None  # a classifier's highest score on the text (None: no score)

    @property
    def block(self) -> Finding | None:
        """The first blocking finding, if any."""
        for finding in self.findings:
            if finding.action == "block":
                return finding
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "version": self.version,
            "stage": self.stage,
            "blocked": self.blocked,
            "findings": [f.to_dict() for f in self.findings],
            "latency_s": self.latency_s,
            "score": self.score,
        }


class Guard(Protocol):
    """A guard: a name, a version, the stages it runs on, and one ``check`` method.

    ``check`` must be fast, side-effect free and never touch the network; it returns the
    findings for ``text`` with offsets into ``text`` (or -1 when not applicable).
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def stages(self) -> frozenset[str]: ...

    @property
    def max_span(self) -> int: ...

    def check(self, text: str, stage: Stage) -> list[Finding]: ...


@runtime_checkable
class LengthGuard(Protocol):
    """A guard that judges only the length of a text (the stream scanner feeds it totals)."""

    def check_length(self, length: int, stage: Stage) -> list[Finding]: ...


@runtime_checkable
class ScoredGuard(Protocol):
    """A guard that also reports a score when it finds nothing (a trained classifier)."""

    def check_scored(self, text: str, stage: Stage) -> tuple[list[Finding], float]: ...


@runtime_checkable
class ContextGuard(Protocol):
    """A guard that needs the request's context (the system prompt, for the leak check)."""

    def bind(self, context: Mapping[str, str]) -> Guard: ...
