"""What an audit reports: evidence, findings, verdicts and the whole report (frozen dataclasses).

Every verdict carries the rule it applied (``rule``), the citation of that rule and the evidence
it rests on, so a reader can check each claim against the release and the cited text. The
report is a *technical assessment*, never legal advice or a certification (OSI does not certify
AI systems; neither do we).

All types convert to plain JSON-able dicts with ``to_dict()``; :class:`AuditReport` is the root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Citation:
    """Where a rule comes from: the document, the provision inside it and a link."""

    doc: str  # "Regulation (EU) 2024/1689", "OSI Open Source AI Definition 1.0"
    provision: str = ""  # "Annex XI, Section 1(1)(d)"
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"doc": self.doc, "provision": self.provision, "url": self.url}

    def __str__(self) -> str:
        return f"{self.doc}, {self.provision}" if self.provision else self.doc


@dataclass(frozen=True)
class Evidence:
    """One place in the release (or in a ``--mof`` file) that supports a claim."""

    source: str  # a path relative to the release root, "README.md#metadata", "mof:FILE"
    location: str = ""  # "line 12", "## Training Data", "metadata.license"
    excerpt: str = ""  # a short quote (at most a few hundred characters)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "location": self.location, "excerpt": self.excerpt}

    def __str__(self) -> str:
        where = f"{self.source}:{self.location}" if self.location else self.source
        return f'{where} "{self.excerpt}"' if self.excerpt else where


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    """Something the reader should know: a gap, a conflict, an input that could not be read."""

    rule: str  # stable id, e.g. "licence.tag-mismatch", "card.front-matter-invalid"
    severity: Severity
    message: str  # one or two sentences
    citation: Citation | None = None
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
            "citation": self.citation.to_dict() if self.citation else None,
            "evidence": [e.to_dict() for e in self.evidence],
        }


class CheckStatus(StrEnum):
    """The outcome of one check of a verdict (OSAID element, documentation item, …)."""

    MET = "met"
    PARTIAL = "partial"
    NOT_MET = "not_met"
    NOT_DETERMINABLE = "not_determinable"  # the evidence lies outside the release


@dataclass(frozen=True)
class Check:
    """One rule applied to the release, with its outcome and why."""

    rule: str  # "OSAID-PARAM-2"
    title: str
    status: CheckStatus
    reasons: tuple[str, ...]
    citation: Citation | None = None
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "status": str(self.status),
            "reasons": list(self.reasons),
            "citation": self.citation.to_dict() if self.citation else None,
            "evidence": [e.to_dict() for e in self.evidence],
        }


# --- inventory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One Model Openness Framework component of the release and what shows it is there.

    ``licence`` is the licence the component is released under as far as the audit knows it
    (component-specific, else inherited); ``licence_source`` says where that came from.
    """

    mof_id: int  # the MOF component id (9 = Model architecture, 10 = parameters, …)
    name: str  # the MOF component name, exactly as the framework spells it
    present: bool
    licence: str | None = None
    licence_source: str = ""  # "component", "global:code", "global:distribution", "LICENSE", …
    evidence: tuple[Evidence, ...] = ()
    detail: str = ""  # "safetensors, 1 file", "linked: https://arxiv.org/abs/…"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mof_id": self.mof_id,
            "name": self.name,
            "present": self.present,
            "licence": self.licence,
            "licence_source": self.licence_source,
            "detail": self.detail,
            "evidence": [e.to_dict() for e in self.evidence],
        }


# --- licence -------------------------------------------------------------------------------


class LicenceCategory(StrEnum):
    """How open a licence is, from the point of view of an open-weight release."""

    OSI = "osi-approved"  # OSI-approved (Apache-2.0, MIT, GPL, …)
    OPEN_DATA = "open-data"  # open content/data licence (CC-BY-4.0, CC0, CDLA-Permissive, …)
    OPEN_MODEL = "open-model"  # permissive model licence (OpenMDW)
    RESTRICTED = "restricted"  # use, user-count, field-of-use or regional restrictions
    NON_COMMERCIAL = "non-commercial"  # research or non-commercial use only
    PROPRIETARY = "proprietary"
    UNKNOWN = "unknown"

    @property
    def is_open(self) -> bool:
        return self in (LicenceCategory.OSI, LicenceCategory.OPEN_DATA, LicenceCategory.OPEN_MODEL)


@dataclass(frozen=True)
class Restriction:
    """One restrictive clause found in a licence text, quoted where it was found."""

    kind: str  # commercial | user-threshold | acceptable-use | attribution | naming | region
    #            | output-use | field-of-use | remote-restriction | flow-down
    rule: str  # the rule that found it, e.g. "LIC-R-MAU"
    summary: str  # "licence needed above 700 million monthly active users"
    quote: str
    evidence: Evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "summary": self.summary,
            "quote": self.quote,
            "evidence": self.evidence.to_dict(),
        }


@dataclass(frozen=True)
class LicenceResult:
    """The licence of the release as identified from its text (and its card tag)."""

    id: str | None  # SPDX id, or a model-licence key ("llama3.1", "gemma", "deepseek")
    name: str
    category: LicenceCategory
    osi_approved: bool
    source: Evidence | None  # the file (and line) the identification rests on
    method: str  # "text" (licence text matched), "tag" (card tag only), "none"
    confidence: float  # 0..1
    restrictions: tuple[Restriction, ...] = ()
    card_tag: str | None = None  # the card's `license:` value as written
    rule: str = ""  # the licence rule that matched, e.g. "LIC-ID-llama3.1"

    @property
    def restricted(self) -> bool:
        return not self.category.is_open or bool(self.restrictions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "category": str(self.category),
            "osi_approved": self.osi_approved,
            "source": self.source.to_dict() if self.source else None,
            "method": self.method,
            "confidence": round(self.confidence, 3),
            "card_tag": self.card_tag,
            "rule": self.rule,
            "restrictions": [r.to_dict() for r in self.restrictions],
        }


