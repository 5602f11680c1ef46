"""What every report format shares: labels, tones, the MOF grid, the rule index, small helpers.

The formats (:mod:`.text`, :mod:`.markdown`, :mod:`.html`, :mod:`.cyclonedx`) build on these
views of one :class:`~modelseal.audit.model.AuditReport`; none adds a fact of its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from modelseal.audit.model import (
    AuditReport,
    CheckStatus,
    Citation,
    DocStatus,
    Evidence,
    LicenceCategory,
    LicenceResult,
    OsaidVerdict,
    Severity,
)

DISCLAIMER_TITLE = "Assessment, not certification or legal advice."
DISCLAIMER = (
    "This report is a technical assessment of the files in the release. Every verdict names "
    "the rule it applied and cites its source; check the cited text before relying on it."
)


# The Model Openness Framework 1.0 components in the order the framework presents them
# (class III first), so the grid always shows all 17 even when the scorer listed fewer.
# (id, name exactly as MOF spells it, class, required)
def mof_components() -> tuple[tuple[int, str, int, bool], ...]:
    """(id, name, class, required) of the 17 MOF components, Class III first (rules/mof.yaml)."""
    from modelseal.audit.mof import components

    return tuple(
        (c.id, c.name, c.mof_class, c.required)
        for c in sorted(components(), key=lambda c: (-c.mof_class, not c.required))
    )


MOF_CLASS_NAMES = {3: "Open Model", 2: "Open Tooling", 1: "Open Science"}
MOF_CITATION = Citation(
    "Model Openness Framework 1.0 (LF AI & Data)",
    "Classes and components",
    "https://arxiv.org/abs/2403.13784",
)
ROMAN = {1: "I", 2: "II", 3: "III"}

VERDICT_LABELS = {
    OsaidVerdict.OPEN_SOURCE_AI: "Open Source AI",
    OsaidVerdict.OPEN_WEIGHTS: "Open weights",
    OsaidVerdict.RESTRICTED_WEIGHTS: "Restricted weights",
    OsaidVerdict.CLOSED: "Closed",
}
CHECK_LABELS = {
    CheckStatus.MET: "met",
    CheckStatus.PARTIAL: "partial",
    CheckStatus.NOT_MET: "not met",
    CheckStatus.NOT_DETERMINABLE: "not determinable",
}
DOC_LABELS = {
    DocStatus.PRESENT: "present",
    DocStatus.PLACEHOLDER: "placeholder",
    DocStatus.MISSING: "missing",
    DocStatus.NOT_DETERMINABLE: "not determinable",
}
# status -> tone of its chip (ok, warn, bad, muted, info); each tone also shows a symbol and text
CHECK_TONES = {
    CheckStatus.MET: "ok",
    CheckStatus.PARTIAL: "warn",
    CheckStatus.NOT_MET: "bad",
    CheckStatus.NOT_DETERMINABLE: "muted",
}
DOC_TONES = {
    DocStatus.PRESENT: "ok",
    DocStatus.PLACEHOLDER: "warn",
    DocStatus.MISSING: "bad",
    DocStatus.NOT_DETERMINABLE: "muted",
}
SEVERITY_TONES = {Severity.ERROR: "bad", Severity.WARNING: "warn", Severity.INFO: "info"}
CATEGORY_TONES = {
    LicenceCategory.OSI: "ok",
    LicenceCategory.OPEN_DATA: "ok",
    LicenceCategory.OPEN_MODEL: "ok",
    LicenceCategory.RESTRICTED: "warn",
    LicenceCategory.NON_COMMERCIAL: "warn",
    LicenceCategory.PROPRIETARY: "bad",
    LicenceCategory.UNKNOWN: "muted",
}
TONE_SYMBOLS = {"ok": "✓", "warn": "!", "bad": "✕", "muted": "?", "info": "i", "zero": ""}
# grid status -> (label, short label, symbol); colour is never the only signal
GRID_LABELS = {
    "included": ("Included", "Included", "✓"),
    "not-open": ("Present, not openly licensed", "Not openly licensed", "!"),
    "missing": ("Missing", "Missing", "\u2013"),
}


# --- shared view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRef:
    """A rule as the report uses it: where it was applied, its title and citation."""

    id: str
    title: str
    citation: Citation | None
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class GridCell:
    mof_id: int
    name: str
    mof_class: int
    required: bool
    status: str  # included | not-open | missing
    scorer_status: str  # the MOF scorer's own word (included, invalid, unlicensed, missing)
    licence: str | None
    detail: str
    evidence: tuple[Evidence, ...]

    @property
    def label(self) -> str:
        return GRID_LABELS[self.status][0]

    @property
    def short_label(self) -> str:
        return GRID_LABELS[self.status][1]

    @property
    def symbol(self) -> str:
        return GRID_LABELS[self.status][2]

    @property
    def class_name(self) -> str:
        return ROMAN[self.mof_class]


@dataclass(frozen=True)
class ClassBar:
    mof_class: int
    name: str  # "Class III · Open Model"
    percent: int
    reached: bool


@dataclass
class _RuleAcc:
    title: str = ""
    citation: Citation | None = None
    used_by: list[str] = field(default_factory=list)


def _licence_citation(rule: str) -> Citation | None:
    """The first citation the licence rules give ``rule`` (LIC-R-*, LIC-ID-*), if any."""
    from modelseal.audit.licence import rule_citations

    found = rule_citations(rule)
    return found[0] if found else None


def rule_index(report: AuditReport) -> tuple[RuleRef, ...]:
    """Every rule id the report mentions, sorted, with the best title and citation known."""
    acc: dict[str, _RuleAcc] = {}

    def add(rule: str, title: str, citation: Citation | None, where: str) -> None:
        if not rule:
            return
        entry = acc.setdefault(rule, _RuleAcc())
        if not entry.title and title:
            entry.title = title
        if entry.citation is None and citation is not None:
            entry.citation = citation
        if where not in entry.used_by:
            entry.used_by.append(where)

    for check in report.osaid.checks:
        add(check.rule, check.title, check.citation, "OSAID check")
    if report.licence.rule:
        add(
            report.licence.rule,
            f"Licence identified: {report.licence.name}",
            _licence_citation(report.licence.rule),
            "licence",
        )
    for restriction in report.licence.restrictions:
        add(
            restriction.rule,
            f"{restriction.kind} restriction: {restriction.summary}",
            _licence_citation(restriction.rule),
            "licence restriction",
        )
    for doc in report.docs:
        for item in doc.items:
            add(item.rule, item.title, item.citation, f"documentation ({doc.pack})")
    for finding in report.findings:
        add(finding.rule, shorten(finding.message, 120), finding.citation, "finding")
    return tuple(
        RuleRef(rule, a.title, a.citation, tuple(a.used_by)) for rule, a in sorted(acc.items())
    )


def mof_grid(report: AuditReport) -> tuple[GridCell, ...]:
    """All 17 MOF components with their status in the release (scorer first, else inventory)."""
    scored = {c.mof_id: c for c in report.mof.components}
    found = {c.mof_id: c for c in report.components}
    cells: list[GridCell] = []
    for mof_id, name, mof_class, required in mof_components():
        result = scored.get(mof_id)
        component = found.get(mof_id)
        if result is not None:
            status = {"included": "included", "missing": "missing"}.get(result.status, "not-open")
            scorer_status = result.status
            licence = result.licence
        elif component is not None and component.present:
            status, scorer_status, licence = "not-open", "not scored", component.licence
        else:
            status, scorer_status, licence = "missing", "missing", None
        cells.append(
            GridCell(
                mof_id,
                name,
                mof_class,
                required,
                status,
                scorer_status,
                licence or (component.licence if component else None),
                component.detail if component else "",
                component.evidence if component else (),
            )
        )
    return tuple(cells)


def class_bars(report: AuditReport) -> tuple[ClassBar, ...]:
    """Progress towards MOF Class III, II and I (in that order)."""
    bars = []
    for mof_class in (3, 2, 1):
        percent = report.mof.percent(mof_class) if mof_class in report.mof.progress else 0
        percent = max(0, min(100, percent))
        bars.append(
            ClassBar(
                mof_class,
                f"Class {ROMAN[mof_class]} · {MOF_CLASS_NAMES[mof_class]}",
                percent,
                percent >= 100,
            )
        )
    return tuple(bars)


def slug(text: str) -> str:
    """``text`` as a fragment of an HTML id (no spaces, no markup characters)."""
    return re.sub(r"[^A-Za-z0-9._:-]+", "-", text)


def anchor(rule: str) -> str:
    """The HTML id of a rule's entry in "Rules and citations"."""
    return "rule-" + slug(rule)


