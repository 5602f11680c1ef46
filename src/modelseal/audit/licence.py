"""Licence identification from the licence TEXT of a release, with its restrictive clauses.

The card's ``license:`` tag is a claim; the licence file is the evidence. This module reads the
top-level licence files of a release (:func:`find_licence_files`), decodes them defensively
(UTF-8 with or without BOM, UTF-16/32 with BOM, BOM-less UTF-16, else cp1252/latin-1 with a
finding), identifies each text against the rules in ``rules/licences.yaml``
(:func:`identify_text`), quotes the restrictive clauses it finds with their line numbers, and
decides which licence governs the weights (:func:`identify_release`).

The Python is an engine over the YAML: licences, restriction patterns, file roles, finding
severities and citations are all data. Matching runs on a normalised copy of the text
(typographic quotes and dashes made ASCII, markdown emphasis dropped, whitespace collapsed, A-Z
lower-cased: every rule is ASCII) that keeps a map back to the original, so every quote is the
exact original wording (a substring of the decoded text) and carries its ``line N`` (``lines
N-M`` when it spans lines; lines counted as ``str.splitlines`` does).

Decisions worth knowing:

* Notice-retention duties of permissive licences (Apache-2.0 NOTICE, MIT copyright notice) are
  never reported as restrictions. The ``attribution`` kind is reserved for branding duties
  ("prominently display 'Built with Llama'"), which only model licences impose.
* A known licence whose text carries a restriction the published text does not (an Apache-2.0
  text with an appended "no commercial use" line; a "Llama 3.1" text with the Llama 2 output
  ban) is reported as modified: name suffixed "(modified)", confidence at most 0.6, finding
  ``licence.modified``. An open licence so modified also loses its SPDX id and OSI flag (key
  ``apache-2.0-modified``, category restricted or non-commercial), so nothing downstream counts
  it as the open licence. Text after the licence's
  last sentence that adds no restriction lowers the confidence to 0.8 (``licence.extra-text``).
* Use policies (Llama AUP, Gemma Prohibited Use Policy) are identified but never govern the
  weights; their restrictions are merged into the release licence.

Nothing here raises on release content: unreadable, binary, empty, huge or odd-encoded files
become findings.

This is the module to import. Reading, decoding, normalising and quoting live in
:mod:`modelseal.audit._licence_text`; loading and compiling the rules, and looking a card tag up
in them, in :mod:`modelseal.audit._licence_rules`; their public names are re-exported here.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from modelseal.audit._licence_rules import (
    CARD_SOURCE,
    NOT_A_TAG,
    LicenceRule,
    RestrictionRule,
    RulePattern,
    TextMatch,
    finding,
    licence_rules,
    load_rules,
    lookup_link,
    lookup_tag,
    restriction_rules,
    rule_citations,
    rule_match,
    same_licence,
    spdx_match,
    tag_key,
)
from modelseal.audit._licence_text import (
    QUOTE_MAX,
    DecodedText,
    LicenceText,
    decode_licence,
    decode_licence_text,
    evidence_at,
    find_licence_files,
    quote_restrictions,
)
from modelseal.audit._licence_text import TRANSLATE as _TRANSLATE  # noqa: F401 (tests read it)
from modelseal.audit._licence_text import Normalised as _Normalised
from modelseal.audit.model import (
    Evidence,
    Finding,
    LicenceCategory,
    LicenceResult,
    Restriction,
)

__all__ = [
    "CARD_SOURCE",
    "QUOTE_MAX",
    "DecodedText",
    "LicenceRule",
    "LicenceText",
    "RestrictionRule",
    "RulePattern",
    "TextMatch",
    "decode_licence",
    "decode_licence_text",
    "find_licence_files",
    "identify_component_licences",
    "identify_release",
    "identify_text",
    "licence_rules",
    "lookup_tag",
    "restriction_rules",
    "rule_citations",
]

_SCORE_NOTICE = 0.6  # a short "X is licensed under Y" notice, not the licence text
_SCORE_SPDX_ID = 0.7  # an SPDX-License-Identifier line
_SCORE_MODIFIED = 0.6
_SCORE_EXTRA = 0.8

_CATEGORY_RANK = {  # most restrictive first: the conservative pick among competing texts
    LicenceCategory.PROPRIETARY: 0,
    LicenceCategory.NON_COMMERCIAL: 1,
    LicenceCategory.RESTRICTED: 2,
    LicenceCategory.UNKNOWN: 3,
    LicenceCategory.OPEN_MODEL: 4,
    LicenceCategory.OPEN_DATA: 5,
    LicenceCategory.OSI: 6,
}


# --- file roles ------------------------------------------------------------------------------


def _role(path: str) -> str:
    name = Path(path).name.casefold()
    for role, patterns in load_rules().roles:
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return role
    return "general"


# --- identification --------------------------------------------------------------------------


def _score(rule: LicenceRule, norm: str) -> tuple[float, int] | None:
    """(score, position of the first marker) when ``rule`` matches ``norm``."""
    if any(p.search(norm) for p in rule.not_):
        return None
    first = len(norm)
    for pattern in rule.all:
        m = pattern.search(norm)
        if m is None:
            return None
        first = min(first, m.start())
    hits = sum(1 for p in rule.any if p.search(norm))
    if rule.any and hits < min(rule.min_any, len(rule.any)):
        return None
    return (len(rule.all) + hits) / (len(rule.all) + len(rule.any)), first


def _best_match(path: str, doc: _Normalised) -> tuple[LicenceRule | None, TextMatch | None]:
    rules = load_rules()
    best: tuple[int, float, int, LicenceRule] | None = None
    for rule in rules.licences:
        if not rule.all:
            continue
        scored = _score(rule, doc.norm)
        if scored is None:
            continue
        score, first = scored
        if best is None or (rule.priority, score, -first) > (best[0], best[1], -best[2]):
            best = (rule.priority, score, first, rule)
    if best is not None:
        _, score, first, rule = best
        return rule, rule_match(rule, score, evidence_at(path, doc, first))
    notice: tuple[int, int, LicenceRule] | None = None
    for rule in rules.licences:
        for pattern in rule.notice:
            m = pattern.search(doc.norm)
            if m and (notice is None or (rule.priority, -m.start()) > (notice[0], -notice[1])):
                notice = (rule.priority, m.start(), rule)
    if notice is not None:
        _, first, rule = notice
        return rule, rule_match(rule, _SCORE_NOTICE, evidence_at(path, doc, first))
    m = rules.spdx_identifier.search(doc.norm)
    if m:
        match = spdx_match(m.group("id"), _SCORE_SPDX_ID, evidence_at(path, doc, m.start()))
        if match is not None:
            return rules.by_key.get(match.key), match
    return None, None


def _extra_text(rule: LicenceRule, path: str, doc: _Normalised) -> Evidence | None:
    last = -1
    for pattern in rule.ends:
        for m in pattern.regex.finditer(doc.norm):
            last = max(last, m.end())
    if last < 0:
        return None
    tail = doc.norm[last:]
    if len(re.findall(r"\w+", tail)) < 3:
        return None
    first = last + (len(tail) - len(tail.lstrip()))
    return evidence_at(path, doc, first)


@dataclass(frozen=True)
class _Analysis:
    text: LicenceText
    role: str
    match: TextMatch | None
    rule: LicenceRule | None
    restrictions: tuple[Restriction, ...]
    findings: tuple[Finding, ...]
    readable: bool  # decoded into a non-empty text


def _analyse(text: LicenceText) -> _Analysis:
    role = _role(text.path)
    findings: list[Finding] = []

    def done(readable: bool = False) -> _Analysis:
        return _Analysis(text, role, None, None, (), tuple(findings), readable)

    if text.error:
        findings.append(
            finding(
                "licence.unreadable",
                f"{text.path} could not be read ({text.error}); it was not analysed",
                [Evidence(text.path)],
            )
        )
        return done()
    limit = load_rules().max_bytes
    if text.truncated or len(text.data) > limit:
        size = text.size if text.size is not None else len(text.data)
        findings.append(
            finding(
                "licence.truncated",
                f"{text.path} is {size} bytes; only the first {limit} bytes were analysed",
                [Evidence(text.path)],
            )
        )
    if not text.data.strip():
        findings.append(finding("licence.empty", f"{text.path} is empty", [Evidence(text.path)]))
        return done()
    decoded = decode_licence_text(text)
    if decoded.text is None:
        findings.append(
            finding(
                "licence.unreadable",
                f"{text.path} is not readable text ({decoded.problem}); it was not analysed",
                [Evidence(text.path, "", decoded.encoding)],
            )
        )
        return done()
    if decoded.guessed:
        findings.append(
            finding(
                "licence.encoding-guessed",
                f"{text.path} has no byte-order mark and is not UTF-8; it was read as "
                f"{decoded.encoding}",
                [Evidence(text.path, "", decoded.encoding)],
            )
        )
    if not decoded.text.strip():
        findings.append(
            finding("licence.empty", f"{text.path} holds no text", [Evidence(text.path)])
        )
        return done()

    doc = _Normalised.of(decoded.text)
    rule, match = _best_match(text.path, doc)
    restrictions = quote_restrictions(text.path, doc, load_rules().restrictions)
    if rule is not None and match is not None and match.score > _SCORE_NOTICE:
        match = _judge_modifications(rule, match, restrictions, text.path, doc, findings)
    return _Analysis(text, role, match, rule, restrictions, tuple(findings), True)


def _judge_modifications(
    rule: LicenceRule,
    match: TextMatch,
    restrictions: tuple[Restriction, ...],
    path: str,
    doc: _Normalised,
    findings: list[Finding],
) -> TextMatch:
    if rule.expected is not None:
        added = [r for r in restrictions if r.rule not in rule.expected]
        if added:
            kinds = sorted({r.kind for r in added})
            changed = replace(
                match,
                name=f"{rule.name} (modified)",
                score=min(match.score, _SCORE_MODIFIED),
            )
            if match.category.is_open:
                # no longer the open licence: drop its SPDX id so nothing counts it as open
                commercial = any(r.kind == "commercial" for r in added)
                changed = replace(
                    changed,
                    key=f"{rule.key}-modified",
                    spdx=None,
                    osi_approved=False,
                    category=(
                        LicenceCategory.NON_COMMERCIAL if commercial else LicenceCategory.RESTRICTED
                    ),
                )
            findings.append(
                finding(
                    "licence.modified",
                    f"{path} matches the {rule.name} but adds terms the published text does not "
                    f"have ({', '.join(kinds)}): it is a modified licence",
                    [r.evidence for r in added],
                )
            )
            return changed
    extra = _extra_text(rule, path, doc)
    if extra is not None:
        findings.append(
            finding(
                "licence.extra-text",
                f"{path} has text after the end of the {rule.name}; check that it does not "
                "change the terms",
                [extra],
            )
        )
        return replace(match, score=min(match.score, _SCORE_EXTRA))
    return match


def identify_text(
    text: LicenceText,
) -> tuple[TextMatch | None, tuple[Restriction, ...], tuple[Finding, ...]]:
    """Identify one licence text, quote its restrictive clauses and report reading problems.

    Never raises on content: binary junk, an empty file or an undecodable one come back as
    ``(None, (), findings)``.
    """
    analysis = _analyse(text)
    return analysis.match, analysis.restrictions, analysis.findings


def identify_component_licences(texts: Sequence[LicenceText]) -> dict[str, TextMatch]:
    """The licence each licence file is (path -> match); use policies and unknown texts left out.

    The lead pairs ``LICENSE-CODE`` with code and ``LICENSE-MODEL`` with weights from this.
    """
    out: dict[str, TextMatch] = {}
    for text in texts:
        analysis = _analyse(text)
        if analysis.match is not None and not (analysis.rule and analysis.rule.policy):
            out[text.path] = analysis.match
    return out


# --- the release -----------------------------------------------------------------------------


def _name_rank(path: str) -> int:
    name = Path(path).name.casefold()
    stem = name.split(".", 1)[0]
    if stem in ("license", "licence"):
        return 0
    if stem.startswith(("license", "licence")):
        return 1
    return 2 if stem.startswith("copying") else 3


def _link_path(link: str | None) -> str | None:
    if not link or "://" in link:
        return None
    return link.strip().removeprefix("./").casefold()


def _governs(a: _Analysis) -> bool:
    return a.match is not None and not (a.rule is not None and a.rule.policy)


def _governing(
    analysed: Sequence[_Analysis], link: str | None, findings: list[Finding]
) -> _Analysis | None:
    model = [a for a in analysed if a.role == "model" and _governs(a)]
    if model:
        return model[0]
    wanted = _link_path(link)
    for a in analysed:
        if wanted and a.text.path.casefold() == wanted and _governs(a) and a.role != "code":
            return a
    general = [a for a in analysed if a.role == "general" and _governs(a)]
    general.sort(
        key=lambda a: (
            _CATEGORY_RANK[a.match.category] if a.match else 9,
            _name_rank(a.text.path),
            a.text.path,
        )
    )
    if general:
        keys = {a.match.key for a in general if a.match}
        if len(keys) > 1:
            names = ", ".join(f"{a.text.path} ({a.match.name})" for a in general if a.match)
            findings.append(
                finding(
                    "licence.multiple",
                    f"several licence files name different licences ({names}) and none is "
                    f"marked as the model licence; the most restrictive, {general[0].text.path}, "
                    "is taken to govern the weights",
                    [a.match.evidence for a in general if a.match],
                )
            )
        return general[0]
    notice = [a for a in analysed if a.role == "notice" and _governs(a)]
    return notice[0] if notice else None


def _merged_restrictions(
    analysed: Sequence[_Analysis], governing: _Analysis | None
) -> tuple[Restriction, ...]:
    ordered = sorted(analysed, key=lambda a: a is not governing)
    seen: set[tuple[str, str]] = set()
    merged: list[Restriction] = []
    for a in ordered:
        if a.role in ("code", "third-party") and a is not governing:
            continue
        if (
            governing is not None
            and a is not governing
            and _governs(a)
            and a.role not in ("policy", "notice")
            and a.match is not None
            and governing.match is not None
            and a.match.key != governing.match.key
        ):
            continue  # another licence (for code, data, …) does not restrict the weights
        for r in a.restrictions:
            if (r.rule, r.evidence.source) not in seen:
                seen.add((r.rule, r.evidence.source))
                merged.append(r)
    return tuple(merged)


def _category_from(restrictions: Sequence[Restriction]) -> LicenceCategory:
    if any(r.kind == "commercial" for r in restrictions):
        return LicenceCategory.NON_COMMERCIAL
    return LicenceCategory.RESTRICTED if restrictions else LicenceCategory.UNKNOWN


_OSD_KINDS = frozenset(
    {
        "commercial",
        "user-threshold",
        "acceptable-use",
        "region",
        "output-use",
        "field-of-use",
        "remote-restriction",
        "no-derivatives",
    }
)


def identify_release(
    texts: Sequence[LicenceText],
    card_tag: str | None,
    card_license_name: str | None = None,
    card_license_link: str | None = None,
) -> tuple[LicenceResult, tuple[Finding, ...]]:
    """The licence that governs the weights of a release, its restrictions and the findings.

    Preference: a model licence file (``LICENSE-MODEL``), the file ``license_link`` names, the
    general licence files (the most restrictive when they disagree), a NOTICE; else the card
    tag alone (``method="tag"``); else ``method="none"``. Restrictions are merged from the
    governing text, use policies, notices and unidentified licence files.
    """
    findings: list[Finding] = []
    analysed = [_analyse(t) for t in sorted(texts, key=lambda t: t.path)]
    for a in analysed:
        findings.extend(a.findings)
    tag_match = lookup_tag(card_tag, card_license_name) or lookup_link(card_license_link)
    tag_value = card_tag or card_license_name or ""
    tag_evidence = Evidence(CARD_SOURCE, "metadata.license", tag_value)
    if card_tag and tag_match is None and tag_key(card_tag) not in NOT_A_TAG:
        findings.append(
            finding(
                "licence.tag-unknown",
                f"the card's `license: {card_tag}` is not a licence id modelseal knows",
                [tag_evidence],
            )
        )

    governing = _governing(analysed, card_license_link, findings)
    restrictions = _merged_restrictions(analysed, governing)
    unidentified = [
        a for a in analysed if a.readable and a.match is None and a.role in ("general", "model")
    ]
    for a in unidentified:
        findings.append(
            finding(
                "licence.unidentified",
                f"{a.text.path} is not a licence text modelseal recognises; read it yourself"
                + (f" ({len(a.restrictions)} restrictive clauses found)" if a.restrictions else ""),
                [Evidence(a.text.path)],
            )
        )

    if governing is not None and governing.match is not None:
        g = governing.match
        if tag_match is not None and not same_licence(tag_match, card_tag, g):
            findings.append(
                finding(
                    "licence.tag-mismatch",
                    f"the card names {tag_match.name} (`{tag_value}`) but {g.evidence.source} is "
                    f"the {g.name}",
                    [tag_match.evidence, g.evidence],
                )
            )
        result = LicenceResult(
            id=g.spdx or g.key,
            name=g.name,
            category=g.category,
            osi_approved=g.osi_approved,
            source=g.evidence,
            method="text",
            confidence=g.score,
            restrictions=restrictions,
            card_tag=card_tag,
            rule=g.rule,
        )
        return result, tuple(findings)

    code_only = [a.text.path for a in analysed if a.role == "code" and a.match is not None]
    if tag_match is not None:
        if not unidentified:
            what = (
                f"only a code licence ({', '.join(code_only)}) is present"
                if code_only
                else "no licence text for the weights is in the release"
            )
            findings.append(
                finding(
                    "licence.no-text",
                    f"{what}; the licence is taken from the card tag `{tag_value}` alone",
                    [tag_match.evidence],
                )
            )
        osd_kinds = sorted({r.kind for r in restrictions} & _OSD_KINDS)
        if tag_match.category.is_open and osd_kinds:
            findings.append(
                finding(
                    "licence.tag-mismatch",
                    f"the card names {tag_match.name} (`{tag_value}`) but the licence files "
                    f"restrict use ({', '.join(osd_kinds)})",
                    [tag_match.evidence, *(r.evidence for r in restrictions[:3])],
                )
            )
        result = LicenceResult(
            id=tag_match.spdx or tag_match.key,
            name=tag_match.name,
            category=tag_match.category,
            osi_approved=tag_match.osi_approved,
            source=tag_match.evidence,
            method="tag",
            confidence=tag_match.score,
            restrictions=restrictions,
            card_tag=card_tag,
            rule=tag_match.rule,
        )
        return result, tuple(findings)

    if not unidentified:
        if card_tag or card_license_name:
            findings.append(
                finding(
                    "licence.no-text",
                    f"no licence text for the weights is in the release and the card tag "
                    f"`{tag_value}` names no licence modelseal knows",
                    [tag_evidence],
                )
            )
        else:
            findings.append(
                finding(
                    "licence.missing",
                    "the release has no licence file and its card names no licence: default "
                    "copyright reserves all rights",
                )
            )
    source = Evidence(unidentified[0].text.path) if unidentified else None
    result = LicenceResult(
        id=None,
        name="unidentified licence" if unidentified else "no licence",
        category=_category_from(restrictions),
        osi_approved=False,
        source=source,
        method="none",
        confidence=0.0,
        restrictions=restrictions,
        card_tag=card_tag,
        rule="",
    )
    return result, tuple(findings)
