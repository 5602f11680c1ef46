"""Secrets: API keys, tokens and private keys that must not go into or come out of a model.

Provider formats (AWS, GitHub, GitLab, Slack, OpenAI, Anthropic, Google, Stripe, PEM private key
headers, JWTs) are one precompiled alternation; a second pattern finds generic assignments
(``api_key = "..."``, ``"password": "..."``, ``Bearer ...``) whose value looks random (letters
and digits, Shannon entropy above a threshold), so placeholders such as ``your-api-key-here`` pass.

Every pattern is bounded: provider tokens are matched on their prefix plus a fixed number of
characters, so ``max_span`` is finite and a stream scanner needs only a short overlap.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from modelseal.errors import InputError
from modelseal.guard.base import Action, Finding, Stage
from modelseal.guard.text import Normalised, normalise

DEFAULT_MIN_ENTROPY = 3.2


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def looks_random(value: str, min_entropy: float) -> bool:
    """Letters and digits mixed, and entropy of at least ``min_entropy`` bits per character."""
    return (
        any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        and shannon_entropy(value) >= min_entropy
    )


@dataclass(frozen=True, slots=True)
class SecretRule:
    """One provider format.

    ``pattern`` starts with a literal (so the regex engine can skip ahead fast); ``before``
    lists the characters that must not precede a match (a token boundary, checked in Python
    because a leading lookbehind would make the engine try every position). ``span`` is the
    longest match plus its lookaround. ``lead`` lets a rule anchor on a rarer literal than its
    first characters: one of the ``lead`` strings must come right before the pattern and is part
    of the match.
    """

    key: str
    detail: str
    pattern: str
    span: int
    before: str = ""
    validate: Callable[[str], bool] | None = None
    lead: tuple[str, ...] = ()  # one of these (all the same length) must precede the pattern
    prefixes: tuple[str, ...] = ()  # how its tokens start (the generic rule leaves those alone)


def _openai_body(match: str) -> bool:
    body = match[3:]
    for prefix in ("proj-", "svcacct-", "admin-"):
        if body.startswith(prefix):
            body = body[len(prefix) :]
            break
    return looks_random(body, 3.0)


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = _ALNUM + "_-"

RULES: tuple[SecretRule, ...] = (
    SecretRule(
        "aws_access_key",
        "AWS access key id",
        r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])",
        22,
        _ALNUM,
        prefixes=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    SecretRule(
        "github_token",
        "GitHub token",
        r"gh(?:[pousr]_[A-Za-z0-9]{36}|ithub_pat_[A-Za-z0-9_]{30})",
        42,
        _TOKEN,
        prefixes=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    SecretRule(
        "gitlab_token",
        "GitLab token",
        r"gl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20}",
        28,
        _TOKEN,
        prefixes=("glpat-", "gldt-", "glrt-", "glptt-"),
    ),
    SecretRule(
        "slack_token",
        "Slack token",
        r"xox[abposre]-[0-9]{6,14}-[0-9A-Za-z]{4}",
        26,
        _TOKEN,
        prefixes=("xox",),
    ),
    SecretRule(
        "slack_webhook",
        "Slack webhook URL",
        r"https://hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]{6,12}/[AB][A-Z0-9]{6,12}/"
        r"[A-Za-z0-9]{8}",
        72,
    ),
    SecretRule(
        "openai_key",
        "OpenAI API key",
        # possessive: "sk-proj-" is never re-read as a 20-character body starting "proj-"
        r"sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?+[A-Za-z0-9_-]{20}",
        33,
        _TOKEN,
        _openai_body,
        prefixes=("sk-",),
    ),
    SecretRule(
        "anthropic_key",
        "Anthropic API key",
        r"sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_-]{20}",
        37,
        _TOKEN,
        prefixes=("sk-ant-",),
    ),
    SecretRule(
        "google_api_key",
        "Google API key",
        r"AIza[0-9A-Za-z_-]{35}",
        41,
        _TOKEN,
        prefixes=("AIza",),
    ),
    SecretRule(
        "google_oauth",
        "Google OAuth client secret",
        r"GOCSPX-[A-Za-z0-9_-]{28}",
        37,
        _TOKEN,
        prefixes=("GOCSPX-",),
    ),
    SecretRule(
        "google_oauth",
        "Google OAuth access token",
        r"ya29\.[0-9A-Za-z_-]{20}",
        27,
        _TOKEN,
        prefixes=("ya29.",),
    ),
    # anchored on the rare "_live_" / "_test_" so the engine skips ahead on "_"
    SecretRule(
        "stripe_key",
        "Stripe secret key",
        r"_(?:live|test)_[0-9A-Za-z]{16}",
        26,
        _ALNUM + "_",
        lead=("sk", "rk"),
        prefixes=("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
    ),
    SecretRule(
        "stripe_key",
        "Stripe webhook secret",
        r"whsec_[A-Za-z0-9]{32}",
        40,
        _ALNUM + "_",
        prefixes=("whsec_",),
    ),
    SecretRule(
        "private_key",
        "PEM private key",
        r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----",
        72,
    ),
    SecretRule(
        "jwt",
        "JSON Web Token",
        r"eyJ[A-Za-z0-9_-]{8,180}\.eyJ[A-Za-z0-9_-]{4}",
        192,
        _TOKEN,
        prefixes=("eyJ",),
    ),
)

GENERIC_KEY = "generic"
_KEYWORDS = ("key", "secret", "token", "passw", "pwd", "credential")
# a separator, an optional quote and a value of 16-64 characters ...
_VALUE = r"[A-Za-z0-9_\-+/=.~!#$%&*^]"
_ASSIGNED = re.compile(r"[:=]>?[ \t]{0,4}[\"']?(" + _VALUE + "{16,64})", re.ASCII)
# ... right after a keyword and an optional identifier suffix and quote
_KEYWORD_BEFORE = re.compile(
    r"(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|pwd|credentials?|access[_-]?key"
    r"|private[_-]?key)[A-Za-z0-9_.-]{0,20}[\"']?[ \t]{0,4}:?\Z",
    re.ASCII | re.IGNORECASE,
)
_KEYWORD_REACH = 50  # keyword (15) + suffix (20) + quote and blanks (5), rounded up
_BEARER = re.compile(r"bearer[ \t]{1,4}(" + _VALUE + "{20,64})", re.ASCII | re.IGNORECASE)
_GENERIC_SPAN = 2 + _KEYWORD_REACH + 2 + 4 + 1 + 64

KNOWN = frozenset(r.key for r in RULES) | {GENERIC_KEY}


class SecretsGuard:
    """Finds credentials by provider format and generic high-entropy assignments."""

    version = "1.0"

    def __init__(
        self,
        *,
        action: Action = "block",
        ignore: Iterable[str] = (),
        min_entropy: float = DEFAULT_MIN_ENTROPY,
        stages: Iterable[str] = ("input", "output"),
        name: str = "secrets",
    ) -> None:
        ignored = frozenset(ignore)
        unknown = sorted(ignored - KNOWN)
        if unknown:
            raise InputError(
                f"unknown secret kind(s) to ignore: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(KNOWN))})"
            )
        if action not in ("block", "flag"):
            raise InputError(f"'action' must be 'block' or 'flag', not {action!r}")
        self.name = name
        self.action: Action = action
        self.stages: frozenset[str] = frozenset(stages)
        self.min_entropy = float(min_entropy)
        self._rules = [
            (rule, re.compile(rule.pattern, re.ASCII)) for rule in RULES if rule.key not in ignored
        ]
        self._generic = GENERIC_KEY not in ignored
        self._prefixes = tuple(p for rule, _ in self._rules for p in rule.prefixes)
        spans = [r.span for r, _ in self._rules] + ([_GENERIC_SPAN] if self._generic else [])
        self.max_span = max(spans, default=0)

    def check(self, text: str, stage: Stage) -> list[Finding]:
        norm = normalise(text)
        t = norm.text
        found: list[Finding] = []
        for rule, regex in self._rules:
            pos = 0
            while (m := regex.search(t, pos)) is not None:
                s, e = m.span()
                if rule.lead:
                    s -= len(rule.lead[0])
                    if s < 0 or t[s : m.start()] not in rule.lead:
                        pos = m.start() + 1
                        continue
                if (s > 0 and t[s - 1] in rule.before) or (
                    rule.validate is not None and not rule.validate(t[s:e])
                ):
                    pos = m.start() + 1
                    continue
                start, end = norm.span(s, e)
                found.append(
                    Finding(self.name, f"secret.{rule.key}", self.action, rule.detail, start, end)
                )
                pos = e
        if self._generic:
            found.extend(self._generic_findings(t, norm))
        return found

    def _generic_findings(self, t: str, norm: Normalised) -> Iterator[Finding]:
        """Keyword assignments and bearer tokens whose value looks random.

        Values that start like a provider token are left to that provider's rule (which also
        validates them), so one key is one finding; this is decided on the value alone, so a
        window of a stream decides it the same way as the whole text.
        """
        low = t.lower()
        if any(k in low for k in _KEYWORDS):
            for m in _ASSIGNED.finditer(t):
                value = m.group(1)
                if value.startswith(self._prefixes) or not looks_random(value, self.min_entropy):
                    continue
                key = _KEYWORD_BEFORE.search(t, max(0, m.start() - _KEYWORD_REACH), m.start())
                if key is None:
                    continue
                start, end = norm.span(key.start(), m.end(1))
                yield Finding(
                    self.name,
                    f"secret.{GENERIC_KEY}",
                    self.action,
                    "credential assignment with a random-looking value",
                    start,
                    end,
                )
        if "bearer" in low:
            for m in _BEARER.finditer(t):
                value = m.group(1)
                if value.startswith(self._prefixes) or not looks_random(value, self.min_entropy):
                    continue
                start, end = norm.span(m.start(), m.end(1))
                yield Finding(
                    self.name, f"secret.{GENERIC_KEY}", self.action, "bearer token", start, end
                )