# --- verdicts ------------------------------------------------------------------------------


class OsaidVerdict(StrEnum):
    OPEN_SOURCE_AI = "open-source-ai"
    OPEN_WEIGHTS = "open-weights"  # parameters open, data information or code missing
    RESTRICTED_WEIGHTS = "restricted-weights"  # parameters under restrictive terms
    CLOSED = "closed"  # no parameters released


@dataclass(frozen=True)
class OsaidResult:
    verdict: OsaidVerdict
    summary: str
    checks: tuple[Check, ...]
    citation: Citation

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "summary": self.summary,
            "citation": self.citation.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class MofComponentResult:
    """How the MOF scorer judged one listed component."""

    mof_id: int
    name: str
    mof_class: int  # 1, 2 or 3
    required: bool
    status: str  # included | invalid | unlicensed | missing
    licence: str | None
    type_appropriate: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "mof_id": self.mof_id,
            "name": self.name,
            "class": self.mof_class,
            "required": self.required,
            "status": self.status,
            "licence": self.licence,
            "type_appropriate": self.type_appropriate,
        }


@dataclass(frozen=True)
class MofResult:
    """Model Openness Framework: progress per class and the class reached."""

    progress: dict[int, float]  # class -> percentage of its (cumulative) requirements met
    classification: int  # 1, 2, 3, or 0 (unclassified)
    label: str  # "Class III - Open Model", "Unclassified"
    components: tuple[MofComponentResult, ...]
    warnings: tuple[str, ...] = ()
    source: str = ""  # "release" or "release + mof:FILE" or "mof:FILE"

    def percent(self, mof_class: int) -> int:
        """The progress of a class rounded as the reference tool shows it."""
        return round(self.progress[mof_class])

    def to_dict(self) -> dict[str, Any]:
        return {
            "progress": {f"class_{k}": round(v, 2) for k, v in sorted(self.progress.items())},
            "percent": {f"class_{k}": self.percent(k) for k in sorted(self.progress)},
            "classification": self.classification,
            "label": self.label,
            "source": self.source,
            "warnings": list(self.warnings),
            "components": [c.to_dict() for c in self.components],
        }


class DocStatus(StrEnum):
    PRESENT = "present"
    PLACEHOLDER = "placeholder"  # the heading or field is there, its content is a template
    MISSING = "missing"
    NOT_DETERMINABLE = "not_determinable"


@dataclass(frozen=True)
class DocItem:
    """One documentation item a standard asks for, and where it was (or was not) found."""

    rule: str  # "EU-AIA-XI-1-1-d"
    title: str
    status: DocStatus
    found_in: str = ""  # "README.md > Training Details > Training Data", "metadata.datasets"
    excerpt: str = ""
    citation: Citation | None = None
    reason: str = ""  # why an item is missing in part or not determinable
    confidence: str = "primary"  # "secondary": the rule's wording comes from a secondary source

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "status": str(self.status),
            "found_in": self.found_in,
            "excerpt": self.excerpt,
            "reason": self.reason,
            "confidence": self.confidence,
            "citation": self.citation.to_dict() if self.citation else None,
        }


@dataclass(frozen=True)
class DocReport:
    """Documentation completeness against one standard (a rule pack)."""

    pack: str  # "hf-model-card", "eu-ai-act-annex-xi", …
    title: str
    citation: Citation
    items: tuple[DocItem, ...]

    def count(self, status: DocStatus) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def score(self) -> float:
        """Share of the items that are present (0..1)."""
        return self.count(DocStatus.PRESENT) / len(self.items) if self.items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "title": self.title,
            "citation": self.citation.to_dict(),
            "score": round(self.score, 4),
            "counts": {str(s): self.count(s) for s in DocStatus},
            "items": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class ParamStats:
    """Parameter count and dtype breakdown, read from weight-file headers only."""

    total: int | None
    by_dtype: dict[str, int] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # the files counted
    training_tokens: int | None = None  # as stated by the card
    training_tokens_source: Evidence | None = None
    compute_flops: float | None = None  # 6 * N * D when both are known
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_dtype": dict(sorted(self.by_dtype.items())),
            "files": list(self.files),
            "training_tokens": self.training_tokens,
            "training_tokens_source": (
                self.training_tokens_source.to_dict() if self.training_tokens_source else None
            ),
            "compute_flops": self.compute_flops,
            "method": self.method,
        }


@dataclass(frozen=True)
class AuditReport:
    """The whole audit of one release directory."""

    release: str  # a display name (card model name, MOF release name or directory name)
    root: str
    engine: dict[str, str]  # {"name": "modelseal.audit", "version": "…"}
    files: dict[str, list[str]]  # file kind -> relative paths
    metadata: dict[str, Any]  # the card's YAML metadata (as parsed; JSON-able)
    components: tuple[Component, ...]
    licence: LicenceResult
    osaid: OsaidResult
    mof: MofResult
    docs: tuple[DocReport, ...]
    params: ParamStats
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "root": self.root,
            "engine": dict(self.engine),
            "osaid": self.osaid.to_dict(),
            "mof": self.mof.to_dict(),
            "licence": self.licence.to_dict(),
            "docs": [d.to_dict() for d in self.docs],
            "params": self.params.to_dict(),
            "components": [c.to_dict() for c in self.components],
            "files": {k: list(v) for k, v in sorted(self.files.items())},
            "metadata": self.metadata,
            "findings": [f.to_dict() for f in self.findings],
        }
