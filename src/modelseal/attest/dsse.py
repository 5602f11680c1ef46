"""DSSE v1 envelopes (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md).

The signature covers the pre-authentication encoding, never the raw payload::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the decimal byte length. The JSON form is
``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig": b64}]}``;
standard base64 is written, standard or URL-safe base64 is read. Reading is defensive: a
hostile envelope (bad base64, missing or mistyped fields, oversized) is an
:class:`EnvelopeError`, a signature that does not verify a :class:`SignatureError`; both are
:class:`~modelseal.errors.VerificationError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from modelseal.attest.signers import (
    SignatureError,
    Signer,
    key_id_of,
    verify_signature,
)
from modelseal.errors import VerificationError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
MAX_ENVELOPE_BYTES = 96 * 1024 * 1024  # base64 of the payload plus signatures
MAX_SIGNATURES = 64
MAX_SIG_BYTES = 16 * 1024
MAX_KEYID_CHARS = 1024

__all__ = [
    "PAYLOAD_TYPE",
    "Envelope",
    "EnvelopeError",
    "Signature",
    "SignatureError",
    "pae",
    "sign_envelope",
    "verify_envelope",
]


class EnvelopeError(VerificationError):
    """An envelope that is not well-formed DSSE JSON."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding of ``payload``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Signature:
    """One DSSE signature: the signer's key id (may be empty) and the raw signature bytes."""

    keyid: str
    sig: bytes

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode("ascii")}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope; ``payload`` holds the decoded bytes."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [s.to_dict() for s in self.signatures],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_dict(cls, obj: object) -> Envelope:
        """Validate and decode an envelope dict (EnvelopeError naming the problem)."""
        if not isinstance(obj, dict):
            raise EnvelopeError("envelope is not a JSON object")
        payload_type = obj.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise EnvelopeError("envelope payloadType must be a non-empty string")
        if len(payload_type) > 1024:
            raise EnvelopeError("envelope payloadType is too long")
        payload_b64 = obj.get("payload")
        if not isinstance(payload_b64, str):
            raise EnvelopeError("envelope payload must be a base64 string")
        if len(payload_b64) > (MAX_PAYLOAD_BYTES * 4) // 3 + 4:
            raise EnvelopeError(f"envelope payload is too large (limit {MAX_PAYLOAD_BYTES} bytes)")
        payload = _b64decode(payload_b64, "envelope payload")
        raw_sigs = obj.get("signatures")
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise EnvelopeError("envelope signatures must be a non-empty list")
        if len(raw_sigs) > MAX_SIGNATURES:
            raise EnvelopeError(f"envelope has too many signatures ({len(raw_sigs)})")
        signatures: list[Signature] = []
        for i, raw in enumerate(raw_sigs):
            where = f"envelope signatures[{i}]"
            if not isinstance(raw, dict):
                raise EnvelopeError(f"{where} is not a JSON object")
            keyid = raw.get("keyid", "")
            if not isinstance(keyid, str) or len(keyid) > MAX_KEYID_CHARS:
                raise EnvelopeError(f"{where} keyid must be a string")
            sig_b64 = raw.get("sig")
            if not isinstance(sig_b64, str) or not sig_b64:
                raise EnvelopeError(f"{where} sig must be a non-empty base64 string")
            if len(sig_b64) > (MAX_SIG_BYTES * 4) // 3 + 4:
                raise EnvelopeError(f"{where} sig is too large")
            signatures.append(Signature(keyid=keyid, sig=_b64decode(sig_b64, f"{where} sig")))
        return cls(payload_type=payload_type, payload=payload, signatures=tuple(signatures))

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse the JSON form (EnvelopeError for anything else)."""
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"envelope is too large ({len(data)} bytes)")
        try:
            obj = json.loads(data)
        except RecursionError:
            raise EnvelopeError("envelope JSON is nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise EnvelopeError(f"envelope is not valid JSON: {exc}") from None
        return cls.from_dict(obj)


def _b64decode(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional; nothing else."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise EnvelopeError(f"{what} is not base64 (non-ASCII characters)") from None
    raw = raw.rstrip(b"=")
    if b"=" in raw:
        raise EnvelopeError(f"{what} is not base64 (padding inside the text)")
    if len(raw) % 4 == 1:
        raise EnvelopeError(f"{what} is not base64 (impossible length)")
    padded = raw + b"=" * (-len(raw) % 4)
    if b"-" in raw or b"_" in raw:
        if b"+" in raw or b"/" in raw:
            raise EnvelopeError(f"{what} is not base64 (mixes standard and URL-safe alphabets)")
        padded = padded.replace(b"-", b"+").replace(b"_", b"/")
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not base64") from None


def sign_envelope(payload_type: str, payload: bytes, signer: Signer) -> Envelope:
    """Sign ``PAE(payload_type, payload)`` with ``signer``; the keyid is the signer's."""
    sig = signer.sign(pae(payload_type, payload))
    return Envelope(
        payload_type=payload_type,
        payload=bytes(payload),
        signatures=(Signature(keyid=signer.key_id, sig=sig),),
    )


def verify_envelope(
    envelope: Envelope, public_key: PublicKeyTypes, *, payload_type: str | None = None
) -> bytes:
    """Return the payload if a signature by ``public_key`` verifies; SignatureError if not.

    Signatures whose keyid names this key (or whose keyid is empty) are tried in turn; one valid
    one is enough. With ``payload_type``, the envelope must declare exactly that type.
    """
    if payload_type is not None and envelope.payload_type != payload_type:
        raise EnvelopeError(
            f"envelope payloadType is {envelope.payload_type!r}, expected {payload_type!r}"
        )
    key_id = key_id_of(public_key)
    candidates = [s for s in envelope.signatures if s.keyid in ("", key_id)]
    if not candidates:
        named = ", ".join(sorted({s.keyid for s in envelope.signatures}))
        raise SignatureError(f"envelope has no signature by key {key_id} (signed by: {named})")
    message = pae(envelope.payload_type, envelope.payload)
    reasons: list[str] = []
    for signature in candidates:
        try:
            verify_signature(public_key, message, signature.sig)
        except SignatureError as exc:
            reasons.append(exc.message)
            continue
        return envelope.payload
    if len(reasons) == 1:
        raise SignatureError(f"envelope {reasons[0]}")
    raise SignatureError(
        f"none of the envelope's {len(reasons)} signatures verifies with key {key_id}"
    )
