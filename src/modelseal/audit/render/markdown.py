"""The report as Markdown with tables, for a pull request, an issue or a wiki page."""

from __future__ import annotations

import re
from collections.abc import Iterable

from modelseal.audit.model import AuditReport, Citation, DocStatus, Evidence
from modelseal.audit.render._common import (
    CHECK_LABELS,
    DISCLAIMER,
    DISCLAIMER_TITLE,
    DOC_LABELS,
    MOF_CITATION,
    ROMAN,
    VERDICT_LABELS,
    class_bars,
    dtype_rows,
    evidence_text,
    flops_text,
    human_count,
    licence_line,
    mof_grid,
    rule_index,
    safe_url,
    shorten,
)

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
    bars = ", ".join(f"Class {ROMAN[b.mof_class]} {b.percent} %" for b in class_bars(report))
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
        ("Licence", f"{e(licence_line(lic))}, {e(str(lic.category))}"),
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
        ("Identified", e(licence_line(lic))),
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
                    f"“{e(shorten(r.quote, 300))}”",
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
                    e("; ".join(x for x in (i.found_in, i.reason) if x)) or "—",
                    md_citation(i.citation)
                    + (" (wording from a secondary source)" if i.confidence == "secondary" else ""),
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
