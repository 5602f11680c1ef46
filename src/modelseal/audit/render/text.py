"""The report as plain text for a terminal (80 columns, no escape codes)."""

from __future__ import annotations

import textwrap

from modelseal.audit.model import AuditReport, DocReport, DocStatus, Evidence
from modelseal.audit.render._common import (
    CHECK_LABELS,
    DISCLAIMER_TITLE,
    DOC_LABELS,
    GRID_LABELS,
    VERDICT_LABELS,
    class_bars,
    dtype_rows,
    evidence_text,
    flops_text,
    human_count,
    licence_line,
    mof_grid,
    shorten,
)

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


def _doc_gaps(doc: DocReport) -> list[str]:
    return [
        f"{item.title} ({DOC_LABELS[item.status]})"
        for item in doc.items
        if item.status in (DocStatus.MISSING, DocStatus.PLACEHOLDER)
    ]


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
        out += _wrap(shorten(osaid.summary, 300), 14)
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
    out += _field("licence", licence_line(lic))
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
            out += _wrap(f'"{shorten(r.quote, 140)}"', 6)
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
