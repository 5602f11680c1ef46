"""Revocation lists: an X.509 CRL, signed by the issuing key, listing revoked seal serials.

A seal's serial is the integer the seal predicate carries; the CRL lists it exactly like a
certificate serial (with the revocation date and a reason code), plus a CRL number and a next
update time. :func:`check_not_revoked` verifies the list (issuer, signature, freshness at
``at``) before trusting what it says: a stale list is an error, never a silent pass.

Reasons are the RFC 5280 CRL reason names, in either spelling (``key_compromise`` or
``keyCompromise``).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.utils import CryptographyDeprecationWarning

from modelseal.attest.signers import PrivateKey
from modelseal.ca.authority import PARSE_ERRORS
from modelseal.errors import InputError, VerificationError

MAX_CRL_BYTES = 32 * 1024 * 1024

RevokedEntry: TypeAlias = tuple[int, dt.datetime, "str | x509.ReasonFlags"]

__all__ = [
    "REASONS",
    "RevocationListError",
    "RevokedError",
    "build_crl",
    "check_not_revoked",
    "crl_to_pem",
    "load_crl",
    "reason_flag",
    "revoked_serials",
]

_BY_NAME: dict[str, x509.ReasonFlags] = {}
for _flag in x509.ReasonFlags:
    _BY_NAME[_flag.name] = _flag
    _BY_NAME[_flag.value] = _flag
_BY_NAME["cessation"] = x509.ReasonFlags.cessation_of_operation
REASONS: tuple[str, ...] = tuple(f.name for f in x509.ReasonFlags)


class RevocationListError(VerificationError):
    """A revocation list that cannot be trusted: wrong issuer, bad signature, stale."""


class RevokedError(VerificationError):
    """The seal's serial is on a valid revocation list."""

    def __init__(self, serial: int, when: dt.datetime, reason: str) -> None:
        self.serial = serial
        self.revoked_at = when
        self.reason = reason
        super().__init__(f"seal {serial} was revoked on {_show_time(when)} ({reason})")


def _utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        return at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC)


def _show_time(t: dt.datetime) -> str:
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def reason_flag(reason: str | x509.ReasonFlags) -> x509.ReasonFlags:
    """The CRL reason for a name (``key_compromise``, ``keyCompromise``, ...)."""
    if isinstance(reason, x509.ReasonFlags):
        flag = reason
    else:
        found = _BY_NAME.get(reason.strip().replace("-", "_"))
        if found is None:
            raise InputError(
                f"unknown revocation reason {reason!r} (choose from {', '.join(REASONS)})"
            )
        flag = found
    if flag in (x509.ReasonFlags.remove_from_crl,):
        raise InputError("removeFromCRL is not a revocation reason for seals")
    return flag


def _check_serial(serial: int) -> None:
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
        raise InputError(f"a seal serial is a positive integer, got {serial!r}")
    if serial.bit_length() > 159:
        raise InputError("a seal serial must fit in 20 bytes")


