"""The OSI Open Source AI Definition 1.0 verdict: data information, code, parameters.

The checks, their requirements and citations are data (``rules/osaid.yaml``); this module
evaluates the check kinds over the audit's facts and combines them:

- no parameters released                             -> ``closed``
- parameters under restrictive or unknown terms      -> ``restricted-weights``
- parameters open, every code and data check met     -> ``open-source-ai``
- parameters open, something else missing            -> ``open-weights``

It is modelseal's assessment against the definition, never an OSI certification.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from modelseal.audit.model import (
    Check,
    CheckStatus,
    Citation,
    Component,
    Evidence,
    LicenceCategory,
    LicenceResult,
    OsaidResult,
    OsaidVerdict,
)
from modelseal.audit.spdx import spdx_table

if TYPE_CHECKING:
    from modelseal.audit.card import Card

_DATA_SECTIONS = (
    "Training Data",
    "Training Dataset",
    "Training Datasets",
    "Pretraining Data",
    "Pre-training Data",
    "Data",
    "Dataset",
    "Datasets",
    "Training Corpus",
    "Data Sources",
)


@dataclass(frozen=True)
class OsaidFacts:
    """What the OSAID checks look at, gathered by the audit."""

    components: Mapping[int, Component]
    licence: LicenceResult
    card: Card | None
    data_docs: Sequence[Card] = ()
    metadata: Mapping[str, Any] | None = None


@functools.cache
def _rules() -> dict[str, Any]:
    text = resources.files("modelseal.audit").joinpath("rules/osaid.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def citation() -> Citation:
    c = _rules()["citation"]
    return Citation(c["doc"], c.get("provision", ""), c.get("url", ""))


def evaluate(facts: OsaidFacts) -> OsaidResult:
    rules = _rules()
    base = citation()
    checks = tuple(_check(rule, facts, base) for rule in rules["checks"])
    by_id = {c.rule: c for c in checks}
    weights = by_id["OSAID-PARAM-1"]
    terms = by_id["OSAID-PARAM-2"]
    rest = [c for c in checks if c.rule not in ("OSAID-PARAM-1", "OSAID-PARAM-2")]
    if weights.status is not CheckStatus.MET:
        verdict = OsaidVerdict.CLOSED
        summary = "no model parameters are released in this directory"
    elif terms.status is not CheckStatus.MET:
        verdict = OsaidVerdict.RESTRICTED_WEIGHTS
        summary = "parameters are released, but under terms that are not open: " + "; ".join(
            terms.reasons[:2]
        )
    elif all(
        c.status is CheckStatus.MET
        or (c.rule == "OSAID-DATA-3" and c.status is CheckStatus.NOT_DETERMINABLE)
        for c in rest
    ):
        verdict = OsaidVerdict.OPEN_SOURCE_AI
        summary = "parameters, code and data information are all available under open terms"
    else:
        verdict = OsaidVerdict.OPEN_WEIGHTS
        missing = [
            c.rule
            for c in rest
            if c.status is not CheckStatus.MET
            and not (c.rule == "OSAID-DATA-3" and c.status is CheckStatus.NOT_DETERMINABLE)
        ]
        summary = "parameters are open, but not everything else the definition requires: " + (
            ", ".join(missing)
        )
    return OsaidResult(verdict, summary, checks, base)


def _check(rule: Mapping[str, Any], facts: OsaidFacts, base: Citation) -> Check:
    cite = Citation(base.doc, rule.get("provision", ""), base.url)
    kind = rule["kind"]
    status, reasons, evidence = _KINDS[kind](rule, facts)
    return Check(rule["id"], rule["title"], status, tuple(reasons), cite, tuple(evidence))


_Outcome = tuple[CheckStatus, list[str], list[Evidence]]


def _components_present(rule: Mapping[str, Any], facts: OsaidFacts) -> _Outcome:
    reasons: list[str] = []
    evidence: list[Evidence] = []
    met = True
    for cid in rule["components"]:
        comp = facts.components.get(cid)
        if comp is None or not comp.present:
            met = False
            reasons.append(f"{comp.name if comp else cid}: not found in the release")
        else:
            reasons.append(f"{comp.name}: {comp.detail or 'present'}")
            evidence.extend(comp.evidence[:3])
    return (CheckStatus.MET if met else CheckStatus.NOT_MET), reasons, evidence


def _weights_licence(rule: Mapping[str, Any], facts: OsaidFacts) -> _Outcome:
    lic = facts.licence
    evidence = [lic.source] if lic.source else []
    evidence.extend(r.evidence for r in lic.restrictions[:5])
    name = lic.name or lic.id or "no licence"
    if lic.method == "none":
        if lic.source is not None:
            why = f"{lic.source.source} is not a licence modelseal knows: its terms are unknown"
        else:
            why = "no licence text and no licence tag: default copyright reserves all rights"
        return CheckStatus.NOT_MET, [why], evidence
    if lic.restrictions:
        kinds = sorted({r.kind for r in lic.restrictions})
        reasons = [f"{name} restricts use ({', '.join(kinds)})"]
        reasons.extend(
            f"{r.summary} ({r.evidence.source} {r.evidence.location})" for r in lic.restrictions[:4]
        )
        return CheckStatus.NOT_MET, reasons, evidence
    if lic.category is LicenceCategory.OSI or (lic.id and spdx_table().is_osi_approved(lic.id)):
        return CheckStatus.MET, [f"{name} is OSI-approved"], evidence
    if lic.category in (LicenceCategory.OPEN_DATA, LicenceCategory.OPEN_MODEL):
        return (
            CheckStatus.MET,
            [
                f"{name} is an open {lic.category.value.replace('open-', '')} licence without use "
                "restrictions (not an OSI-approved software licence; OSI judges terms for "
                "parameters case by case)"
            ],
            evidence,
        )
    return CheckStatus.NOT_MET, [f"{name} is {lic.category.value}, not open terms"], evidence


def _components_licensed(rule: Mapping[str, Any], facts: OsaidFacts) -> _Outcome:
    table = spdx_table()
    met = 0
    unknown = 0
    reasons: list[str] = []
    evidence: list[Evidence] = []
    wanted = list(rule["components"])
    for cid in wanted:
        comp = facts.components.get(cid)
        if comp is None or not comp.present:
            reasons.append(f"{comp.name if comp else cid}: not released")
            continue
        evidence.extend(comp.evidence[:2])
        if comp.licence is None:
            unknown += 1
            reasons.append(f"{comp.name}: {comp.detail or 'present'}; its licence is not known")
        elif table.is_osi_approved(comp.licence):
            met += 1
            reasons.append(f"{comp.name}: {comp.licence} (OSI-approved)")
        else:
            reasons.append(f"{comp.name}: {comp.licence} is not OSI-approved")
    if met == len(wanted):
        return CheckStatus.MET, reasons, evidence
    if met or unknown:
        return CheckStatus.PARTIAL, reasons, evidence
    return CheckStatus.NOT_MET, reasons, evidence


def _data_sections(facts: OsaidFacts) -> list[tuple[str, str, int]]:
    """(where, text, line) of every non-placeholder data description in the card and data docs."""
    from modelseal.audit.card import is_placeholder

    found: list[tuple[str, str, int]] = []
    for card in [c for c in (facts.card,) if c is not None]:
        section = card.find(*_DATA_SECTIONS)
        if section is not None and not is_placeholder(section.full_text):
            found.append(
                (f"{card.source} > {' > '.join(section.path)}", section.full_text, section.line)
            )
    for doc in facts.data_docs:
        if not is_placeholder(doc.text):
            found.append((doc.source, doc.text, 1))
    return found


def _data_description(rule: Mapping[str, Any], facts: OsaidFacts) -> _Outcome:
    found = _data_sections(facts)
    if not found:
        return (
            CheckStatus.NOT_MET,
            ["no training-data description: no data card and no Training Data section"],
            [],
        )
    longest = max(found, key=lambda f: len(f[1]))
    evidence = [
        Evidence(w.split(" > ")[0], f"line {line}", t.strip()[:200]) for w, t, line in found
    ]
    if len(longest[1]) >= int(rule.get("min_chars", 300)) or any(
        not w.startswith(facts.card.source if facts.card else "\0") for w, _, _ in found
    ):
        return (
            CheckStatus.MET,
            [f"described in {longest[0]} ({len(longest[1])} characters)"],
            evidence,
        )
    return (
        CheckStatus.PARTIAL,
        [f"only a short description in {longest[0]} ({len(longest[1])} characters)"],
        evidence,
    )


def _data_listing(rule: Mapping[str, Any], facts: OsaidFacts) -> _Outcome:
    datasets = (facts.metadata or {}).get("datasets")
    if isinstance(datasets, str):
        datasets = [datasets]
    if isinstance(datasets, list) and datasets:
        names = ", ".join(str(d) for d in datasets[:8])
        return (
            CheckStatus.MET,
            [f"the card lists {len(datasets)} dataset(s): {names}"],
            [Evidence("README.md", "metadata.datasets", names[:200])],
        )
    comp = facts.components.get(15)
    if comp is not None and comp.present:
        return CheckStatus.MET, [f"Datasets: {comp.detail or 'released'}"], list(comp.evidence[:3])
    links = [
        (w, line)
        for w, text, line in _data_sections(facts)
        if re.search(r"https?://|huggingface\.co/datasets|\bhf\.co/", text)
    ]
    if links:
        return CheckStatus.PARTIAL, [f"data sources are linked from {links[0][0]}, not listed"], []
    return CheckStatus.NOT_MET, ["no list of training datasets (metadata `datasets:` is empty)"], []


def _data_third_party(rule: Mapping[str, Any], facts: OsaidFacts) -> _Outcome:
    pattern = re.compile(rule["pattern"], re.IGNORECASE)
    for where, text, line in _data_sections(facts):
        m = pattern.search(text)
        if m:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            quote = text[start : end if end >= 0 else len(text)].strip()[:200]
            return (
                CheckStatus.MET,
                [f"third-party data is addressed in {where}"],
                [Evidence(where.split(" > ")[0], f"line {line}", quote)],
            )
    return (
        CheckStatus.NOT_DETERMINABLE,
        ["no statement about third-party data: required only if such data was used"],
        [],
    )


_KINDS = {
    "components-present": _components_present,
    "weights-licence": _weights_licence,
    "components-licensed": _components_licensed,
    "data-description": _data_description,
    "data-listing": _data_listing,
    "data-third-party": _data_third_party,
}
