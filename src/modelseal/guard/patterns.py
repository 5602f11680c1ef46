"""Deny and allow patterns: an organisation's own rules as regular expressions.

A deny match blocks (or flags) unless an allow match overlaps it, so ``deny: ["kill"]`` with
``allow: ["kill -9", "kill a process"]`` lets the shell advice through. Patterns run on the
normalised text (see :mod:`modelseal.guard.text`). Each pattern is compiled on its own, so
inline flags and back-references keep their meaning; the first invalid one is named by index.

Streaming needs a bound on how long a match can be: ``max_span`` (default 256 characters).
Zero-width matches (an anchor or a lookaround alone) are ignored: they select no text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence

from modelseal.errors import InputError
from modelseal.guard.base import Action, Finding, Stage
from modelseal.guard.text import normalise

DEFAULT_MAX_SPAN = 256


def compile_patterns(patterns: Sequence[str], kind: str, flags: int) -> tuple[re.Pattern[str], ...]:
    """Compile each pattern, naming the first bad one by its index in the list."""
    compiled = []
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise InputError(f"{kind} pattern {i} must be a string, not {type(pattern).__name__}")
        try:
            compiled.append(re.compile(pattern, flags))
        except re.error as exc:
            raise InputError(
                f"{kind} pattern {i} is not a valid regular expression: {exc}"
            ) from None
        except (OverflowError, RecursionError, ValueError) as exc:
            raise InputError(f"{kind} pattern {i} cannot be compiled: {exc}") from None
    return tuple(compiled)


class PatternGuard:
    """Blocks (or flags) text matching a deny pattern that no allow pattern overlaps."""

    def __init__(
        self,
        *,
        deny: Sequence[str],
        allow: Sequence[str] = (),
        case_insensitive: bool = False,
        action: Action = "block",
        stages: Iterable[str] = ("input", "output"),
        max_span: int = DEFAULT_MAX_SPAN,
        name: str = "patterns",
    ) -> None:
        if action not in ("block", "flag"):
            raise InputError(f"'action' must be 'block' or 'flag', not {action!r}")
        if isinstance(max_span, bool) or not isinstance(max_span, int) or max_span < 1:
            raise InputError(f"'max_span' must be a whole number >= 1, not {max_span!r}")
        flags = re.IGNORECASE if case_insensitive else 0
        self._deny = compile_patterns(deny, "deny", flags)
        self._allow = compile_patterns(allow, "allow", flags)
        self.name = name
        self.action: Action = action
        self.stages: frozenset[str] = frozenset(stages)
        self.max_span = max_span
        rules = json.dumps([list(deny), list(allow), case_insensitive, action, max_span])
        self.version = "1.0+" + hashlib.sha256(rules.encode()).hexdigest()[:12]

    def check(self, text: str, stage: Stage) -> list[Finding]:
        if not self._deny:
            return []
        norm = normalise(text)
        t = norm.text
        allowed: list[tuple[int, int]] | None = None
        found: list[Finding] = []
        for i, pattern in enumerate(self._deny):
            for m in pattern.finditer(t):
                s, e = m.span()
                if s == e:
                    continue  # a zero-width match (an anchor or a lookaround alone) finds nothing
                if self._allow:
                    if allowed is None:
                        allowed = [a.span() for p in self._allow for a in p.finditer(t)]
                    if any(max(s, a) < min(e, b) or (a == b and s <= a <= e) for a, b in allowed):
                        continue
                start, end = norm.span(s, e)
                found.append(
                    Finding(self.name, "pattern.deny", self.action, f"deny pattern {i}", start, end)
                )
        return found