def safe_url(url: str) -> str | None:
    """``url`` if it is a plain http(s) link, else None (never a ``javascript:`` link)."""
    url = url.strip()
    if re.match(r"https?://[^\s<>\"']+$", url, re.IGNORECASE):
        return url
    return None


def human_count(n: int | None) -> str:
    if n is None:
        return "unknown"
    for scale, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    return str(n)


def sci(value: float) -> tuple[str, int]:
    """``7.227e23`` -> ``("7.2", 23)`` (two significant figures)."""
    if not math.isfinite(value):
        return str(value), 0
    mantissa, exponent = f"{value:.1e}".split("e")
    return mantissa, int(exponent)


def flops_text(value: float | None) -> str:
    if value is None:
        return "unknown"
    mantissa, exponent = sci(value)
    return f"{mantissa}e{exponent} FLOP"


def evidence_text(ev: Evidence, width: int = 80) -> str:
    where = f"{ev.source}:{ev.location}" if ev.location else ev.source
    return f'{where} "{shorten(ev.excerpt, width)}"' if ev.excerpt else where


def dtype_rows(report: AuditReport) -> list[tuple[str, int, float]]:
    """(dtype, parameters, share 0..1), largest first."""
    total = sum(report.params.by_dtype.values())
    rows = sorted(report.params.by_dtype.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(dtype, n, n / total if total else 0.0) for dtype, n in rows]


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut at a word to at most ``width`` characters (with an ellipsis)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def licence_line(lic: LicenceResult) -> str:
    """``id (name)`` of the licence, or whichever of them is known."""
    if lic.id and lic.name and lic.name != lic.id:
        return f"{lic.id} ({lic.name})"
    return lic.id or lic.name or "none identified"
