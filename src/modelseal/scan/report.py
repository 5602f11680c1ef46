"""Scan results as JSON (stable, documented in the README) and as SARIF 2.1.0."""

from __future__ import annotations

import json
from typing import Any

from modelseal._version import __version__
from modelseal.scan.api import ScanResult
from modelseal.scan.model import Finding, Verdict

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/modelseal/modelseal#verdicts-and-rules"

# One-line descriptions of the rule families (SARIF `rules[].fullDescription`).
RULE_FAMILIES: dict[str, str] = {
    "pickle": "Pickle opcode stream analysis: imports, calls and structure, never unpickled.",
    "zip": "Zip container read through its central directory, the way PyTorch reads it.",
    "7z": "7z container members.",
    "tar": "Tar container members.",
    "archive": "Containers in general (nesting, decompression).",
    "npy": "NumPy .npy header and object arrays.",
    "safetensors": "safetensors header checks of the reference implementation, and stricter.",
    "gguf": "GGUF header, metadata, tensor table and chat template checks.",
    "keras": "Keras configs: Lambda layers, foreign modules, deserialization gadgets.",
    "onnx": "ONNX external data locations and custom operator domains.",
    "file": "The file as a whole (unreadable, unrecognised content).",
    "path": "Directory entries that are unsafe to follow.",
}

_LEVEL = {
    Verdict.DANGEROUS: "error",
    Verdict.MALFORMED: "error",
    Verdict.SUSPICIOUS: "warning",
    Verdict.SAFE: "none",
}


def to_json(result: ScanResult) -> str:
    """Compact JSON (one line; pipe through ``jq`` to read it): the C encoder, fast on big scans."""
    return json.dumps(result.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"


def _where(finding: Finding) -> str:
    loc = finding.location
    parts = []
    if loc.member:
        parts.append(f"member {loc.member}")
    if loc.offset is not None:
        parts.append(f"offset {loc.offset}")
    if loc.index is not None:
        parts.append(f"#{loc.index}")
    return ", ".join(parts)


def to_sarif(result: ScanResult) -> str:
    """SARIF 2.1.0 as GitHub code scanning accepts it (one run, file-level locations)."""
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for report in result.files:
        for finding in report.findings:
            if finding.rule not in rules:
                family = finding.rule.split(".", 1)[0]
                rules[finding.rule] = {
                    "id": finding.rule,
                    "name": finding.rule.replace(".", "/"),
                    "shortDescription": {"text": finding.rule},
                    "fullDescription": {"text": RULE_FAMILIES.get(family, finding.rule)},
                    "helpUri": INFO_URI,
                    "defaultConfiguration": {"level": _LEVEL[finding.verdict]},
                    "properties": {"verdict": finding.verdict.value},
                }
            where = _where(finding)
            text = finding.message + (f" ({where})" if where else "")
            location: dict[str, Any] = {
                "physicalLocation": {"artifactLocation": {"uri": _uri(report.path)}}
            }
            if finding.location.member:
                location["logicalLocations"] = [
                    {"fullyQualifiedName": finding.location.member, "kind": "member"}
                ]
            results.append(
                {
                    "ruleId": finding.rule,
                    "ruleIndex": list(rules).index(finding.rule),
                    "level": _LEVEL[finding.verdict],
                    "message": {"text": text},
                    "locations": [location],
                    "partialFingerprints": {
                        "modelsealFinding/v1": f"{report.path}|{finding.rule}|"
                        f"{finding.symbol}|{finding.location.member}"
                    },
                    "properties": {
                        "verdict": finding.verdict.value,
                        "severity": finding.severity.value,
                        "symbol": finding.symbol,
                        "byteOffset": finding.location.offset,
                        "index": finding.location.index,
                        "fileVerdict": report.verdict.value,
                    },
                }
            )
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelseal",
                        "version": __version__,
                        "informationUri": INFO_URI,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _uri(path: str) -> str:
    from urllib.parse import quote

    if path.startswith("/"):
        return "file://" + quote(path, safe="/")
    return quote(path, safe="/")
