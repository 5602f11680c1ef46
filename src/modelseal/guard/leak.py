"""System-prompt leak check on output: does the answer repeat the operator's instructions?

The gateway binds each request's system prompt to the guard (:meth:`LeakGuard.bind`); the bound
guard looks for the prompt's wording in the answer, after the same normalisation the other
guards use (case, spacing, invisible characters, homoglyphs):

* a run of ``min_words`` consecutive words of the system prompt (8 by default) appearing in the
  answer is a leak, wherever it is;
* a short system prompt (fewer words than that) leaks when it appears whole;
* ``canaries``: strings planted in the system prompt that must never come out (checked with or
  without a bound prompt).

Without a bound prompt, answers that announce their instructions ("my system prompt is",
"here are my instructions") are flagged (``announce_action``, ``flag`` by default): a hint, not
proof. Findings carry the span in the answer but never the words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from modelseal.errors import InputError
from modelseal.guard.base import Action, Finding, Stage
from modelseal.guard.text import normalise

DEFAULT_MIN_WORDS = 8
BOUND_CACHE = 64
_WORD = re.compile(r"\w+")
_ANNOUNCE = re.compile(
    r"\b(?:my|the)\s+(?:system|initial|original|hidden|secret)\s+(?:prompt|instructions?)\s+"
    r"(?:is|are|was|were|says?|reads?)\b"
    r"|\bhere\s+(?:is|are)\s+(?:my|the)\s+(?:system\s+prompt|(?:initial\s+|system\s+)?instructions)\b"
    r"|\bI\s+was\s+(?:instructed|told|programmed)\s+to\s*:",
    re.IGNORECASE,
)


def _words(text: str) -> list[tuple[str, int, int]]:
    folded = normalise(text)
    out = []
    for m in _WORD.finditer(folded.text):
        start, end = folded.span(m.start(), m.end())
        out.append((m.group().lower(), start, end))
    return out


class LeakGuard:
    """See the module docstring. ``bind`` returns a per-request copy holding the system prompt."""

    def __init__(
        self,
        *,
        min_words: int = DEFAULT_MIN_WORDS,
        canaries: Sequence[str] = (),
        action: Action = "block",
        announce_action: str = "flag",
        name: str = "leak",
        system: str = "",
    ) -> None:
        if min_words < 3:
            raise InputError("min_words must be at least 3")
        if announce_action not in {"block", "flag", "off"}:
            raise InputError("announce_action must be block, flag or off")
        self._name = name
        self.min_words = min_words
        self.canaries = tuple(c for c in canaries if c)
        self.action: Action = action
        self.announce_action = announce_action
        self.system = system
        self._bound: dict[str, LeakGuard] = {}
        self._grams: set[tuple[str, ...]] = set()
        self._whole: tuple[str, ...] = ()
        words = [w for w, _, _ in _words(system)] if system else []
        if len(words) >= min_words:
            self._grams = {
                tuple(words[i : i + min_words]) for i in range(len(words) - min_words + 1)
            }
        elif words:
            self._whole = tuple(words)

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return "1"

    @property
    def stages(self) -> frozenset[str]:
        return frozenset({"output"})

    @property
    def max_span(self) -> int:
        # the longest run we need to see whole: min_words words of up to ~24 characters
        longest = max((len(c) for c in self.canaries), default=0)
        return max(self.min_words * 24, longest, 160)

    def bind(self, context: Mapping[str, str]) -> LeakGuard:
        """A copy for one request: ``context["system"]`` is the system prompt to protect.

        Copies are kept for the last :data:`BOUND_CACHE` system prompts (an application sends
        the same one with every request)."""
        system = context.get("system", "")
        if not system:
            return self
        cached = self._bound.get(system)
        if cached is not None:
            return cached
        bound = self._bound[system] = self._copy(system)
        if len(self._bound) > BOUND_CACHE:
            del self._bound[next(iter(self._bound))]
        return bound

    def _copy(self, system: str) -> LeakGuard:
        return LeakGuard(
            min_words=self.min_words,
            canaries=self.canaries,
            action=self.action,
            announce_action=self.announce_action,
            name=self._name,
            system=system,
        )

    def check(self, text: str, stage: Stage) -> list[Finding]:
        findings: list[Finding] = []
        lowered = normalise(text)
        for canary in self.canaries:
            at = lowered.text.find(canary)
            if at >= 0:
                start, end = lowered.span(at, at + len(canary))
                findings.append(
                    Finding(self._name, "canary", self.action, "a planted canary", start, end)
                )
        if self._grams or self._whole:
            words = _words(text)
            n = self.min_words if self._grams else len(self._whole)
            for i in range(len(words) - n + 1):
                gram = tuple(w for w, _, _ in words[i : i + n])
                if (self._grams and gram in self._grams) or gram == self._whole:
                    findings.append(
                        Finding(
                            self._name,
                            "system_prompt",
                            self.action,
                            f"{n} consecutive words of the system prompt",
                            words[i][1],
                            words[i + n - 1][2],
                        )
                    )
                    break
        if self.announce_action != "off" and not findings:
            m = _ANNOUNCE.search(lowered.text)
            if m is not None:
                start, end = lowered.span(m.start(), m.end())
                action: Action = "block" if self.announce_action == "block" else "flag"
                findings.append(
                    Finding(
                        self._name,
                        "announced_instructions",
                        action,
                        "the answer announces its instructions",
                        start,
                        end,
                    )
                )
        return findings


def leak_guard(
    *,
    min_words: int = DEFAULT_MIN_WORDS,
    canaries: Iterable[str] = (),
    action: Action = "block",
    announce_action: str = "flag",
    name: str = "leak",
) -> LeakGuard:
    return LeakGuard(
        min_words=min_words,
        canaries=list(canaries),
        action=action,
        announce_action=announce_action,
        name=name,
    )
