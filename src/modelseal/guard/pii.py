"""Personal data: payment card numbers, IBANs, US social security numbers, emails, phones.

Numbers are validated, not just shaped: card numbers must pass the Luhn checksum and match a
card network's prefix and length, IBANs the ISO 13616 mod-97 check and their country's length,
SSNs the Social Security Administration's area, group and serial rules. A random digit string
of the right shape is not flagged. Each category has its own action: ``block``, ``flag`` or
``off``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from modelseal.errors import InputError
from modelseal.guard.base import Action, Finding, Stage
from modelseal.guard.text import normalise

CategoryAction = Literal["block", "flag", "off"]

DEFAULT_ACTIONS: dict[str, CategoryAction] = {
    "card_number": "block",
    "iban": "block",
    "ssn": "block",
    "email": "flag",
    "phone": "flag",
}

DETAILS = {
    "card_number": "payment card number (Luhn valid)",
    "iban": "IBAN (mod-97 valid)",
    "ssn": "US social security number",
    "email": "email address",
    "phone": "phone number",
}

# ISO 13616 IBAN lengths by country (SWIFT IBAN registry)
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum of a string of ASCII digits."""
    if not digits or not digits.isdigit():
        return False
    total = sum(int(d) for d in digits[-1::-2]) + sum(_DOUBLED[int(d)] for d in digits[-2::-2])
    return total % 10 == 0


def card_network_ok(digits: str) -> bool:
    """Whether a card number has a known network's prefix (IIN) and a length it issues."""
    n = len(digits)
    if n < 13 or n > 19:
        return False
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65:  # Discover
        return n >= 16
    if 3528 <= p4 <= 3589:  # JCB
        return n >= 16
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):  # Diners Club
        return n >= 14
    if p2 == 62:  # UnionPay
        return n >= 16
    return p2 == 50 or 56 <= p2 <= 69  # Maestro


