"""Audit reports for people and for tools: text, JSON, Markdown, HTML and CycloneDX 1.6 ML-BOM.

>>> from modelseal.audit.render import render
>>> print(render(report, "text"))                   # doctest: +SKIP

Every format shows the same facts from one :class:`~modelseal.audit.model.AuditReport`; none
adds a verdict of its own. The HTML page is one self-contained file (inline CSS, no script, no
fetched resource) in which every check, item, restriction and finding links to its rule in the
"Rules and citations" section. The CycloneDX output maps the report onto a
``machine-learning-model`` component with a ``modelCard``; the audit verdicts travel as
``properties`` named ``modelseal:audit:…``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import re
import textwrap
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2

from modelseal._version import __version__
from modelseal.audit.model import (
    AuditReport,
    CheckStatus,
    Citation,
    DocReport,
    DocStatus,
    Evidence,
    LicenceCategory,
    LicenceResult,
    OsaidVerdict,
    Severity,
)
from modelseal.audit.spdx import spdx_table
from modelseal.errors import InputError

FORMATS = ("text", "json", "md", "html", "cyclonedx")
SCHEMA = "modelseal.audit/v1"
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
_ROMAN = {1: "I", 2: "II", 3: "III"}

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


def render(report: AuditReport, fmt: str) -> str:
    """``report`` in format ``fmt`` (one of :data:`FORMATS`)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise InputError(
            f"unknown report format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}"
        )
    return renderer(report)


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
        return _ROMAN[self.mof_class]


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
        add(report.licence.rule, f"Licence identified: {report.licence.name}", None, "licence")
    for restriction in report.licence.restrictions:
        add(
            restriction.rule,
            f"{restriction.kind} restriction: {restriction.summary}",
            None,
            "licence restriction",
        )
    for doc in report.docs:
        for item in doc.items:
            add(item.rule, item.title, item.citation, f"documentation ({doc.pack})")
    for finding in report.findings:
        add(finding.rule, _shorten(finding.message, 120), finding.citation, "finding")
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
                f"Class {_ROMAN[mof_class]} · {MOF_CLASS_NAMES[mof_class]}",
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
    return f'{where} "{_shorten(ev.excerpt, width)}"' if ev.excerpt else where


