"""What a scan reports: verdicts, findings and per-file reports (frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, NamedTuple


class Verdict(StrEnum):
    """The outcome for one file (or what one finding implies for its file)."""

    SAFE = "safe"
    SUSPICIOUS = "suspicious"  # unusual: needs a human look (an import the allow-list lacks)
    MALFORMED = "malformed"  # the container cannot be fully parsed: nothing in it can be trusted
    DANGEROUS = "dangerous"  # can run code, touch files or network, or attack the loader

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Verdict.SAFE: 0, Verdict.SUSPICIOUS: 1, Verdict.MALFORMED: 2, Verdict.DANGEROUS: 3}


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Location(NamedTuple):
    """Where in a file a finding is: a container member, a byte offset, an opcode index."""

    member: str | None = None  # "archive/data.pkl"; nested members joined with "!"
    offset: int | None = None  # byte offset within the member (or the file)
    index: int | None = None  # type: ignore[assignment]  # opcode or entry index

    def to_dict(self) -> dict[str, Any]:
        return {"member": self.member, "offset": self.offset, "index": self.index}

    def within(self, member: str) -> Location:
        """This location seen from the container that holds ``member``."""
        inner = f"{member}!{self.member}" if self.member else member
        return Location(inner, self.offset, self.index)


class Finding(NamedTuple):
    """One observation: rule id, what it implies, where, the offending symbol, one line why."""

    rule: str  # stable id, e.g. "pickle.dangerous-global"
    verdict: Verdict  # what this finding makes of its file (never SAFE)
    severity: Severity
    message: str  # one line
    symbol: str | None = None  # e.g. "os.system", "tokenizer.chat_template"
    location: Location = Location()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "verdict": self.verdict.value,
            "severity": self.severity.value,
            "message": self.message,
            "symbol": self.symbol,
            "location": self.location.to_dict(),
        }

    def within(self, member: str) -> Finding:
        return Finding(
            self.rule,
            self.verdict,
            self.severity,
            self.message,
            self.symbol,
            self.location.within(member),
        )


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """The file verdict: the worst verdict any finding implies (SAFE when there is none)."""
    worst = Verdict.SAFE
    for finding in findings:
        if finding.verdict.rank > worst.rank:
            worst = finding.verdict
    return worst


class FileReport(NamedTuple):
    """The result for one scanned file."""

    path: str  # as given / relative to the scanned directory
    format: str  # detected from content, e.g. "pickle", "pytorch-zip", "safetensors"
    size: int
    findings: tuple[Finding, ...]

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)

    @property
    def verdicts(self) -> frozenset[Verdict]:
        """Every level reached: a broken stream after a payload is dangerous *and* malformed."""
        return frozenset(f.verdict for f in self.findings) or frozenset({Verdict.SAFE})

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "verdict": self.verdict.value,
            "verdicts": sorted(v.value for v in self.verdicts),
            "findings": [f.to_dict() for f in self.findings],
        }


def malformed(family: str, error: Exception, *, severity: Severity = Severity.MEDIUM) -> Finding:
    """The finding for a parser error: rule ``<family>.<kind>`` when the parser named the rule
    it applied (:class:`modelseal.formats.RuleError`), ``<family>.malformed`` otherwise."""
    kind = getattr(error, "kind", None) or "malformed"
    message = getattr(error, "message", None) or str(error)
    offset = getattr(error, "offset", None)
    return Finding(f"{family}.{kind}", Verdict.MALFORMED, severity, message,
                   getattr(error, "symbol", None), Location(offset=offset))  # fmt: skip
