"""The seal statement: an in-toto Statement v1 about one release, and the revocation statement.

Subject: the release name and its root digest (the manifest root of ``modelseal hash``, which
binds every path, size and digest). Predicate (``PREDICATE_TYPE``)::

    {"serial": "<decimal>", "notBefore": RFC 3339, "notAfter": RFC 3339,
     "issuer": {"subject": "<issuing certificate subject>", "keyId": "<hex>"},
     "release": {"name": ..., "root": "sha256:...", "manifest": {...}},
     "evidence": {"scan": {...summary, "digest": {"sha256": ...}},
                  "audit": {...summary, "digest": {...}},
                  "attached": [{"name": ..., "digest": {...}, "size": n}, ...]},
     "generator": {"name": "modelseal", "version": ...}}

Each evidence summary carries the digest of its full report (written beside the bundle), so a
verifier who has the report can check it is the one that was sealed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from modelseal._version import __version__
from modelseal.errors import InputError, VerificationError

PREDICATE_TYPE = "https://modelseal.dev/seal/v1"
REVOCATION_TYPE = "https://modelseal.dev/revocation/v1"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, what: str) -> datetime:
    if not isinstance(text, str):
        raise VerificationError(f"seal {what} is missing")
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise VerificationError(f"seal {what} {text!r} is not an RFC 3339 UTC time") from None
    return moment.replace(tzinfo=UTC)


def sha256_of(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest()}


def seal_predicate(
    *,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    issuer_subject: str,
    issuer_key_id: str,
    release_name: str,
    manifest: Mapping[str, Any],
    root: str,
    scan: Mapping[str, Any],
    audit: Mapping[str, Any],
    attached: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "serial": str(serial),
        "notBefore": rfc3339(not_before),
        "notAfter": rfc3339(not_after),
        "issuer": {"subject": issuer_subject, "keyId": issuer_key_id},
        "release": {"name": release_name, "root": root, "manifest": dict(manifest)},
        "evidence": {"scan": dict(scan), "audit": dict(audit), "attached": list(attached)},
        "generator": {"name": "modelseal", "version": __version__},
    }


def subject_for(release_name: str, root: str) -> list[dict[str, Any]]:
    """The statement subject for a release root ``sha256:<hex>``."""
    algorithm, _, hexdigest = root.partition(":")
    if not hexdigest:
        raise InputError(f"root digest {root!r} is not of the form algorithm:hex")
    return [{"name": release_name, "digest": {algorithm: hexdigest}}]


def scan_summary(report: Mapping[str, Any], full: bytes) -> dict[str, Any]:
    summary = report.get("summary", {})
    return {
        "verdicts": summary.get("verdicts", {}),
        "files": summary.get("files", 0),
        "engine": report.get("scanner", {}),
        "digest": sha256_of(full),
    }


def audit_summary(report: Mapping[str, Any], full: bytes) -> dict[str, Any]:
    licence = report.get("licence", {})
    mof = report.get("mof", {})
    return {
        "osaid": report.get("osaid", {}).get("verdict"),
        "mof": {"class": mof.get("classification"), "percent": mof.get("percent", {})},
        "licence": {
            "id": licence.get("id"),
            "category": licence.get("category"),
            "restrictions": sorted({r.get("kind") for r in licence.get("restrictions", [])}),
        },
        "documentation": {d.get("pack"): d.get("score") for d in report.get("docs", [])},
        "parameters": report.get("params", {}).get("total"),
        "engine": report.get("engine", {}),
        "digest": sha256_of(full),
    }


def revocation_predicate(serial: int, reason: str, when: datetime) -> dict[str, Any]:
    return {"serial": str(serial), "reason": reason, "revokedAt": rfc3339(when)}


def revocation_subject(serial: int) -> list[dict[str, Any]]:
    return [{"name": f"seal:{serial}", "digest": sha256_of(str(serial).encode())}]
