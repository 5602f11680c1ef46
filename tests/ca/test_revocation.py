from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.ca.authority import create_issuing, create_root
from modelseal.ca.keys import generate_key
from modelseal.ca.revocation import (
    RevocationListError,
    RevokedError,
    build_crl,
    check_not_revoked,
    crl_to_pem,
    load_crl,
    reason_flag,
    revoked_serials,
)
from modelseal.errors import InputError, VerificationError

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
ALGORITHMS = ["ecdsa-p256", "ed25519"]


def issuer(algorithm: str = "ecdsa-p256", name: str = "issuing") -> tuple[Any, x509.Certificate]:
    root_key = generate_key(algorithm)
    root = create_root(root_key, "root", 3650, not_before=T0 - dt.timedelta(days=30))
    key = generate_key(algorithm)
    cert = create_issuing(
        root_key, root, key.public_key(), name, 365, not_before=T0 - dt.timedelta(days=30)
    )
    return key, cert


REVOKED = [
    (4611686018427387905, T0 - dt.timedelta(days=2), "key_compromise"),
    (12345, T0 - dt.timedelta(days=1), "superseded"),
    (777, T0 - dt.timedelta(hours=1), "unspecified"),
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip(algorithm: str) -> None:
    key, cert = issuer(algorithm)
    crl = build_crl(key, cert, REVOKED, T0, T0 + dt.timedelta(days=7), 42)
    again = load_crl(crl_to_pem(crl))
    assert again.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    assert again.next_update_utc == T0 + dt.timedelta(days=7)
    assert again.last_update_utc == T0
    assert again.issuer == cert.subject
    assert again.is_signature_valid(cert.public_key())  # type: ignore[arg-type]
    assert sorted(revoked_serials(again)) == sorted(REVOKED)
    check_not_revoked(99, again, cert, T0 + dt.timedelta(days=1))
    with pytest.raises(RevokedError) as info:
        check_not_revoked(12345, again, cert, T0 + dt.timedelta(days=1))
    assert str(info.value) == "seal 12345 was revoked on 2026-02-28T00:00:00Z (superseded)"
    assert info.value.serial == 12345
    assert isinstance(info.value, VerificationError)
    with pytest.raises(RevokedError, match=r"\(key_compromise\)"):
        check_not_revoked(4611686018427387905, again, cert, T0)
    with pytest.raises(RevokedError, match=r"\(unspecified\)"):
        check_not_revoked(777, again, cert, T0)


def test_der_and_empty_list() -> None:
    from cryptography.hazmat.primitives import serialization

    key, cert = issuer()
    crl = build_crl(key, cert, [], T0, T0 + dt.timedelta(days=1), 1)
    again = load_crl(crl.public_bytes(serialization.Encoding.DER))
    check_not_revoked(1, again, cert, T0)
    assert revoked_serials(again) == []


def test_stale_list() -> None:
    key, cert = issuer()
    crl = build_crl(key, cert, REVOKED, T0, T0 + dt.timedelta(days=7), 1)
    with pytest.raises(
        RevocationListError, match="revocation list expired on 2026-03-08T00:00:00Z"
    ):
        check_not_revoked(99, crl, cert, T0 + dt.timedelta(days=8))
    # a stale list is refused even for a serial it names
    with pytest.raises(RevocationListError, match="expired"):
        check_not_revoked(12345, crl, cert, T0 + dt.timedelta(days=8))


def test_list_signed_by_another_key() -> None:
    _, cert = issuer(name="same name")
    other_key, other_cert = issuer(name="same name")
    forged = build_crl(other_key, other_cert, [], T0, T0 + dt.timedelta(days=1), 1)
    assert forged.issuer == cert.subject
    with pytest.raises(RevocationListError, match="signature does not verify"):
        check_not_revoked(1, forged, cert, T0)


def test_list_from_another_issuer() -> None:
    key, cert = issuer(name="one")
    _, other = issuer(name="two")
    crl = build_crl(key, cert, [], T0, T0 + dt.timedelta(days=1), 1)
    with pytest.raises(RevocationListError, match="issued by CN=one, not by CN=two"):
        check_not_revoked(1, crl, other, T0)


def test_reasons() -> None:
    assert reason_flag("key_compromise") is x509.ReasonFlags.key_compromise
    assert reason_flag("keyCompromise") is x509.ReasonFlags.key_compromise
    assert reason_flag("cessation") is x509.ReasonFlags.cessation_of_operation
    with pytest.raises(InputError, match="unknown revocation reason 'bored'"):
        reason_flag("bored")
    with pytest.raises(InputError, match="removeFromCRL"):
        reason_flag("remove_from_crl")


def test_build_checks() -> None:
    key, cert = issuer()
    other_key, _ = issuer()
    later = T0 + dt.timedelta(days=1)
    with pytest.raises(InputError, match="does not belong"):
        build_crl(other_key, cert, [], T0, later, 1)
    with pytest.raises(InputError, match="next update must be after"):
        build_crl(key, cert, [], T0, T0, 1)
    with pytest.raises(InputError, match="positive integer"):
        build_crl(key, cert, [(0, T0, "superseded")], T0, later, 1)
    with pytest.raises(InputError, match="listed twice"):
        build_crl(key, cert, [(5, T0, "superseded")] * 2, T0, later, 1)
    with pytest.raises(InputError, match="CRL number"):
        build_crl(key, cert, [], T0, later, -1)


def test_garbage_lists() -> None:
    with pytest.raises(RevocationListError, match="not a PEM or DER"):
        load_crl(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    with pytest.raises(RevocationListError, match="not a PEM or DER"):
        load_crl(b"\x30\x03\x02\x01\x00")


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_load_crl_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(RevocationListError):
        load_crl(data)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_byte_flip_is_caught(data: st.DataObject) -> None:
    from cryptography.hazmat.primitives import serialization

    cert = ISSUER[1]
    der = bytearray(CRL.public_bytes(serialization.Encoding.DER))
    i = data.draw(st.integers(0, len(der) - 1))
    der[i] ^= data.draw(st.integers(1, 255))
    try:
        crl = load_crl(bytes(der))
        check_not_revoked(12345, crl, cert, T0)
    except (RevocationListError, RevokedError):
        return
    # a flip that still verifies and no longer lists 12345 would be a forgery
    pytest.fail("a modified revocation list verified")


ISSUER = issuer()
CRL = build_crl(ISSUER[0], ISSUER[1], REVOKED, T0, T0 + dt.timedelta(days=7), 3)
