"""``certify``: hash, scan, audit, sign the seal, log it and build the bundle.

Refuses (``CertifyRefused``) a release in which any file is ``dangerous`` or ``malformed``: a
seal says the bytes were examined and found loadable, so it is never issued over a payload.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modelseal.errors import InputError
from modelseal.seal.bundle import LogProof, SealBundle

ProgressHook = Callable[[str], None]


class CertifyRefused(InputError):
    """The release cannot be certified as it is (a dangerous or malformed file)."""


@dataclass(frozen=True)
class CertifyResult:
    bundle: SealBundle
    serial: int
    root: str
    scan_report: bytes  # the full reports whose digests the seal carries
    audit_report: bytes
    log_index: int


def new_serial() -> int:
    """A random positive 127-bit serial (unique without coordination, fits X.509 CRLs)."""
    return secrets.randbits(127) | 1


def certify(
    root: str | os.PathLike[str],
    home: Any,
    *,
    valid_days: int = 365,
    evidence: Sequence[str | os.PathLike[str]] = (),
    log_url: str | None = None,
    now: datetime | None = None,
    progress: ProgressHook | None = None,
) -> CertifyResult:
    """Certify the release at ``root`` with the CA and log of ``home`` (an opened Home)."""
    from cryptography import x509

    from modelseal.attest.dsse import PAYLOAD_TYPE, sign_envelope
    from modelseal.attest.statement import canonical_json, make_statement
    from modelseal.audit.api import audit_release
    from modelseal.audit.render import render
    from modelseal.release import hash_release
    from modelseal.scan.api import scan_paths
    from modelseal.scan.model import Verdict
    from modelseal.seal import predicate as p

    def step(text: str) -> None:
        if progress is not None:
            progress(text)

    if valid_days < 1:
        raise InputError(f"--valid-days must be at least 1, got {valid_days}")
    attached = [_attachment(Path(e)) for e in evidence]
    root_path = Path(root)

    step("hashing the release")
    manifest = hash_release(root_path)
    step("scanning every file")
    scan = scan_paths([root_path])
    failing = scan.failing([Verdict.DANGEROUS, Verdict.MALFORMED])
    if failing:
        shown = "\n".join(f"  {r.path}: {r.verdict.value}" for r in failing[:20])
        raise CertifyRefused(
            f"refusing to certify {root_path}: {len(failing)} file(s) are dangerous or "
            f"malformed:\n{shown}",
            hint="run `modelseal scan` on the release for the findings",
        )
    scan_doc = scan.to_dict()
    scan_bytes = canonical_json(scan_doc)
    step("auditing openness, licence and documentation")
    audit = audit_release(root_path)
    audit_bytes = render(audit, "json").encode()
    audit_doc = json.loads(audit_bytes)

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    serial = new_serial()
    issuing = x509.load_pem_x509_certificate(home.chain[0].encode())
    signer = home.issuing_signer
    predicate = p.seal_predicate(
        serial=serial,
        not_before=now,
        not_after=now + timedelta(days=valid_days),
        issuer_subject=issuing.subject.rfc4514_string(),
        issuer_key_id=signer.key_id,
        release_name=audit.release,
        manifest=manifest.to_dict(),
        root=manifest.root,
        scan=p.scan_summary(scan_doc, scan_bytes),
        audit=p.audit_summary(audit_doc, audit_bytes),
        attached=attached,
    )
    statement = make_statement(
        p.subject_for(audit.release, manifest.root), p.PREDICATE_TYPE, predicate
    )
    step("signing the seal")
    envelope = sign_envelope(PAYLOAD_TYPE, canonical_json(statement), signer).to_dict()
    entry = canonical_json(envelope)

    step("appending the seal to the transparency log")
    proof = append_to_log(home, entry, log_url)
    home.registry.record_issued(
        serial, audit.release, predicate["notBefore"], predicate["notAfter"]
    )
    bundle = SealBundle(envelope, tuple(home.chain), proof)
    return CertifyResult(bundle, serial, manifest.root, scan_bytes, audit_bytes, proof.index)


def append_to_log(home: Any, entry: bytes, log_url: str | None) -> LogProof:
    """Append ``entry`` to the home's log (or the log server at ``log_url``) and prove it."""
    from modelseal.tlog.hashing import leaf_hash
    from modelseal.tlog.note import Checkpoint

    if log_url is None:
        log = local_log(home)
        try:
            (index,) = log.append([entry])
            note = log.checkpoint()
            checkpoint = Checkpoint.from_text(_note_body(note))
            hashes = log.inclusion_proof(index, checkpoint.size)
        finally:
            close = getattr(log, "close", None)
            if close is not None:
                close()
        return LogProof(checkpoint.origin, index, checkpoint.size, tuple(hashes), note)

    from modelseal.tlog.client import LogClient

    client = LogClient(log_url)
    index, note = client.submit(entry, home.issuing_signer)
    checkpoint = Checkpoint.from_text(_note_body(note))
    proved_index, hashes = client.inclusion_proof(leaf_hash(entry), checkpoint.size)
    if proved_index != index:
        raise InputError(f"log at {log_url} proved index {proved_index} for entry {index}")
    return LogProof(checkpoint.origin, index, checkpoint.size, tuple(hashes), note)


def local_log(home: Any) -> Any:
    """The home's own transparency log (SQLite in ``$MODELSEAL_HOME/log/log.db``)."""
    from modelseal.tlog.log import Log
    from modelseal.tlog.store import open_store

    store = open_store(f"sqlite:///{Path(home.log_db).resolve()}")
    return Log(store, home.origin, home.log_signer)


def _note_body(note: str) -> str:
    """The text of a signed note (everything before the blank line and the signatures)."""
    body, sep, _ = note.partition("\n\n")
    if not sep:
        raise InputError("the log returned a checkpoint that is not a signed note")
    return body + "\n"


def _attachment(path: Path) -> dict[str, Any]:
    from modelseal.seal.predicate import sha256_of

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read evidence file {path}: {exc.strerror}") from None
    return {"name": path.name, "size": len(data), "digest": sha256_of(data)}
