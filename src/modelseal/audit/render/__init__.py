"""Audit reports for people and for tools: text, JSON, Markdown, HTML and CycloneDX 1.6 ML-BOM.

>>> from modelseal.audit.render import render
>>> print(render(report, "text"))                   # doctest: +SKIP

Every format shows the same facts from one :class:`~modelseal.audit.model.AuditReport`; none
adds a verdict of its own. The HTML page is one self-contained file (inline CSS, no script, no
fetched resource) in which every check, item, restriction and finding links to its rule in the
"Rules and citations" section. The CycloneDX output maps the report onto a
``machine-learning-model`` component with a ``modelCard``; the audit verdicts travel as
``properties`` named ``modelseal:audit:…``.

One module per format (:mod:`.text`, :mod:`.markdown`, :mod:`.html`, :mod:`.cyclonedx`; JSON is
the report's own ``to_dict()`` and lives here); what they share is in :mod:`._common`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from modelseal.audit.model import AuditReport
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
    SEVERITY_TONES,
    TONE_SYMBOLS,
    VERDICT_LABELS,
    ClassBar,
    GridCell,
    RuleRef,
    anchor,
    class_bars,
    dtype_rows,
    evidence_text,
    flops_text,
    human_count,
    mof_components,
    mof_grid,
    rule_index,
    safe_url,
    sci,
    slug,
)
from modelseal.audit.render.cyclonedx import to_cyclonedx, to_cyclonedx_json
from modelseal.audit.render.html import to_html
from modelseal.audit.render.markdown import md_citation, md_escape, to_markdown
from modelseal.audit.render.text import to_text
from modelseal.errors import InputError

__all__ = [
    "CATEGORY_TONES",
    "CHECK_LABELS",
    "CHECK_TONES",
    "DISCLAIMER",
    "DISCLAIMER_TITLE",
    "DOC_LABELS",
    "DOC_TONES",
    "FORMATS",
    "GRID_LABELS",
    "MOF_CITATION",
    "MOF_CLASS_NAMES",
    "SCHEMA",
    "SEVERITY_TONES",
    "TONE_SYMBOLS",
    "VERDICT_LABELS",
    "ClassBar",
    "GridCell",
    "RuleRef",
    "anchor",
    "class_bars",
    "dtype_rows",
    "evidence_text",
    "flops_text",
    "human_count",
    "md_citation",
    "md_escape",
    "mof_components",
    "mof_grid",
    "render",
    "rule_index",
    "safe_url",
    "sci",
    "slug",
    "to_cyclonedx",
    "to_html",
    "to_json",
    "to_markdown",
    "to_text",
]

FORMATS = ("text", "json", "md", "html", "cyclonedx")
SCHEMA = "modelseal.audit/v1"


def render(report: AuditReport, fmt: str) -> str:
    """``report`` in format ``fmt`` (one of :data:`FORMATS`)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise InputError(
            f"unknown report format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}"
        )
    return renderer(report)


def to_json(report: AuditReport) -> str:
    """The report as JSON with its schema name first (``modelseal.audit/v1``)."""
    return json.dumps({"schema": SCHEMA, **report.to_dict()}, indent=2, sort_keys=False) + "\n"


_RENDERERS: dict[str, Callable[[AuditReport], str]] = {
    "text": to_text,
    "json": to_json,
    "md": to_markdown,
    "html": to_html,
    "cyclonedx": to_cyclonedx_json,
}
