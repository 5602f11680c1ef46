"""The licence rules of ``rules/licences.yaml``: loading, regex compilation, look-ups.

The look-ups answer from the rules alone (no licence text): the citations of a rule, the finding
a rule id stands for, the licence a card's ``license:`` tag or ``license_link`` names. Every rule
regex runs on the normalised (lower-cased, ASCII-punctuated) text of
:mod:`modelseal.audit._licence_text`; :class:`RulePattern` adds literal pre-filters so that
matching hundreds of patterns against a long licence stays fast. The public names are re-exported
by :mod:`modelseal.audit.licence`, the module to import.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from modelseal.audit.model import Citation, Evidence, Finding, LicenceCategory, Severity
from modelseal.audit.spdx import spdx_table
from modelseal.errors import Error

CARD_SOURCE = "README.md#metadata"  # where tag evidence points
_CONF_TAG = 0.5  # the card tag alone
_CONF_TAG_NAME = 0.4  # `license: other` + `license_name`, or only a license_link URL
NOT_A_TAG = frozenset({"other", "unknown", "none", "noassertion", ""})


# --- types -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextMatch:
    """A licence identified from a text (or from a card tag, with ``score`` <= 0.5)."""

    key: str  # rule key: "apache-2.0", "llama3.1", "gemma", …
    name: str
    category: LicenceCategory
    spdx: str | None
    osi_approved: bool
    score: float  # 0..1
    rule: str  # "LIC-ID-llama3.1"
    evidence: Evidence


@dataclass(frozen=True)
class LicenceRule:
    """One licence of ``rules/licences.yaml``."""

    id: str
    key: str
    name: str
    spdx: str | None
    category: LicenceCategory
    osi_approved: bool
    hf_tags: tuple[str, ...]
    priority: int
    policy: bool  # a use policy, not a licence: never governs the weights
    all: tuple[RulePattern, ...]
    any: tuple[RulePattern, ...]
    not_: tuple[RulePattern, ...]
    min_any: int
    notice: tuple[RulePattern, ...]
    links: tuple[RulePattern, ...]
    ends: tuple[RulePattern, ...]
    expected: frozenset[str] | None  # restriction rules of the published text (None: unknown)
    citation: Citation

    @property
    def matches_text(self) -> bool:
        return bool(self.all)


@dataclass(frozen=True)
class RestrictionRule:
    """One restriction pattern of ``rules/licences.yaml``."""

    id: str
    kind: str
    summary: str  # a template: "{n}", "{prefix}", … are named groups of the patterns
    patterns: tuple[RulePattern, ...]
    citations: tuple[Citation, ...]


# --- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    licences: tuple[LicenceRule, ...]
    by_key: Mapping[str, LicenceRule]
    by_tag: Mapping[str, LicenceRule]
    restrictions: tuple[RestrictionRule, ...]
    by_restriction: Mapping[str, RestrictionRule]
    max_bytes: int
    include: tuple[str, ...]
    roles: tuple[tuple[str, tuple[str, ...]], ...]
    findings: Mapping[str, tuple[Severity, Citation | None]]
    spdx_identifier: RulePattern
    spdx_categories: tuple[tuple[RulePattern, LicenceCategory], ...]


_SENTENCE_CHAR = r"(?:[^.;]|\.(?=\w))"


@dataclass(frozen=True)
class RulePattern:
    """A compiled rule regex with literal pre-filters (matching must stay fast).

    ``required`` is a literal every match contains, ``prefix`` one every match starts with.
    """

    regex: re.Pattern[str]
    prefix: str
    required: str

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        if self.required and text.find(self.required, pos) < 0:
            return None
        if self.prefix:
            at = text.find(self.prefix, pos)
            if at < 0:
                return None
            pos = at  # no match starts before the first occurrence of its prefix
        return self.regex.search(text, pos)


def _literal_runs(src: str) -> tuple[str, list[str]]:
    """(prefix, runs): literal runs at the top level of a regex, the one it starts with first.

    Conservative: a top-level alternation gives no literals; a character followed by a
    quantifier that allows zero repetitions is left out; groups and classes end a run.
    """
    runs: list[str] = []
    run: list[str] = []
    at_start = True  # no non-literal seen yet (leading \b allowed)
    prefix = ""
    depth, i, n = 0, 0, len(src)

    def close() -> None:
        nonlocal prefix, at_start
        if run:
            runs.append("".join(run))
            if at_start:
                prefix = runs[-1]
            run.clear()
        at_start = False

    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n:
            if src[i + 1].isalnum():
                leading_b = src[i + 1] == "b" and at_start and not run
                if depth == 0 and not leading_b:
                    close()
                i += 2
                continue
            char, step = src[i + 1], 2
        elif c == "[":
            end = i + 1
            while end < n and src[end] != "]":
                end += 2 if src[end] == "\\" else 1
            if depth == 0:
                close()
            i = end + 1
            continue
        elif c == "(":
            if depth == 0:
                close()
            depth += 1
            i += 1
            continue
        elif c == ")":
            depth -= 1
            i += 1
            continue
        elif c == "|":
            if depth == 0:
                return "", []
            i += 1
            continue
        elif c in ".^$":
            if depth == 0:
                close()
            i += 1
            continue
        elif c in "?*{+":
            if depth == 0:
                if run and c != "+":
                    run.pop()
                close()
            if c == "{":
                while i < n and src[i] != "}":
                    i += 1
            i += 1
            continue
        else:
            char, step = c, 1
        if depth == 0:
            run.append(char)
        i += step
    if depth == 0:
        close()
    return prefix, runs


def _compile(pattern: str, where: str) -> RulePattern:
    """Compile a rule regex; the text it runs on is lower-cased, so the regex must be too."""
    if re.search(r"[A-Z]", re.sub(r"\\.|<S>|\(\?P<\w+>", "", pattern)):
        raise Error(f"rules/licences.yaml: regex in {where} has upper-case letters: {pattern}")
    source = pattern.replace("<S>", _SENTENCE_CHAR)
    try:
        regex = re.compile(source)
    except re.error as exc:
        raise Error(f"rules/licences.yaml: bad regex in {where}: {exc}") from exc
    prefix, runs = _literal_runs(source)
    return RulePattern(regex, prefix, max(runs, key=len, default=""))


def _patterns(raw: Any, where: str) -> tuple[RulePattern, ...]:
    return tuple(_compile(str(p), where) for p in (raw or []))


def _citation(raw: Mapping[str, Any]) -> Citation:
    return Citation(str(raw["doc"]), str(raw.get("provision", "")), str(raw.get("url", "")))


def tag_key(tag: str) -> str:
    """``tag`` as a look-up key: case-folded, spaces and underscores as dashes."""
    return re.sub(r"[\s_]+", "-", tag.strip().casefold())


@functools.cache
def load_rules() -> Rules:
    text = resources.files("modelseal.audit").joinpath("rules/licences.yaml").read_text("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        raw = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise Error(f"rules/licences.yaml is not valid YAML: {exc}") from exc
    cites = {k: _citation(v) for k, v in raw["citations"].items()}

    restrictions = tuple(
        RestrictionRule(
            id=str(r["id"]),
            kind=str(r["kind"]),
            summary=str(r["summary"]),
            patterns=_patterns(r["patterns"], str(r["id"])),
            citations=tuple(cites[c] for c in r.get("cite", [])),
        )
        for r in raw["restrictions"]
    )
    licences: list[LicenceRule] = []
    for r in raw["licences"]:
        markers = r.get("markers") or {}
        expected = r.get("expected", None)
        licences.append(
            LicenceRule(
                id=str(r["id"]),
                key=str(r["key"]),
                name=str(r["name"]),
                spdx=r.get("spdx"),
                category=LicenceCategory(r["category"]),
                osi_approved=bool(r["osi_approved"]),
                hf_tags=tuple(tag_key(str(t)) for t in r.get("hf_tags", [])),
                priority=int(r.get("priority", 0)),
                policy=bool(r.get("policy", False)),
                all=_patterns(markers.get("all"), r["id"]),
                any=_patterns(markers.get("any"), r["id"]),
                not_=_patterns(markers.get("not"), r["id"]),
                min_any=int(markers.get("min_any", 1)),
                notice=_patterns(r.get("notice"), r["id"]),
                links=_patterns(r.get("links"), r["id"]),
                ends=_patterns(r.get("ends"), r["id"]),
                expected=None if expected is None else frozenset(str(e) for e in expected),
                citation=_citation(r["citation"]),
            )
        )
    by_key = {lic.key: lic for lic in licences}
    by_tag: dict[str, LicenceRule] = {}
    for lic in licences:
        for alias in (*lic.hf_tags, tag_key(lic.name), tag_key(lic.key)):
            by_tag.setdefault(alias, lic)
    findings = {
        rule: (Severity(spec["severity"]), cites[spec["cite"]] if spec.get("cite") else None)
        for rule, spec in raw["findings"].items()
    }
    files = raw["files"]
    return Rules(
        licences=tuple(licences),
        by_key=by_key,
        by_tag=by_tag,
        restrictions=restrictions,
        by_restriction={r.id: r for r in restrictions},
        max_bytes=int(files["max_bytes"]),
        include=tuple(str(p).casefold() for p in files["include"]),
        roles=tuple(
            (str(role), tuple(str(p).casefold() for p in pats))
            for role, pats in files["roles"].items()
        ),
        findings=findings,
        spdx_identifier=_compile(str(raw["spdx_identifier"]), "spdx_identifier"),
        spdx_categories=tuple(
            (_compile(str(c["pattern"]), "spdx_categories"), LicenceCategory(c["category"]))
            for c in raw["spdx_categories"]
        ),
    )


def licence_rules() -> tuple[LicenceRule, ...]:
    """Every licence the rules know, in file order."""
    return load_rules().licences


def restriction_rules() -> tuple[RestrictionRule, ...]:
    """Every restriction pattern, in file order."""
    return load_rules().restrictions


def rule_citations(rule_id: str) -> tuple[Citation, ...]:
    """The citations of a restriction rule (``LIC-R-MAU``) or licence rule (``LIC-ID-mit``)."""
    rules = load_rules()
    if rule_id in rules.by_restriction:
        return rules.by_restriction[rule_id].citations
    for lic in rules.licences:
        if lic.id == rule_id:
            return (lic.citation,)
    return ()


def finding(rule: str, message: str, evidence: Iterable[Evidence] = ()) -> Finding:
    """A finding of rule ``rule`` with the severity and citation the rules give it."""
    severity, citation = load_rules().findings[rule]
    return Finding(rule, severity, message, citation, tuple(evidence))


# --- matches ---------------------------------------------------------------------------------


def _spdx_category(spdx_id: str, osi: bool) -> LicenceCategory:
    if osi:
        return LicenceCategory.OSI
    for pattern, category in load_rules().spdx_categories:
        if pattern.search(spdx_id.casefold()):
            return category
    return LicenceCategory.UNKNOWN


def rule_match(rule: LicenceRule, score: float, evidence: Evidence) -> TextMatch:
    """``rule`` as a match with ``score`` and ``evidence``."""
    return TextMatch(
        key=rule.key,
        name=rule.name,
        category=rule.category,
        spdx=rule.spdx,
        osi_approved=rule.osi_approved,
        score=score,
        rule=rule.id,
        evidence=evidence,
    )


def spdx_match(licence_id: str, score: float, evidence: Evidence) -> TextMatch | None:
    """The licence an SPDX id names (a rule's when one has that id), None for an unknown id."""
    table = spdx_table()
    entry = table.get(licence_id)
    if entry is None:
        return None
    for rule in load_rules().licences:
        if rule.spdx and rule.spdx.casefold() == entry.id.casefold():
            return rule_match(rule, score, evidence)
    return TextMatch(
        key=entry.id.casefold(),
        name=entry.name,
        category=_spdx_category(entry.id, entry.osi_approved),
        spdx=entry.id,
        osi_approved=entry.osi_approved,
        score=score,
        rule="LIC-ID-spdx",
        evidence=evidence,
    )


# --- card tags -------------------------------------------------------------------------------


def _lookup_one(value: str, score: float, evidence: Evidence) -> TextMatch | None:
    key = tag_key(value)
    if key in NOT_A_TAG:
        return None
    rules = load_rules()
    rule = rules.by_key.get(key) or rules.by_tag.get(key)
    if rule is not None:
        return rule_match(rule, score, evidence)
    return spdx_match(value.strip(), score, evidence)


def lookup_tag(tag: str | None, license_name: str | None = None) -> TextMatch | None:
    """The licence a card's ``license:`` (and ``license_name:`` for ``other``) names, if known."""
    if tag:
        found = _lookup_one(tag, _CONF_TAG, Evidence(CARD_SOURCE, "metadata.license", tag))
        if found is not None:
            return found
    if license_name:
        return _lookup_one(
            license_name,
            _CONF_TAG_NAME,
            Evidence(CARD_SOURCE, "metadata.license_name", license_name),
        )
    return None


def lookup_link(link: str | None) -> TextMatch | None:
    """The licence a card's ``license_link`` URL points to, if a rule knows the URL."""
    if not link:
        return None
    for rule in load_rules().licences:
        if any(p.search(link.casefold()) for p in rule.links):
            return rule_match(
                rule, _CONF_TAG_NAME, Evidence(CARD_SOURCE, "metadata.license_link", link)
            )
    return None


def same_licence(tag: TextMatch, card_tag: str | None, text: TextMatch) -> bool:
    """Whether the card's tag (looked up as ``tag``) names the licence of the text."""
    if tag.key == text.key or (tag.spdx and text.spdx and tag.spdx == text.spdx):
        return True
    rule = load_rules().by_key.get(text.key)
    names = {tag_key(v) for v in (card_tag, tag.key) if v}
    return bool(rule and names & set(rule.hf_tags))
