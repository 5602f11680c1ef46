from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from modelseal.attest.signers import (
    EcdsaP256Signer,
    Ed25519Signer,
    SignatureError,
    Signer,
    algorithm_of,
    key_id_of,
    load_public_key,
    public_key_pem,
    signer_for,
    verify_signature,
)
from modelseal.errors import InputError


@pytest.fixture(params=["ed25519", "ecdsa-p256"])
def signer(request: pytest.FixtureRequest) -> Ed25519Signer | EcdsaP256Signer:
    return Ed25519Signer.generate() if request.param == "ed25519" else EcdsaP256Signer.generate()


def test_sign_and_verify(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    assert isinstance(signer, Signer)
    sig = signer.sign(b"hello")
    verify_signature(signer.public_key, b"hello", sig)


def test_wrong_data_fails_naming_key(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    sig = signer.sign(b"hello")
    with pytest.raises(SignatureError, match=f"does not verify with key {signer.key_id}"):
        verify_signature(signer.public_key, b"hellO", sig)


def test_wrong_key_fails(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    other = type(signer).generate()
    with pytest.raises(SignatureError, match=other.key_id):
        verify_signature(other.public_key, b"x", signer.sign(b"x"))


def test_malformed_signature(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    with pytest.raises(SignatureError):
        verify_signature(signer.public_key, b"x", b"\x30\x02garbage")
    with pytest.raises(SignatureError):
        verify_signature(signer.public_key, b"x", b"")


def test_key_id_is_sha256_of_der_spki(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    der = signer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert signer.key_id == hashlib.sha256(der).hexdigest() == key_id_of(signer.public_key)


def test_ecdsa_signature_is_der() -> None:
    signer = EcdsaP256Signer.generate()
    sig = signer.sign(b"m")
    assert sig[0] == 0x30  # DER SEQUENCE
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(sig)
    assert r > 0
    assert s > 0


def test_repr_holds_no_key_material(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    key = signer._key
    raw = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    text = repr(signer)
    assert signer.key_id in text
    assert raw.hex() not in text
    assert "PRIVATE" not in text


def test_signer_for_and_algorithms() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    assert isinstance(signer_for(ed), Ed25519Signer)
    assert isinstance(signer_for(p256), EcdsaP256Signer)
    assert algorithm_of(ed) == "ed25519"
    assert algorithm_of(p256.public_key()) == "ecdsa-p256"
    with pytest.raises(InputError, match="P-256"):
        algorithm_of(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InputError):
        EcdsaP256Signer(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InputError):
        Ed25519Signer(p256)  # type: ignore[arg-type]


def test_load_public_key_round_trip(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    pem = public_key_pem(signer.public_key)
    assert key_id_of(load_public_key(pem.encode())) == signer.key_id
    der = signer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_id_of(load_public_key(der)) == signer.key_id
    with pytest.raises(InputError):
        load_public_key(b"not a key")


def test_unsupported_public_key_type() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(SignatureError, match="unsupported public key type"):
        verify_signature(key, b"x", b"y")