def build_crl(
    issuing_key: PrivateKey,
    issuing_cert: x509.Certificate,
    revoked: Sequence[RevokedEntry],
    this_update: dt.datetime,
    next_update: dt.datetime,
    number: int,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``issuing_key`` listing ``(serial, revoked_at, reason)`` entries."""
    if issuing_key.public_key() != issuing_cert.public_key():
        raise InputError("the issuing key does not belong to the issuing certificate")
    start, end = _utc(this_update), _utc(next_update)
    if end <= start:
        raise InputError("the revocation list's next update must be after this update")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise InputError(f"the CRL number must be a non-negative integer, got {number!r}")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing_cert.subject)
        .last_update(start)
        .next_update(end)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    try:
        ski = issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    seen: set[int] = set()
    for serial, when, reason in revoked:
        _check_serial(serial)
        if serial in seen:
            raise InputError(f"seal {serial} is listed twice")
        seen.add(serial)
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_utc(when))
        flag = reason_flag(reason)
        if flag is not x509.ReasonFlags.unspecified:  # RFC 5280: omit rather than unspecified
            entry = entry.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    if isinstance(issuing_key, ed25519.Ed25519PrivateKey):
        return builder.sign(issuing_key, None)
    if isinstance(issuing_key, ec.EllipticCurvePrivateKey):
        return builder.sign(issuing_key, hashes.SHA256())
    raise InputError("the issuing key must be ECDSA P-256 or Ed25519")


def crl_to_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from PEM or DER bytes (RevocationListError if it does not parse)."""
    if len(data) > MAX_CRL_BYTES:
        raise RevocationListError("revocation list is too large")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                crl = x509.load_pem_x509_crl(data)
            else:
                crl = x509.load_der_x509_crl(data)
            _parse_fully(crl)
        except CryptographyDeprecationWarning as exc:
            raise RevocationListError(f"revocation list is malformed: {exc}") from None
        except PARSE_ERRORS:
            raise RevocationListError("revocation list is not a PEM or DER X.509 CRL") from None
    return crl


def _parse_fully(crl: x509.CertificateRevocationList) -> None:
    """cryptography parses lazily: touch every field so a malformed list fails here, cleanly."""
    try:
        _ = crl.issuer.rfc4514_string(), crl.last_update_utc, crl.next_update_utc
        _ = list(crl.extensions)
        for entry in crl:
            _ = entry.serial_number, entry.revocation_date_utc, list(entry.extensions)
    except PARSE_ERRORS as exc:
        raise RevocationListError(f"revocation list is malformed: {exc}") from None


def _reason_of(entry: x509.RevokedCertificate) -> str:
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return x509.ReasonFlags.unspecified.name
    except ValueError:
        return "unreadable reason"
    return flag.name


def _check_crl(
    crl: x509.CertificateRevocationList, issuing_cert: x509.Certificate, at: dt.datetime
) -> None:
    if crl.issuer != issuing_cert.subject:
        raise RevocationListError(
            f"revocation list was issued by {crl.issuer.rfc4514_string()}, "
            f"not by {issuing_cert.subject.rfc4514_string()}"
        )
    try:
        ku = issuing_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if ku is not None and not ku.crl_sign:
        raise RevocationListError("issuing certificate is not allowed to sign revocation lists")
    public = issuing_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise RevocationListError("issuing certificate has an unsupported key type")
    try:
        valid = crl.is_signature_valid(public)
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise RevocationListError(
            "revocation list signature does not verify with the issuing certificate"
        )
    next_update = crl.next_update_utc
    if next_update is None:
        raise RevocationListError("revocation list has no next update time")
    if at > next_update:
        raise RevocationListError(f"revocation list expired on {_show_time(next_update)}")


def check_not_revoked(
    serial: int,
    crl: x509.CertificateRevocationList,
    issuing_cert: x509.Certificate,
    at: dt.datetime | None = None,
) -> None:
    """Verify ``crl`` against the issuing certificate at ``at``, then check ``serial``.

    Raises :class:`RevocationListError` if the list cannot be trusted (wrong issuer, bad
    signature, no next update, stale at ``at``) and :class:`RevokedError` if ``serial`` is on
    it. A revocation applies whatever its date: a revoked seal is not valid at any time.
    """
    _parse_fully(crl)
    try:
        _check_crl(crl, issuing_cert, _utc(at))
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        if entry is None:
            return
        when, reason = entry.revocation_date_utc, _reason_of(entry)
    except PARSE_ERRORS as exc:
        raise RevocationListError(f"revocation list is malformed: {exc}") from None
    raise RevokedError(serial, when, reason)


def revoked_serials(
    crl: x509.CertificateRevocationList,
) -> list[tuple[int, dt.datetime, str]]:
    """The entries of ``crl`` as ``(serial, revoked_at, reason name)`` (signature not checked)."""
    return [(e.serial_number, e.revocation_date_utc, _reason_of(e)) for e in crl]
