from __future__ import annotations

import base64
import contextlib
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.ca.authority import (
    SEAL_SIGNING_EKU,
    ChainError,
    certificates_from_pem,
    certificates_to_pem,
    create_issuing,
    create_root,
    fingerprint,
    verify_chain,
)
from modelseal.ca.keys import generate_key
from modelseal.errors import InputError

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ALGORITHMS = ["ecdsa-p256", "ed25519"]


def pki(algorithm: str = "ecdsa-p256") -> tuple[Any, x509.Certificate, Any, x509.Certificate]:
    root_key = generate_key(algorithm)
    root = create_root(root_key, "test root", 3650, not_before=T0)
    issuing_key = generate_key(algorithm)
    issuing = create_issuing(
        root_key, root, issuing_key.public_key(), "test issuing", 365, not_before=T0
    )
    return root_key, root, issuing_key, issuing


def ku(**on: bool) -> x509.KeyUsage:
    fields = dict.fromkeys(
        [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    fields.update(on)
    return x509.KeyUsage(**fields)


def custom_cert(
    signing_key: Any,
    issuer: x509.Name,
    subject_key: Any,
    *,
    subject: str = "custom",
    extensions: list[tuple[x509.ExtensionType, bool]],
    start: dt.datetime = T0,
    days: int = 30,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    algorithm = None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signing_key, algorithm)


def issuing_with(root_key: Any, root: x509.Certificate, **overrides: Any) -> x509.Certificate:
    exts: dict[str, tuple[x509.ExtensionType, bool]] = {
        "bc": (x509.BasicConstraints(ca=False, path_length=None), True),
        "ku": (ku(digital_signature=True, crl_sign=True), True),
        "eku": (x509.ExtendedKeyUsage([SEAL_SIGNING_EKU]), False),
    }
    for name, value in overrides.items():
        if value is None:
            exts.pop(name)
        else:
            exts[name] = value
    return custom_cert(root_key, root.subject, generate_key(), extensions=list(exts.values()))


AT = T0 + dt.timedelta(days=10)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_root_extensions(algorithm: str) -> None:
    _, root, _, _ = pki(algorithm)
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert root.issuer == root.subject
    if algorithm == "ecdsa-p256":
        assert root.signature_hash_algorithm is not None
        assert root.signature_hash_algorithm.name == "sha256"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_issuing_extensions(algorithm: str) -> None:
    _, root, issuing_key, issuing = pki(algorithm)
    assert issuing.public_key() == issuing_key.public_key()
    assert issuing.issuer == root.subject
    bc = issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca
    usage = issuing.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.crl_sign
    assert not usage.value.key_cert_sign
    eku = issuing.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [SEAL_SIGNING_EKU]
    aki = issuing.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert issuing.not_valid_after_utc == T0 + dt.timedelta(days=365)


def test_eku_oid_is_a_uuid_oid() -> None:
    arc, _, number = SEAL_SIGNING_EKU.dotted_string.rpartition(".")
    assert arc == "2.25"
    assert 0 < int(number) < 2**128


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_good_chain(algorithm: str) -> None:
    _, root, _, issuing = pki(algorithm)
    assert verify_chain([issuing, root], [root], AT) == root
    assert verify_chain([issuing], [root], AT) == root
    # a naive datetime is UTC
    assert verify_chain([issuing], [root], AT.replace(tzinfo=None)) == root


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_chain_to_another_root(algorithm: str) -> None:
    _, root, _, issuing = pki(algorithm)
    _, other_root, _, _ = pki(algorithm)
    with pytest.raises(ChainError, match="issuing certificate is not signed by a trusted root"):
        verify_chain([issuing, root], [other_root], AT)


def test_root_with_same_name_but_other_key() -> None:
    _, root, _, issuing = pki()
    impostor = create_root(generate_key(), "test root", 3650, not_before=T0)
    assert impostor.subject == root.subject
    with pytest.raises(ChainError, match="not signed by a trusted root"):
        verify_chain([issuing], [impostor], AT)
    assert verify_chain([issuing], [impostor, root], AT) == root


def test_no_roots_or_empty_chain() -> None:
    _, root, _, issuing = pki()
    with pytest.raises(ChainError, match="no trusted roots"):
        verify_chain([issuing], [], AT)
    with pytest.raises(ChainError, match="empty certificate chain"):
        verify_chain([], [root], AT)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_issuing_outside_validity(algorithm: str) -> None:
    root_key, root, _, issuing = pki(algorithm)
    with pytest.raises(ChainError, match=r"issuing certificate expired on 2027-01-01T00:00:00Z"):
        verify_chain([issuing], [root], T0 + dt.timedelta(days=366))
    later = create_issuing(
        root_key, root, generate_key(algorithm).public_key(), "later", 30, not_before=AT
    )
    with pytest.raises(
        ChainError, match=r"issuing certificate is not valid before 2026-01-11T00:00:00Z"
    ):
        verify_chain([later], [root], AT - dt.timedelta(seconds=1))
    assert verify_chain([later], [root], AT) == root


def test_root_outside_validity() -> None:
    root_key = generate_key()
    root = create_root(root_key, "short root", 10, not_before=T0)
    issuing = create_issuing(root_key, root, generate_key().public_key(), "i", 365, not_before=T0)
    assert issuing.not_valid_after_utc == root.not_valid_after_utc  # clamped to the root
    with pytest.raises(ChainError, match="root certificate expired on 2026-01-11"):
        verify_chain([issuing], [root], T0 + dt.timedelta(days=11))


def test_issuing_without_eku() -> None:
    root_key, root, _, _ = pki()
    cert = issuing_with(root_key, root, eku=None)
    with pytest.raises(ChainError, match="lacks the modelseal seal-signing extended key usage"):
        verify_chain([cert], [root], AT)
    other = issuing_with(
        root_key, root, eku=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
    )
    with pytest.raises(ChainError, match=SEAL_SIGNING_EKU.dotted_string):
        verify_chain([other], [root], AT)


def test_issuing_without_digital_signature() -> None:
    root_key, root, _, _ = pki()
    cert = issuing_with(root_key, root, ku=(ku(crl_sign=True), True))
    with pytest.raises(ChainError, match="lacks digitalSignature key usage"):
        verify_chain([cert], [root], AT)
    no_ku = issuing_with(root_key, root, ku=None)
    with pytest.raises(ChainError, match="lacks digitalSignature key usage"):
        verify_chain([no_ku], [root], AT)


def test_issuing_that_is_a_ca() -> None:
    root_key, root, _, _ = pki()
    cert = issuing_with(root_key, root, bc=(x509.BasicConstraints(ca=True, path_length=0), True))
    with pytest.raises(ChainError, match="is a CA certificate"):
        verify_chain([cert], [root], AT)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_root_that_is_not_a_ca(algorithm: str) -> None:
    key = generate_key(algorithm)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a ca")])
    fake_root = custom_cert(
        key,
        name,
        key,
        subject="not a ca",
        extensions=[(x509.BasicConstraints(ca=False, path_length=None), True)],
        days=3650,
    )
    issuing = issuing_with(key, fake_root)
    with pytest.raises(ChainError, match="root is not a CA"):
        verify_chain([issuing], [fake_root], AT)


def test_tampered_issuing_signature() -> None:
    _, root, _, issuing = pki()
    der = bytearray(issuing.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    try:
        tampered = x509.load_der_x509_certificate(bytes(der))
    except ValueError:
        pytest.skip("tampered DER did not parse")
    with pytest.raises(ChainError, match="not signed by a trusted root"):
        verify_chain([tampered], [root], AT)


def test_path_validation_is_the_final_gate() -> None:
    """An ECDSA chain the explicit checks accept but RFC 5280 validation rejects still fails."""
    root_key = generate_key()
    # a root without keyCertSign key usage and without SKI: explicit checks accept a missing
    # KeyUsage, the web-PKI CA profile does not
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare root")])
    bare_root = custom_cert(
        root_key,
        name,
        root_key,
        subject="bare root",
        extensions=[(x509.BasicConstraints(ca=True, path_length=0), True)],
        days=3650,
    )
    issuing = issuing_with(root_key, bare_root)
    with pytest.raises(ChainError, match="certificate path validation failed"):
        verify_chain([issuing], [bare_root], AT)


def test_create_issuing_checks() -> None:
    root_key, root, _, _ = pki()
    with pytest.raises(InputError, match="does not belong"):
        create_issuing(generate_key(), root, generate_key().public_key(), "x", 10)
    with pytest.raises(InputError, match="positive number of days"):
        create_root(generate_key(), "r", 0)
    with pytest.raises(InputError, match="ECDSA P-256 or Ed25519"):
        create_root(ec.generate_private_key(ec.SECP384R1()), "r", 10)
    with pytest.raises(InputError, match="expires before"):
        create_issuing(
            root_key,
            root,
            generate_key().public_key(),
            "late",
            10,
            not_before=T0 + dt.timedelta(days=4000),
        )


def test_pem_round_trip() -> None:
    _, root, _, issuing = pki()
    pem = certificates_to_pem([issuing, root])
    assert certificates_from_pem(pem) == [issuing, root]
    assert len(fingerprint(root)) == 64
    with pytest.raises(ChainError, match="not valid PEM"):
        certificates_from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ChainError):
        certificates_from_pem(b"nothing here")
    with pytest.raises(ChainError, match="too many"):
        certificates_from_pem(pem * 9)


ROOT_KEY, ROOT, _, ISSUING = pki()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_byte_flip_in_the_issuing_certificate_fails_cleanly(data: st.DataObject) -> None:
    der = bytearray(ISSUING.public_bytes(serialization.Encoding.DER))
    i = data.draw(st.integers(0, len(der) - 1))
    der[i] ^= data.draw(st.integers(1, 255))
    pem = (
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE-----\n"
    )
    try:
        certs = certificates_from_pem(pem)
        verify_chain(certs, [ROOT], AT)
    except ChainError:
        return
    # a flip the checks accept must leave a certificate equivalent to the original
    assert certs[0].tbs_certificate_bytes == ISSUING.tbs_certificate_bytes


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_certificates_from_arbitrary_pem_fail_cleanly(body: bytes) -> None:
    pem = (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(body) + b"-----END CERTIFICATE-----\n"
    )
    with contextlib.suppress(ChainError):
        certificates_from_pem(pem)