def is_card_number(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return card_network_ok(digits) and luhn_valid(digits)


def iban_valid(iban: str) -> bool:
    """ISO 13616: known country, its length, and ``int(rearranged) % 97 == 1``."""
    iban = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    if not iban.isascii() or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_INVALID_SSNS = frozenset({"078051120", "219099999", "457555462"})


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area 001-899 except 666, group 01-99, serial 0001-9999, no known fakes."""
    a = int(area)
    return (
        0 < a < 900
        and a != 666
        and group != "00"
        and serial != "0000"
        and area + group + serial not in _INVALID_SSNS
    )


# Card numbers, SSNs and phone numbers live in "digit clusters": digits with at most three
# separators between them, with an opening "(" or "+". One pass finds the clusters with at
# least 8 digits; the specific patterns then run only inside them. Patterns start with a class
# or literal so the regex engine skips ahead fast; the left boundary (what may not come before
# a match) is checked in Python on the few hits.
_CLUSTER = re.compile(r"[0-9](?<![0-9][0-9])(?:[ ().+-]{0,3}[0-9]){7,}", re.ASCII)
_CARD = re.compile(r"[2-6](?:[ -]?[0-9]){12,18}(?![ -]?[0-9])", re.ASCII)
_CARD_SPAN = 2 + 19 + 18 + 2
_IBAN = re.compile(r"[A-Z][A-Z][0-9][0-9](?: ?[A-Z0-9]){11,31}", re.ASCII)
_IBAN_SPAN = 1 + 34 + 8 + 1
_SSN = re.compile(r"[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}(?![0-9])(?!-[0-9])", re.ASCII)
_SSN_SPAN = 2 + 11 + 2
_EMAIL_DOMAIN = re.compile(
    r"@(?=[A-Za-z0-9.-]{4,120}(?![A-Za-z0-9.-]))(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9-])",
    re.ASCII,
)
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z", re.ASCII)
_EMAIL_LOCAL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"
)
_EMAIL_SPAN = 1 + 64 + 1 + 120 + 1
_PHONE_NANP = re.compile(
    r"(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}(?![0-9])", re.ASCII
)
_PHONE_NANP_LEAD = re.compile(r"\+?1[ .-]\Z", re.ASCII)
_PHONE_INTL = re.compile(r"\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}(?![0-9])", re.ASCII)
_PHONE_SPAN = 1 + 4 + 5 * 7 + 1
_DIGITS = frozenset("0123456789")
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

Span = tuple[int, int]
Cluster = tuple[int, int, int]  # start, end, number of digits


def digit_clusters(t: str) -> list[Cluster]:
    """The runs of at least 8 digits (with short separators) in ``t``, with their digit counts."""
    clusters = []
    for m in _CLUSTER.finditer(t):
        s, e = m.span()
        seg = m.group()
        digits = e - s - sum(map(seg.count, " ().+-"))
        while s > 0 and t[s - 1] in "(+" and m.start() - s < 2:
            s -= 1  # an opening "(" or "+" belongs to the number
        clusters.append((s, e, digits))
    return clusters


def _digit_run_before(t: str, s: int) -> bool:
    """Whether a digit (or a digit and one separator) comes right before offset ``s``."""
    if s == 0:
        return False
    prev = t[s - 1]
    return prev in _DIGITS or (prev in " -" and s > 1 and t[s - 2] in _DIGITS)


def _cards(t: str, clusters: list[Cluster]) -> Iterator[Span]:
    for s, e, digits in clusters:
        if digits >= 13:
            for m in _CARD.finditer(t, s, e):
                if not _digit_run_before(t, m.start()) and is_card_number(m.group()):
                    yield m.span()


def _ssns(t: str, clusters: list[Cluster]) -> Iterator[Span]:
    for cs, ce, digits in clusters:
        if digits >= 9:
            for m in _SSN.finditer(t, cs, ce):
                s = m.start()
                if s > 0 and (
                    t[s - 1] in _DIGITS or (t[s - 1] == "-" and s > 1 and t[s - 2] in _DIGITS)
                ):
                    continue
                if ssn_valid(t[s : s + 3], t[s + 4 : s + 6], t[s + 7 : s + 11]):
                    yield m.span()


def _phones(t: str, clusters: list[Cluster]) -> Iterator[Span]:
    for cs, ce, digits in clusters:
        spans: list[Span] = []
        if digits >= 10:
            for m in _PHONE_NANP.finditer(t, cs, ce):
                s = m.start()
                lead = _PHONE_NANP_LEAD.search(t, max(0, s - 3), s)
                if lead is not None:
                    s = lead.start()
                if s > 0 and (t[s - 1] in _WORD or t[s - 1] == "+"):
                    continue
                spans.append((s, m.end()))
        if "+" in t[cs:ce]:
            for m in _PHONE_INTL.finditer(t, cs, ce):
                s, e = m.span()
                if s > 0 and (t[s - 1] in _WORD or t[s - 1] == "+"):
                    continue
                if any(a < e and s < b for a, b in spans):
                    continue  # the same number, already found as a North American one
                if 8 <= sum(c in _DIGITS for c in m.group()) <= 15:
                    spans.append((s, e))
        yield from sorted(spans)


def _ibans(t: str, clusters: list[Cluster]) -> Iterator[Span]:
    pos = 0
    while (m := _IBAN.search(t, pos)) is not None:
        s = m.start()
        expected = IBAN_LENGTHS.get(t[s : s + 2])
        ok = expected is not None and (s == 0 or t[s - 1] not in _WORD)
        cut = _cut_alnum(t, s, m.end(), expected) if ok and expected else -1
        if cut > 0 and iban_valid(t[s:cut]):
            yield s, cut
            pos = cut
        else:
            pos = s + 1


def _cut_alnum(t: str, start: int, end: int, count: int) -> int:
    """The offset after ``count`` alphanumerics from ``start``, if a token boundary follows."""
    seen = 0
    for i in range(start, end):
        if t[i] != " ":
            seen += 1
            if seen == count:
                cut = i + 1
                if cut < len(t) and t[cut] in _WORD:
                    return -1
                return cut
    return -1


def _emails(t: str, clusters: list[Cluster]) -> Iterator[Span]:
    if "@" not in t:
        return
    for m in _EMAIL_DOMAIN.finditer(t):
        at = m.start()
        local = _EMAIL_LOCAL.search(t, max(0, at - 64), at)
        if local is None:
            continue
        s = local.start()
        if s > 0 and t[s - 1] in _EMAIL_LOCAL_CHARS:
            continue  # a local part longer than 64 characters
        yield s, m.end()


Finder = Callable[[str, list[Cluster]], Iterator[Span]]

_FINDERS: dict[str, tuple[Finder, int]] = {
    # name: (finder, max span)
    "card_number": (_cards, _CARD_SPAN),
    "iban": (_ibans, _IBAN_SPAN),
    "ssn": (_ssns, _SSN_SPAN),
    "email": (_emails, _EMAIL_SPAN),
    "phone": (_phones, _PHONE_SPAN),
}

CATEGORIES = tuple(_FINDERS)


class PiiGuard:
    """Finds validated personal data; each category blocks, flags or is off."""

    version = "1.0"

    def __init__(
        self,
        *,
        actions: dict[str, str] | None = None,
        stages: Iterable[str] = ("input", "output"),
        name: str = "pii",
    ) -> None:
        merged: dict[str, str] = dict(DEFAULT_ACTIONS)
        for category, action in (actions or {}).items():
            if category not in _FINDERS:
                raise InputError(
                    f"unknown PII category {category!r} (known: {', '.join(CATEGORIES)})"
                )
            if action not in ("block", "flag", "off"):
                raise InputError(f"{category!r} must be 'block', 'flag' or 'off', not {action!r}")
            merged[category] = action
        self.name = name
        self.stages: frozenset[str] = frozenset(stages)
        self.actions = merged
        self._active: list[tuple[str, Action, Finder]] = [
            (c, "block" if a == "block" else "flag", _FINDERS[c][0])
            for c, a in merged.items()
            if a != "off"
        ]
        self._clusters = any(c in ("card_number", "ssn", "phone") for c, _, _ in self._active)
        self.max_span = max((_FINDERS[c][1] for c, _, _ in self._active), default=0)

    def check(self, text: str, stage: Stage) -> list[Finding]:
        norm = normalise(text)
        t = norm.text
        clusters = digit_clusters(t) if self._clusters else []
        found: list[Finding] = []
        for category, action, finder in self._active:
            for s, e in finder(t, clusters):
                start, end = norm.span(s, e)
                found.append(
                    Finding(self.name, f"pii.{category}", action, DETAILS[category], start, end)
                )
        return found
