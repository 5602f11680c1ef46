"""``verify``: check a seal bundle against the release files and a trust store, offline.

Every check runs and reports on its own (one clear reason each), so a verifier sees all that is
wrong at once:

- ``signature``  the DSSE signature over the seal, by the issuing certificate's key
- ``statement``  the statement is a modelseal seal and its subject is the sealed root
- ``chain``      the issuing certificate chains to a trusted root (key usage, EKU, validity)
- ``validity``   the seal's notBefore..notAfter window contains the verification time
- ``files``      the release's bytes match the sealed manifest (naming what differs)
- ``log``        the checkpoint is signed by a trusted log key (and enough witnesses), and the
                 inclusion proof puts this very envelope in that tree
- ``revocation`` the serial is on no signed revocation list (``--crl``) and no revocation
                 statement follows it in the log (``--log URL``); "not checked" without either
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelseal.errors import Error
from modelseal.seal.bundle import SealBundle

ProgressHook = Callable[[str], None]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "skipped": self.skipped, "reason": self.reason}


@dataclass
class VerifyResult:
    checks: list[Check] = field(default_factory=list)
    serial: str | None = None
    release: str | None = None
    root: str | None = None
    not_after: str | None = None
    predicate: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, reason: str, skipped: bool = False) -> None:
        self.checks.append(Check(name, ok, reason, skipped))

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.ok,
            "serial": self.serial,
            "release": self.release,
            "root": self.root,
            "notAfter": self.not_after,
            "checks": [c.to_dict() for c in self.checks],
        }


def verify_seal(
    root: str | os.PathLike[str],
    bundle: SealBundle,
    trust: Any,
    *,
    at: datetime | None = None,
    crl: Any = None,
    log_client: Any = None,
    progress: ProgressHook | None = None,
) -> VerifyResult:
    """Verify ``bundle`` for the release at ``root`` against ``trust`` (a TrustStore)."""
    from modelseal.attest.dsse import Envelope, verify_envelope
    from modelseal.attest.statement import canonical_json, parse_statement
    from modelseal.seal import predicate as p

    def step(text: str) -> None:
        if progress is not None:
            progress(text)

    at = at or datetime.now(UTC)
    result = VerifyResult()
    from modelseal.ca.authority import certificates_from_pem

    try:  # parsed in full: the bundle is untrusted input, and cryptography parses lazily
        chain = [c for pem in bundle.chain for c in certificates_from_pem(pem.encode())]
    except Error as exc:
        result.add("chain", False, f"the bundle's certificate chain cannot be read: {exc.message}")
        return result
    issuing = chain[0]

    # signature and statement
    statement: dict[str, Any] | None = None
    try:
        envelope = Envelope.from_dict(bundle.envelope)
        payload = verify_envelope(envelope, issuing.public_key())
        result.add("signature", True, "signed by the issuing certificate's key")
    except Error as exc:
        result.add("signature", False, exc.message)
        payload = None
    if payload is not None:
        try:
            statement = parse_statement(payload)
            _check_statement(statement, p.PREDICATE_TYPE)
            result.add("statement", True, "a modelseal seal whose subject is the sealed root")
        except Error as exc:
            result.add("statement", False, exc.message)
            statement = None
    predicate = statement["predicate"] if statement else None
    if predicate is not None:
        result.predicate = predicate
        result.serial = predicate.get("serial")
        result.release = predicate["release"].get("name")
        result.root = predicate["release"].get("root")
        result.not_after = predicate.get("notAfter")

    # chain to a trusted root
    from modelseal.ca.authority import verify_chain

    try:
        verify_chain(chain[:-1] or chain, trust.roots, at)
        result.add(
            "chain", True, f"chains to the trusted root {chain[-1].subject.rfc4514_string()}"
        )
    except Error as exc:
        result.add("chain", False, exc.message)

    # validity window
    if predicate is not None:
        try:
            not_before = p.parse_time(predicate.get("notBefore"), "notBefore")
            not_after = p.parse_time(predicate.get("notAfter"), "notAfter")
            if at < not_before:
                result.add(
                    "validity", False, f"the seal is not valid before {p.rfc3339(not_before)}"
                )
            elif at > not_after:
                result.add("validity", False, f"the seal expired on {p.rfc3339(not_after)}")
            else:
                result.add("validity", True, f"valid until {p.rfc3339(not_after)}")
        except Error as exc:
            result.add("validity", False, exc.message)

        # the files
        step("re-hashing the release")
        result.checks.append(_check_files(root, predicate))

    # the log
    step("checking the log proof")
    result.checks.append(_check_log(bundle, trust, canonical_json(bundle.envelope)))

    # revocation
    if predicate is not None:
        result.checks.append(
            _check_revocation(predicate, issuing, bundle, trust, at, crl, log_client)
        )
    return result


def _check_statement(statement: dict[str, Any], predicate_type: str) -> None:
    from modelseal.errors import VerificationError

    if statement.get("predicateType") != predicate_type:
        raise VerificationError(
            f"the statement's predicateType is {statement.get('predicateType')!r}, "
            f"not a modelseal seal ({predicate_type})"
        )
    predicate = statement.get("predicate")
    release = predicate.get("release") if isinstance(predicate, dict) else None
    if not isinstance(release, dict) or not isinstance(release.get("root"), str):
        raise VerificationError("the seal predicate names no release root")
    algorithm, _, hexdigest = release["root"].partition(":")
    subjects = statement.get("subject") or []
    if not any(
        isinstance(s, dict) and (s.get("digest") or {}).get(algorithm) == hexdigest
        for s in subjects
    ):
        raise VerificationError("the statement's subject is not the sealed release root")


def _check_files(root: str | os.PathLike[str], predicate: dict[str, Any]) -> Check:
    from modelseal.release import check_release
    from modelseal.release.manifest import Manifest

    try:
        manifest = Manifest.from_dict(predicate["release"].get("manifest"))
    except Error as exc:
        return Check("files", False, f"the sealed manifest cannot be read: {exc.message}")
    if manifest.root != predicate["release"].get("root"):
        return Check("files", False, "the sealed manifest does not hash to the sealed root")
    try:
        found, _ = check_release(root, manifest)
    except Error as exc:
        return Check("files", False, exc.message)
    if found.ok:
        return Check("files", True, f"{len(manifest.files)} files match the sealed manifest")
    lines = found.lines()
    shown = "; ".join(lines[:10]) + (f"; and {len(lines) - 10} more" if len(lines) > 10 else "")
    return Check("files", False, f"the release differs from the sealed manifest: {shown}")


def _check_log(bundle: SealBundle, trust: Any, entry: bytes) -> Check:
    from modelseal.tlog.hashing import leaf_hash
    from modelseal.tlog.merkle import verify_inclusion
    from modelseal.tlog.note import Checkpoint, CosignatureVerifier, NoteVerifier, open_note

    proof = bundle.tlog
    try:
        verifiers = [NoteVerifier.from_vkey(v) for v in trust.log_vkeys]
        text, signed_by = open_note(proof.checkpoint, verifiers)
        checkpoint = Checkpoint.from_text(text)
    except Error as exc:
        return Check("log", False, f"the checkpoint is not signed by a trusted log: {exc.message}")
    if checkpoint.origin != proof.origin:
        return Check(
            "log", False, f"the checkpoint is for log {checkpoint.origin!r}, not {proof.origin!r}"
        )
    if checkpoint.size != proof.tree_size:
        return Check(
            "log",
            False,
            f"the proof is for tree size {proof.tree_size}, the checkpoint has {checkpoint.size}",
        )
    threshold = int(getattr(trust, "witness_threshold", 0) or 0)
    if threshold:
        witnesses = 0
        lines = [line for line in proof.checkpoint.splitlines() if line.startswith("\u2014 ")]
        for vkey in trust.witness_vkeys:
            cosigner = CosignatureVerifier.from_vkey(vkey)
            for line in lines:
                try:
                    cosigner.verify(text, line)
                except Error:
                    continue
                witnesses += 1
                break
        if witnesses < threshold:
            return Check(
                "log",
                False,
                f"{witnesses} trusted witness cosignature(s), the policy needs {threshold}",
            )
    try:
        verify_inclusion(
            proof.index, proof.tree_size, leaf_hash(entry), list(proof.hashes), checkpoint.root_hash
        )
    except Error as exc:
        return Check("log", False, f"the inclusion proof does not verify: {exc.message}")
    return Check(
        "log",
        True,
        f"entry {proof.index} of {proof.tree_size} in {checkpoint.origin}, checkpoint signed by "
        + ", ".join(signed_by),
    )


def _check_revocation(
    predicate: dict[str, Any],
    issuing: Any,
    bundle: SealBundle,
    trust: Any,
    at: datetime,
    crl: Any,
    log_client: Any,
) -> Check:
    serial_text = str(predicate.get("serial", ""))
    if not serial_text.isdigit():
        return Check("revocation", False, f"the seal serial {serial_text!r} is not a number")
    serial = int(serial_text)
    if crl is not None:
        from modelseal.ca.revocation import check_not_revoked

        try:
            check_not_revoked(serial, crl, issuing, at)
        except Error as exc:
            return Check("revocation", False, exc.message)
        return Check("revocation", True, "not on the signed revocation list")
    if log_client is not None:
        from modelseal.seal.revoke import revoked_in_log

        try:
            found = revoked_in_log(log_client, bundle, serial, issuing, trust)
        except Error as exc:
            return Check("revocation", False, f"the log could not be checked: {exc.message}")
        if found:
            return Check("revocation", False, found)
        return Check(
            "revocation",
            True,
            "no revocation in the log, which is consistent with the bundle's checkpoint",
        )
    return Check(
        "revocation", True, "not checked: give --crl FILE or --log URL to check revocation", True
    )
