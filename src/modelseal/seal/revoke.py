"""Revocation: a signed revocation statement in the log, and the signed revocation list (CRL).

``revoke`` records the revocation in the CA registry and appends a DSSE-signed in-toto statement
(``REVOCATION_TYPE``) to the transparency log, so a revocation can no more be hidden than an
issuance. ``current_crl`` is the X.509 CRL of every revoked seal serial, signed by the issuing
key, for verifiers that work offline. ``revoked_in_log`` is the online check: it proves the log
it reads is consistent with the bundle's checkpoint, then looks for a revocation of the serial
after the seal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from modelseal.errors import Error, VerificationError
from modelseal.seal.bundle import SealBundle


def revoke(
    home: Any, serial: int, reason: str, *, comment: str = "", log_url: str | None = None
) -> int:
    """Revoke seal ``serial`` for a CRL ``reason`` (``superseded``, ``key-compromise``, ...);
    returns the log index of the revocation statement."""
    from modelseal.attest.dsse import PAYLOAD_TYPE, sign_envelope
    from modelseal.attest.statement import canonical_json, make_statement
    from modelseal.ca.revocation import reason_flag
    from modelseal.seal import predicate as p
    from modelseal.seal.certify import append_to_log

    flag = reason_flag(reason)  # refuses an unknown reason before anything is written
    now = datetime.now(UTC).replace(microsecond=0)
    home.registry.revoke(serial, flag.name, now)
    predicate = p.revocation_predicate(serial, flag.name, now)
    if comment:
        predicate["comment"] = comment
    statement = make_statement(p.revocation_subject(serial), p.REVOCATION_TYPE, predicate)
    envelope = sign_envelope(PAYLOAD_TYPE, canonical_json(statement), home.issuing_signer)
    proof = append_to_log(home, canonical_json(envelope.to_dict()), log_url)
    return proof.index


def current_crl(home: Any, *, valid_days: int = 7) -> bytes:
    """The signed X.509 revocation list of every revoked seal serial, as PEM."""
    from cryptography.hazmat.primitives import serialization

    crl = home.crl(validity=timedelta(days=valid_days))
    data: bytes = crl.public_bytes(serialization.Encoding.PEM)
    return data


def revoked_in_log(
    client: Any, bundle: SealBundle, serial: int, issuing: Any, trust: Any
) -> str | None:
    """A message if the log holds a valid revocation of ``serial`` after the seal, else None."""
    from modelseal.attest.dsse import Envelope, verify_envelope
    from modelseal.attest.statement import parse_statement
    from modelseal.seal import predicate as p
    from modelseal.tlog.merkle import verify_consistency
    from modelseal.tlog.note import Checkpoint, NoteVerifier, open_note

    verifiers = [NoteVerifier.from_vkey(v) for v in trust.log_vkeys]
    old_text, _ = open_note(bundle.tlog.checkpoint, verifiers)
    old = Checkpoint.from_text(old_text)
    new_text, _ = open_note(client.checkpoint(), verifiers)
    new = Checkpoint.from_text(new_text)
    if new.origin != old.origin:
        raise VerificationError(f"the log at hand is {new.origin!r}, the seal is in {old.origin!r}")
    if new.size < old.size:
        raise VerificationError(
            f"the log's checkpoint ({new.size} entries) is older than the bundle's ({old.size})"
        )
    if new.size > old.size:
        verify_consistency(
            old.size,
            new.size,
            client.consistency_proof(old.size, new.size),
            old.root_hash,
            new.root_hash,
        )
    elif new.root_hash != old.root_hash:
        raise VerificationError("the log shows a different tree of the same size: a fork")
    issuing_key = issuing.public_key()
    for index in range(bundle.tlog.index + 1, new.size):
        raw = client.entry(index)
        try:
            envelope = Envelope.from_dict(json.loads(raw))
            statement = parse_statement(verify_envelope(envelope, issuing_key))
        except (Error, ValueError, TypeError):
            continue  # another issuer's entry, or not a statement: not ours to judge
        if statement.get("predicateType") != p.REVOCATION_TYPE:
            continue
        pred = statement.get("predicate") or {}
        if str(pred.get("serial")) == str(serial):
            return (
                f"seal {serial} was revoked on {pred.get('revokedAt')} "
                f"({pred.get('reason')}; log entry {index})"
            )
    return None
