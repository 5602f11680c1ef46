"""The certificate authority: a root CA and the issuing certificate whose key signs seals.

X.509 is used for issuer identity only (the claims live in the signed statement)::

    root (self-signed)                        issuing certificate (signed by the root)
      BasicConstraints ca=True, pathlen=0       BasicConstraints ca=False         (critical)
      KeyUsage keyCertSign, cRLSign (critical)  KeyUsage digitalSignature, cRLSign (critical)
      SubjectKeyIdentifier                      ExtendedKeyUsage [SEAL_SIGNING_EKU]
                                                SubjectKeyIdentifier, AuthorityKeyIdentifier

The issuing key signs seals (DSSE envelopes) and revocation lists; it cannot issue
certificates (``pathlen=0`` on the root and ``ca=False`` on the issuing certificate). Both keys
are ECDSA P-256 (signatures with SHA-256) or Ed25519.

``SEAL_SIGNING_EKU`` is ``2.25.252301749989591667932652312894843194701``: an OID under the
UUID arc ``2.25`` (ITU-T X.667, RFC 4122 section 4.1), derived from the random UUID
``bdcf8cae-2b8f-4798-ac6d-9c79d5790d4d``, so it needs no registration and collides with
nothing. A certificate without it is not allowed to sign modelseal seals.

:func:`verify_chain` runs explicit checks, each failing with its own :class:`ChainError`
reason, then (for ECDSA chains) cryptography's RFC 5280 path validation as a final gate;
cryptography's verifier does not accept Ed25519 certificates, so those rely on the explicit
checks alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import (
    VerificationError as X509VerificationError,
)

from modelseal.attest.signers import PrivateKey, PublicKey
from modelseal.errors import InputError, VerificationError

SEAL_SIGNING_EKU = x509.ObjectIdentifier("2.25.252301749989591667932652312894843194701")
MAX_CERTIFICATES = 16
# what cryptography raises for malformed DER, eagerly or on lazy field access
PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    UnsupportedAlgorithm,
)

__all__ = [
    "SEAL_SIGNING_EKU",
    "ChainError",
    "certificates_from_pem",
    "certificates_to_pem",
    "create_issuing",
    "create_root",
    "fingerprint",
    "verify_chain",
]


class ChainError(VerificationError):
    """A certificate chain that does not lead to a trusted root, or a certificate misused."""


def _utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        return at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC)


def _show_time(t: dt.datetime) -> str:
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return hashes.SHA256()
    raise InputError("CA keys must be ECDSA P-256 or Ed25519")


def _check_public(key: PublicKey) -> None:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return
    raise InputError("CA keys must be ECDSA P-256 or Ed25519")


def _days(days: int) -> dt.timedelta:
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise InputError(f"validity must be a positive number of days, got {days!r}")
    return dt.timedelta(days=days)


def _name(common_name: str) -> x509.Name:
    if not common_name or len(common_name) > 64:
        raise InputError("a certificate name must be 1 to 64 characters")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, digital_signature: bool, key_cert_sign: bool, crl_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def create_root(
    key: PrivateKey,
    name: str = "modelseal root CA",
    days: int = 3650,
    *,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed root CA certificate for ``key``, valid ``days`` days from ``not_before``."""
    algorithm = _hash_for(key)
    start = _utc(not_before)
    subject = _name(name)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _days(days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(digital_signature=False, key_cert_sign=True, crl_sign=True), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, algorithm)


def create_issuing(
    root_key: PrivateKey,
    root_cert: x509.Certificate,
    issuing_public_key: PublicKey,
    name: str = "modelseal issuing CA",
    days: int = 365,
    *,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    """The issuing certificate for ``issuing_public_key``, signed by the root.

    Its validity never extends past the root's: ``not_after`` is clamped to the root's.
    """
    algorithm = _hash_for(root_key)
    _check_public(issuing_public_key)
    if root_key.public_key() != root_cert.public_key():
        raise InputError("the root key does not belong to the root certificate")
    start = _utc(not_before)
    end = min(start + _days(days), root_cert.not_valid_after_utc)
    if end <= start:
        raise InputError("the root certificate expires before the issuing certificate starts")
    try:
        ski = root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(root_cert.subject)
        .public_key(issuing_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_cert_sign=False, crl_sign=True), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([SEAL_SIGNING_EKU]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(issuing_public_key), critical=False
        )
        .add_extension(aki, critical=False)
    )
    return builder.sign(root_key, algorithm)


