"""The report as one self-contained HTML page (inline CSS, no script, nothing fetched).

The page is ``templates/report.html.j2`` of :mod:`modelseal.audit`, read as package data; every
check, item, restriction and finding links to its rule in the "Rules and citations" section.
"""

from __future__ import annotations

import functools
from importlib import resources

import jinja2

from modelseal._version import __version__
from modelseal.audit.model import AuditReport, DocStatus
from modelseal.audit.render._common import (
    CATEGORY_TONES,
    CHECK_LABELS,
    CHECK_TONES,
    DISCLAIMER,
    DISCLAIMER_TITLE,
    DOC_LABELS,
    DOC_TONES,
    GRID_LABELS,
    MOF_CITATION,
    MOF_CLASS_NAMES,
    ROMAN,
    SEVERITY_TONES,
    TONE_SYMBOLS,
    VERDICT_LABELS,
    anchor,
    class_bars,
    dtype_rows,
    human_count,
    licence_line,
    mof_grid,
    rule_index,
    safe_url,
    sci,
    shorten,
    slug,
)


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
        roman=lambda k: ROMAN.get(k, str(k)),
        shorten=shorten,
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
        licence_line=licence_line(report.licence),
        doc_statuses=list(DocStatus),
        generator=f"modelseal {__version__}",
    )