def dtype_rows(report: AuditReport) -> list[tuple[str, int, float]]:
    """(dtype, parameters, share 0..1), largest first."""
    total = sum(report.params.by_dtype.values())
    rows = sorted(report.params.by_dtype.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(dtype, n, n / total if total else 0.0) for dtype, n in rows]


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = flat[: width - 1]
    if " " in cut[width // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def _licence_line(lic: LicenceResult) -> str:
    if lic.id and lic.name and lic.name != lic.id:
        return f"{lic.id} ({lic.name})"
    return lic.id or lic.name or "none identified"


def _doc_gaps(doc: DocReport) -> list[str]:
    return [
        f"{item.title} ({DOC_LABELS[item.status]})"
        for item in doc.items
        if item.status in (DocStatus.MISSING, DocStatus.PLACEHOLDER)
    ]


# --- json ----------------------------------------------------------------------------------


def to_json(report: AuditReport) -> str:
    """The report as JSON with its schema name first (``modelseal.audit/v1``)."""
    return json.dumps({"schema": SCHEMA, **report.to_dict()}, indent=2, sort_keys=False) + "\n"


# --- text ----------------------------------------------------------------------------------

_WIDTH = 80


def _wrap(text: str, indent: int, hang: int | None = None) -> list[str]:
    first = " " * indent
    rest = " " * (indent if hang is None else hang)
    return textwrap.wrap(
        text,
        _WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=True,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _field(label: str, value: str, indent: int = 2, label_width: int = 11) -> list[str]:
    head = f"{label:<{label_width}} "
    lines = _wrap(head + value, indent, indent + len(head))
    return lines


def to_text(report: AuditReport) -> str:
    """A compact report for a terminal (80 columns, no escape codes)."""
    out: list[str] = []
    title = f"modelseal audit: {report.release}"
    out += _wrap(title, 0)
    out.append("=" * min(_WIDTH, max(len(title), 20)))
    engine = " ".join(v for v in (report.engine.get("name"), report.engine.get("version")) if v)
    out += _field("root", report.root, 0, 6)
    if engine:
        out += _field("engine", engine, 0, 6)
    out += _wrap(DISCLAIMER_TITLE, 0)

    out += ["", "OPENNESS"]
    osaid = report.osaid
    out += _field("OSAID 1.0", f"{osaid.verdict} ({VERDICT_LABELS[osaid.verdict]})")
    if osaid.summary:
        out += _wrap(_shorten(osaid.summary, 300), 14)
    for check in osaid.checks:
        line = f"[{CHECK_LABELS[check.status]}] {check.rule} {check.title}"
        out += _wrap(line, 14, 16)
    mof = report.mof
    bars = "  ".join(f"C{b.mof_class} {b.percent}%" for b in class_bars(report))
    out += _field("MOF", f"{mof.label}  ({bars})")
    grid = mof_grid(report)
    counts = {s: sum(1 for c in grid if c.status == s) for s in GRID_LABELS}
    out += _wrap(
        f"components: {counts['included']} included, {counts['not-open']} present but not "
        f"openly licensed, {counts['missing']} missing (of {len(grid)})",
        14,
    )
    for warning in mof.warnings:
        out += _wrap(f"note: {warning}", 14, 20)

    out += ["", "LICENCE"]
    lic = report.licence
    out += _field("licence", _licence_line(lic))
    osi = "OSI-approved" if lic.osi_approved else "not OSI-approved"
    out += _field("category", f"{lic.category} ({osi})")
    how = f"{lic.method}, confidence {lic.confidence:.0%}"
    if lic.source is not None:
        how += f", from {evidence_text(lic.source, 40)}"
    out += _field("identified", how)
    if lic.card_tag is not None:
        out += _field("card tag", lic.card_tag)
    if lic.rule:
        out += _field("rule", lic.rule)
    if lic.restrictions:
        out += _field("restricts", f"{len(lic.restrictions)} clause(s)")
        for r in lic.restrictions:
            out += _wrap(f"- {r.kind} [{r.rule}]: {r.summary}", 4, 6)
            out += _wrap(f'"{_shorten(r.quote, 140)}"', 6)
            out += _wrap(f"at {evidence_text(Evidence(r.evidence.source, r.evidence.location))}", 6)

    out += ["", "DOCUMENTATION"]
    if not report.docs:
        out += _wrap("no documentation standard was checked", 2)
    for doc in report.docs:
        counts_text = (
            f"{doc.count(DocStatus.PRESENT)}/{len(doc.items)} present, "
            f"{doc.count(DocStatus.PLACEHOLDER)} placeholder, "
            f"{doc.count(DocStatus.MISSING)} missing"
        )
        nd = doc.count(DocStatus.NOT_DETERMINABLE)
        if nd:
            counts_text += f", {nd} not determinable"
        out += _wrap(f"{doc.pack:<22} {doc.score:4.0%}  {counts_text}", 2, 30)
        gaps = _doc_gaps(doc)
        if gaps:
            out += _wrap("gaps: " + "; ".join(gaps), 4, 10)

    out += ["", "PARAMETERS"]
    p = report.params
    if p.total is None:
        out += _field("total", f"unknown ({p.method})" if p.method else "unknown")
    else:
        out += _field("total", f"{p.total:,} ({human_count(p.total)}), {p.method}")
        split = ", ".join(f"{d} {share:.0%}" for d, _, share in dtype_rows(report))
        if split:
            out += _field("dtypes", split)
    if p.training_tokens is not None:
        tokens = f"{human_count(p.training_tokens)} tokens"
        if p.training_tokens_source is not None:
            src = p.training_tokens_source
            tokens += f" (stated at {src.source}:{src.location})" if src.location else ""
        out += _field("tokens", tokens)
    if p.compute_flops is not None:
        out += _field("compute", f"~{flops_text(p.compute_flops)} (6 * N * D estimate)")

    out += ["", f"FINDINGS ({len(report.findings)})"]
    if not report.findings:
        out += _wrap("none", 2)
    for f in report.findings:
        out += _wrap(f"{str(f.severity).upper():<7} {f.rule}: {f.message}", 2, 10)
        for ev in f.evidence[:3]:
            out += _wrap(f"at {evidence_text(ev, 60)}", 10, 13)
        if f.citation is not None:
            out += _wrap(f"see {f.citation}", 10, 14)
    return "\n".join(out) + "\n"


# --- markdown ------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def md_escape(text: str) -> str:
    """``text`` safe inside a Markdown table cell (one line, no markup, no raw HTML)."""
    flat = " ".join(str(text).split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", flat)


def _md_url(url: str) -> str | None:
    safe = safe_url(url)
    if safe is None:
        return None
    return safe.replace("(", "%28").replace(")", "%29").replace(" ", "%20")


def md_citation(c: Citation | None) -> str:
    if c is None:
        return "—"
    text = md_escape(str(c))
    url = _md_url(c.url)
    return f"[{text}]({url})" if url else text


def _md_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _md_code(text: str) -> str:
    """``text`` as an inline code span that cannot end early or break a table row."""
    flat = " ".join(text.replace("`", "'").split()).replace("|", "\\|")
    return f"`{flat}`" if flat else "—"


def _md_rule(rule: str) -> str:
    return _md_code(rule)


def _md_evidence(evidence: Iterable[Evidence]) -> str:
    return "<br>".join(md_escape(evidence_text(ev, 80)) for ev in evidence) or "—"


def to_markdown(report: AuditReport) -> str:
    """A Markdown report with tables, for a pull request, an issue or a wiki page."""
    e = md_escape
    out: list[str] = [
        f"# modelseal audit: {e(report.release)}",
        "",
        f"> **{DISCLAIMER_TITLE}** {DISCLAIMER}",
        "",
    ]
    lic = report.licence
    bars = ", ".join(f"Class {_ROMAN[b.mof_class]} {b.percent} %" for b in class_bars(report))
    p = report.params
    params = "unknown" if p.total is None else f"{p.total:,} ({human_count(p.total)})"
    if p.compute_flops is not None:
        params += f"; training compute ≈ {flops_text(p.compute_flops)} (6·N·D)"
    engine = " ".join(v for v in (report.engine.get("name"), report.engine.get("version")) if v)
    summary = [
        ("Release", f"{e(report.release)} ({_md_code(report.root)})"),
        (
            "OSAID 1.0",
            f"**{e(VERDICT_LABELS[report.osaid.verdict])}**: {e(report.osaid.summary)}",
        ),
        ("MOF", f"**{e(report.mof.label)}** ({bars})"),
        ("Licence", f"{e(_licence_line(lic))}, {e(str(lic.category))}"),
        (
            "Documentation",
            "; ".join(f"{e(d.pack)} {d.score:.0%}" for d in report.docs) or "not checked",
        ),
        ("Parameters", e(params)),
        ("Findings", str(len(report.findings))),
        ("Engine", e(engine) or "—"),
    ]
    out += _md_table(["", ""], [(f"**{k}**", v) for k, v in summary])

    out += ["## Openness", "", "### OSI Open Source AI Definition 1.0", ""]
    out += [
        f"Verdict: **{e(VERDICT_LABELS[report.osaid.verdict])}**. {e(report.osaid.summary)}",
        "",
    ]
    out += [f"Citation: {md_citation(report.osaid.citation)}", ""]
    out += _md_table(
        ["Rule", "Check", "Status", "Reasons", "Evidence"],
        (
            (
                _md_rule(c.rule),
                e(c.title),
                e(CHECK_LABELS[c.status]),
                "<br>".join(e(r) for r in c.reasons) or "—",
                _md_evidence(c.evidence),
            )
            for c in report.osaid.checks
        ),
    )
    out += ["### Model Openness Framework", "", f"Classification: **{e(report.mof.label)}**", ""]
    out += _md_table(
        ["Class", "Progress"], ((e(b.name), f"{b.percent} %") for b in class_bars(report))
    )
    out += _md_table(
        ["Component", "Class", "Required", "Status", "Licence", "Detail"],
        (
            (
                e(c.name),
                c.class_name,
                "yes" if c.required else "no",
                e(c.label),
                e(c.licence or "—"),
                e(c.detail) or "—",
            )
            for c in mof_grid(report)
        ),
    )
    for warning in report.mof.warnings:
        out += [f"- {e(warning)}"]
    if report.mof.warnings:
        out.append("")

    out += ["## Licence", ""]
    rows = [
        ("Identified", e(_licence_line(lic))),
        ("Category", e(str(lic.category))),
        ("OSI-approved", "yes" if lic.osi_approved else "no"),
        ("Method", f"{e(lic.method)}, confidence {lic.confidence:.0%}"),
        ("Source", e(evidence_text(lic.source)) if lic.source else "—"),
        ("Card tag", e(lic.card_tag) if lic.card_tag is not None else "—"),
        ("Rule", _md_rule(lic.rule)),
    ]
    out += _md_table(["", ""], ((f"**{k}**", v) for k, v in rows))
    if lic.restrictions:
        out += ["### Restrictions", ""]
        out += _md_table(
            ["Kind", "Rule", "Summary", "Quote", "Where"],
            (
                (
                    e(r.kind),
                    _md_rule(r.rule),
                    e(r.summary),
                    f"“{e(_shorten(r.quote, 300))}”",
                    e(evidence_text(Evidence(r.evidence.source, r.evidence.location))),
                )
                for r in lic.restrictions
            ),
        )

    out += ["## Documentation", ""]
    if not report.docs:
        out += ["No documentation standard was checked.", ""]
    for doc in report.docs:
        counts = ", ".join(f"{doc.count(s)} {DOC_LABELS[s]}" for s in DocStatus)
        out += [f"### {e(doc.title)} ({e(doc.pack)}): {doc.score:.0%} present", ""]
        out += [f"{counts}. Citation: {md_citation(doc.citation)}", ""]
        out += _md_table(
            ["Rule", "Item", "Status", "Found in", "Citation"],
            (
                (
                    _md_rule(i.rule),
                    e(i.title),
                    e(DOC_LABELS[i.status]),
                    e(i.found_in) or "—",
                    md_citation(i.citation),
                )
                for i in doc.items
            ),
        )

    out += ["## Parameters and compute", ""]
    rows = [
        ("Total", e(params.split(";")[0])),
        ("Method", e(p.method) or "—"),
        ("Files", "<br>".join(_md_code(f) for f in p.files) or "—"),
        ("Training tokens", human_count(p.training_tokens) if p.training_tokens else "unknown"),
        ("Tokens stated at", e(evidence_text(p.training_tokens_source, 100)) or "—")
        if p.training_tokens_source
        else ("Tokens stated at", "—"),
        ("Training compute", e(flops_text(p.compute_flops))),
    ]
    out += _md_table(["", ""], ((f"**{k}**", v) for k, v in rows))
    if p.by_dtype:
        out += _md_table(
            ["dtype", "Parameters", "Share"],
            ((e(d), f"{n:,}", f"{share:.1%}") for d, n, share in dtype_rows(report)),
        )

    out += [f"## Findings ({len(report.findings)})", ""]
    if report.findings:
        out += _md_table(
            ["Severity", "Rule", "Message", "Evidence", "Citation"],
            (
                (
                    e(str(f.severity)),
                    _md_rule(f.rule),
                    e(f.message),
                    _md_evidence(f.evidence),
                    md_citation(f.citation),
                )
                for f in report.findings
            ),
        )
    else:
        out += ["None.", ""]

    out += ["## Rules and citations", ""]
    frameworks = [
        ("OSAID 1.0", md_citation(report.osaid.citation)),
        ("MOF 1.0", md_citation(MOF_CITATION)),
        *((e(d.pack), md_citation(d.citation)) for d in report.docs),
    ]
    out += _md_table(["Framework", "Citation"], frameworks)
    out += _md_table(
        ["Rule", "Title", "Citation", "Used by"],
        (
            (_md_rule(r.id), e(r.title), md_citation(r.citation), e(", ".join(r.used_by)))
            for r in rule_index(report)
        ),
    )
    return "\n".join(out).rstrip("\n") + "\n"


# --- html ----------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    templates = resources.files("modelseal.audit").joinpath("templates")

    def load(name: str) -> str:
        return templates.joinpath(name).read_text("utf-8")

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(
        anchor=anchor,
        slug=slug,
        symbols=TONE_SYMBOLS,
        check_tone=lambda s: CHECK_TONES[s],
        doc_tone=lambda s: DOC_TONES[s],
        severity_tone=lambda s: SEVERITY_TONES[s],
        category_tone=lambda c: CATEGORY_TONES[c],
        safe_url=safe_url,
        human_count=human_count,
        sci=sci,
        check_label=lambda s: CHECK_LABELS[s],
        doc_label=lambda s: DOC_LABELS[s],
        verdict_label=lambda v: VERDICT_LABELS[v],
        roman=lambda k: _ROMAN.get(k, str(k)),
        shorten=_shorten,
    )
    return env


def to_html(report: AuditReport) -> str:
    """One self-contained HTML page (inline CSS, no script, nothing fetched)."""
    grid = mof_grid(report)
    groups = [(k, MOF_CLASS_NAMES[k], [c for c in grid if c.mof_class == k]) for k in (3, 2, 1)]
    counts = {s: sum(1 for c in grid if c.status == s) for s in GRID_LABELS}
    template = _environment().get_template("report.html.j2")
    return template.render(
        r=report,
        disclaimer=DISCLAIMER,
        disclaimer_title=DISCLAIMER_TITLE,
        grid_groups=groups,
        grid_counts=counts,
        grid_labels=GRID_LABELS,
        bars=class_bars(report),
        rules=rule_index(report),
        mof_citation=MOF_CITATION,
        dtypes=dtype_rows(report),
        licence_line=_licence_line(report.licence),
        doc_statuses=list(DocStatus),
        generator=f"modelseal {__version__}",
    )


# --- cyclonedx -----------------------------------------------------------------------------

# Hugging Face pipeline tags -> (input formats, output formats) for modelParameters.inputs/outputs
_TASK_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text-generation": (("text",), ("text",)),
    "text2text-generation": (("text",), ("text",)),
    "fill-mask": (("text",), ("text",)),
    "translation": (("text",), ("text",)),
    "summarization": (("text",), ("text",)),
    "question-answering": (("text",), ("text",)),
    "text-classification": (("text",), ("label",)),
    "token-classification": (("text",), ("label",)),
    "zero-shot-classification": (("text",), ("label",)),
    "sentence-similarity": (("text",), ("embedding",)),
    "feature-extraction": (("text",), ("embedding",)),
    "text-to-image": (("text",), ("image",)),
    "image-to-text": (("image",), ("text",)),
    "image-text-to-text": (("image", "text"), ("text",)),
    "image-classification": (("image",), ("label",)),
    "automatic-speech-recognition": (("audio",), ("text",)),
    "text-to-speech": (("text",), ("audio",)),
    "text-to-audio": (("text",), ("audio",)),
}
_LEARNING_TYPES = (
    "supervised",
    "unsupervised",
    "reinforcement-learning",
    "semi-supervised",
    "self-supervised",
)
# Documentation items (by title) whose present text fills a modelCard consideration; the first
# pattern that matches wins.
_CONSIDERATIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("technicalLimitations", re.compile(r"out[- ]of[- ]scope|misuse", re.IGNORECASE)),
    ("ethicalConsiderations", re.compile(r"\bbias|\brisk|ethic", re.IGNORECASE)),
    ("technicalLimitations", re.compile(r"limitation", re.IGNORECASE)),
    ("environmental", re.compile(r"environment|carbon|energy|co2|emission", re.IGNORECASE)),
    ("useCases", re.compile(r"\buses?\b|intended|use case|purpose", re.IGNORECASE)),
)
_PROP = "modelseal:audit:"


def _bom_timestamp() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    when = (
        _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
        if epoch.isdigit()
        else _dt.datetime.now(_dt.UTC)
    )
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_string(metadata: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        found = _strings(metadata.get(key))
        if found:
            return found[0]
    return None


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _performance_metrics(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """``model-index`` results (Papers-with-Code format) as CycloneDX performance metrics."""
    metrics: list[dict[str, Any]] = []
    index = metadata.get("model-index")
    if not isinstance(index, list):
        return metrics
    for model in index:
        results = model.get("results") if isinstance(model, dict) else None
        if not isinstance(results, list):
            continue
        for result in results:
            if not isinstance(result, dict):
                continue
            dataset = _dict(result.get("dataset"))
            task = _dict(result.get("task"))
            where = _scalar(dataset.get("name")) or _scalar(dataset.get("type"))
            split = _scalar(dataset.get("split"))
            task_name = _scalar(task.get("type")) or _scalar(task.get("name"))
            slice_text = " / ".join(
                s for s in (task_name, where, f"split {split}" if split else None) if s
            )
            for metric in result.get("metrics") or ():
                if not isinstance(metric, dict):
                    continue
                kind = _scalar(metric.get("type")) or _scalar(metric.get("name"))
                value = _scalar(metric.get("value"))
                if kind is None or value is None:
                    continue
                entry: dict[str, Any] = {"type": kind, "value": value}
                if slice_text:
                    entry["slice"] = slice_text
                metrics.append(entry)
    return metrics


def _considerations(report: AuditReport) -> dict[str, Any]:
    found: dict[str, list[str]] = {}
    for doc in report.docs:
        for item in doc.items:
            if item.status != DocStatus.PRESENT or not item.excerpt.strip():
                continue
            for key, pattern in _CONSIDERATIONS:
                if pattern.search(item.title):
                    texts = found.setdefault(key, [])
                    text = _shorten(item.excerpt, 1000)
                    if text not in texts:
                        texts.append(text)
                    break
    out: dict[str, Any] = {}
    for key in ("useCases", "technicalLimitations"):
        if key in found:
            out[key] = found[key]
    if "ethicalConsiderations" in found:
        out["ethicalConsiderations"] = [{"name": t} for t in found["ethicalConsiderations"]]
    env_props = [
        {"name": f"{_PROP}environment:statement", "value": t}
        for t in found.get("environmental", [])
    ]
    co2 = report.metadata.get("co2_eq_emissions")
    if isinstance(co2, dict):
        for key, value in sorted(co2.items(), key=lambda kv: str(kv[0])):
            shown = _scalar(value)
            if shown is not None and isinstance(key, str):
                env_props.append({"name": f"{_PROP}co2_eq_emissions:{key}", "value": shown})
    elif _scalar(co2) is not None:
        env_props.append({"name": f"{_PROP}co2_eq_emissions:emissions", "value": str(co2)})
    if env_props:
        out["environmentalConsiderations"] = {"properties": env_props}
    return out


def _model_parameters(report: AuditReport) -> dict[str, Any]:
    meta = report.metadata
    config = _dict(meta.get("config"))
    params: dict[str, Any] = {}
    approach = _first_string(meta, "approach", "learning_type")
    if approach in _LEARNING_TYPES:
        params["approach"] = {"type": approach}
    task = _first_string(meta, "pipeline_tag")
    if task:
        params["task"] = task
    family = _first_string(meta, "model_type") or _first_string(config, "model_type")
    if family:
        params["architectureFamily"] = family
    arch = _first_string(meta, "architectures") or _first_string(config, "architectures")
    if arch:
        params["modelArchitecture"] = arch
    datasets = [{"type": "dataset", "name": name} for name in _strings(meta.get("datasets"))]
    if datasets:
        params["datasets"] = datasets
    if task in _TASK_IO:
        inputs, outputs = _TASK_IO[task]
        params["inputs"] = [{"format": f} for f in inputs]
        params["outputs"] = [{"format": f} for f in outputs]
    return params


def _licences(lic: LicenceResult) -> list[dict[str, Any]]:
    if lic.method == "none" and not lic.id:
        return []
    spdx_id = spdx_table().canonical(lic.id)
    entry: dict[str, Any] = {"id": spdx_id} if spdx_id else {"name": lic.name or lic.id}
    if not (entry.get("id") or entry.get("name")):
        return []
    entry["acknowledgement"] = "concluded"
    props = [{"name": f"{_PROP}licence:category", "value": str(lic.category)}]
    if lic.id and not spdx_id:
        props.append({"name": f"{_PROP}licence:key", "value": lic.id})
    props += [
        {"name": f"{_PROP}licence:restriction", "value": f"{r.kind}: {r.summary}"}
        for r in lic.restrictions
    ]
    entry["properties"] = props
    return [{"license": entry}]


def _audit_properties(report: AuditReport) -> list[dict[str, str]]:
    props: list[tuple[str, str]] = [
        ("osaid:verdict", str(report.osaid.verdict)),
        ("osaid:summary", report.osaid.summary),
        ("mof:class", str(report.mof.classification)),
        ("mof:label", report.mof.label),
    ]
    props += [(f"mof:class_{b.mof_class}_percent", str(b.percent)) for b in class_bars(report)]
    props += [
        ("licence:category", str(report.licence.category)),
        ("licence:restricted", "true" if report.licence.restricted else "false"),
    ]
    p = report.params
    if p.total is not None:
        props.append(("params:total", str(p.total)))
        props += [(f"params:dtype:{d}", str(n)) for d, n, _ in dtype_rows(report)]
    if p.training_tokens is not None:
        props.append(("compute:training_tokens", str(p.training_tokens)))
    if p.compute_flops is not None:
        props.append(("compute:training_flops", f"{p.compute_flops:.3e}"))
    for doc in report.docs:
        props.append((f"docs:{doc.pack}:score", f"{doc.score:.4f}"))
        props += [(f"docs:{doc.pack}:{s}", str(doc.count(s))) for s in DocStatus]
    props.append(("findings", str(len(report.findings))))
    return [{"name": _PROP + k, "value": v} for k, v in props]


def to_cyclonedx(report: AuditReport) -> dict[str, Any]:
    """The report as a CycloneDX 1.6 BOM (a dict) with one ``machine-learning-model``."""
    digest_source = json.dumps(report.to_dict(), sort_keys=True, separators=(",", ":"))
    serial = uuid.uuid5(uuid.NAMESPACE_URL, "modelseal:audit:" + digest_source)
    model_card: dict[str, Any] = {}
    parameters = _model_parameters(report)
    if parameters:
        model_card["modelParameters"] = parameters
    metrics = _performance_metrics(report.metadata)
    if metrics:
        model_card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    considerations = _considerations(report)
    if considerations:
        model_card["considerations"] = considerations
    model_card["properties"] = _audit_properties(report)
    component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": report.release,
    }
    licences = _licences(report.licence)
    if licences:
        component["licenses"] = licences
    tags = _strings(report.metadata.get("tags"))
    if tags:
        component["tags"] = tags
    component["modelCard"] = model_card
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": {
            "timestamp": _bom_timestamp(),
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "name": "modelseal",
                        "version": __version__,
                        "description": "open-weight model release audit (modelseal audit)",
                    }
                ]
            },
        },
        "components": [component],
    }


def _cyclonedx_text(report: AuditReport) -> str:
    return json.dumps(to_cyclonedx(report), indent=2, ensure_ascii=False) + "\n"


_RENDERERS: dict[str, Callable[[AuditReport], str]] = {
    "text": to_text,
    "json": to_json,
    "md": to_markdown,
    "html": to_html,
    "cyclonedx": _cyclonedx_text,
}