def fingerprint(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def certificates_to_pem(certs: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def certificates_from_pem(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM text (ChainError if there is none or one does not parse)."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    if raw.count(b"-----BEGIN CERTIFICATE-----") > MAX_CERTIFICATES:
        raise ChainError(f"too many certificates (limit {MAX_CERTIFICATES})")
    with warnings.catch_warnings():
        # cryptography warns (and will later fail) on RFC 5280 violations such as a
        # non-positive serial: treat them as malformed now
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        try:
            certs = x509.load_pem_x509_certificates(raw)
            if not certs:
                raise ChainError("no certificate found")
            for cert in certs:
                _parse_fully(cert)
        except CryptographyDeprecationWarning as exc:
            raise ChainError(f"malformed certificate: {exc}") from None
        except PARSE_ERRORS:
            raise ChainError("certificate chain is not valid PEM") from None
    return certs


def _parse_fully(cert: x509.Certificate) -> None:
    """cryptography parses lazily: touch every field so a malformed certificate fails cleanly."""
    try:
        _ = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        _ = cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number
        _ = list(cert.extensions)
        cert.public_key()
    except PARSE_ERRORS as exc:
        raise ChainError(f"malformed certificate: {exc}") from None


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage_of(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_validity(cert: x509.Certificate, what: str, at: dt.datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise ChainError(f"{what} is not valid before {_show_time(cert.not_valid_before_utc)}")
    if at > cert.not_valid_after_utc:
        raise ChainError(f"{what} expired on {_show_time(cert.not_valid_after_utc)}")


def verify_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: dt.datetime | None = None,
) -> x509.Certificate:
    """Check that ``chain[0]`` (the issuing certificate) may sign seals at ``at``.

    Further certificates in ``chain`` (the root a bundle carries) are informational: only
    ``roots`` (the trust store) are trusted. Returns the trusted root that signed the issuing
    certificate; raises :class:`ChainError` with one reason otherwise.
    """
    when = _utc(at)
    if not chain:
        raise ChainError("empty certificate chain")
    issuing = chain[0]
    if not roots:
        raise ChainError("no trusted roots in the trust store")
    _parse_fully(issuing)
    for r in roots:
        _parse_fully(r)
    root = next((r for r in roots if _signed_by(issuing, r)), None)
    if root is None:
        raise ChainError(
            f"issuing certificate is not signed by a trusted root "
            f"(issuer {issuing.issuer.rfc4514_string()}, {len(roots)} trusted root(s))"
        )
    root_bc = _basic_constraints(root)
    if root_bc is None or not root_bc.ca:
        raise ChainError("root is not a CA")
    root_ku = _key_usage_of(root)
    if root_ku is not None and not root_ku.key_cert_sign:
        raise ChainError("root lacks keyCertSign key usage")
    _check_validity(root, "root certificate", when)
    _check_validity(issuing, "issuing certificate", when)
    bc = _basic_constraints(issuing)
    if bc is not None and bc.ca:
        raise ChainError("issuing certificate is a CA certificate; seals need an end-entity key")
    ku = _key_usage_of(issuing)
    if ku is None or not ku.digital_signature:
        raise ChainError("issuing certificate lacks digitalSignature key usage")
    try:
        eku = issuing.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or SEAL_SIGNING_EKU not in eku:
        raise ChainError(
            "issuing certificate lacks the modelseal seal-signing extended key usage "
            f"({SEAL_SIGNING_EKU.dotted_string})"
        )
    if isinstance(issuing.public_key(), ec.EllipticCurvePublicKey) and isinstance(
        root.public_key(), ec.EllipticCurvePublicKey
    ):
        _path_validation(issuing, root, when)
    return root


def _path_validation(issuing: x509.Certificate, root: x509.Certificate, at: dt.datetime) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(at)
        .max_chain_depth(1)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(issuing, [])
    except X509VerificationError as exc:
        raise ChainError(f"certificate path validation failed: {exc}") from None
