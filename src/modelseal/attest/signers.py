"""Signers and signature verification: Ed25519 and ECDSA P-256 (SHA-256, DER signatures).

A :class:`Signer` holds a private key and exposes only what a caller needs: its ``key_id`` (hex
SHA-256 of the DER SubjectPublicKeyInfo), its ``public_key`` and ``sign(data)``. Reprs name the
key id, never key material.

>>> signer = Ed25519Signer.generate()
>>> verify_signature(signer.public_key, b"data", signer.sign(b"data"))
"""

from __future__ import annotations

import hashlib
from typing import Protocol, TypeAlias, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from modelseal.errors import InputError, VerificationError

PublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

__all__ = [
    "EcdsaP256Signer",
    "Ed25519Signer",
    "PrivateKey",
    "PublicKey",
    "SignatureError",
    "Signer",
    "algorithm_of",
    "key_id_of",
    "load_public_key",
    "public_key_pem",
    "signer_for",
    "verify_signature",
]


class SignatureError(VerificationError):
    """A signature does not verify (or cannot be checked with the given key)."""


@runtime_checkable
class Signer(Protocol):
    """Anything that signs bytes with one private key."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


def key_id_of(public_key: PublicKeyTypes) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo of ``public_key``."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_key_pem(public_key: PublicKey) -> str:
    """The PEM SubjectPublicKeyInfo of ``public_key``."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def algorithm_of(key: PublicKey | PrivateKey) -> str:
    """``"ed25519"`` or ``"ecdsa-p256"`` (InputError for anything else)."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ecdsa-p256"
        raise InputError(f"unsupported elliptic curve {key.curve.name} (only P-256 is supported)")
    raise InputError(f"unsupported key type {type(key).__name__}")


def load_public_key(data: bytes) -> PublicKey:
    """A PEM (or DER) SubjectPublicKeyInfo: an Ed25519 or ECDSA P-256 public key."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError("not a PEM or DER public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise InputError(f"unsupported public key type {type(key).__name__}")
    algorithm_of(key)
    return key


class Ed25519Signer:
    """Signs with an Ed25519 private key."""

    algorithm = "ed25519"

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise InputError("Ed25519Signer needs an Ed25519 private key")
        self._key = private_key
        self._public = private_key.public_key()
        self._key_id = key_id_of(self._public)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self._key_id!r})"


class EcdsaP256Signer:
    """Signs with an ECDSA P-256 private key (SHA-256; DER-encoded signatures)."""

    algorithm = "ecdsa-p256"

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise InputError("EcdsaP256Signer needs an ECDSA P-256 private key")
        self._key = private_key
        self._public = private_key.public_key()
        self._key_id = key_id_of(self._public)

    @classmethod
    def generate(cls) -> EcdsaP256Signer:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:
        return f"EcdsaP256Signer(key_id={self._key_id!r})"


def signer_for(private_key: PrivateKey) -> Ed25519Signer | EcdsaP256Signer:
    """The signer for ``private_key`` (Ed25519 or ECDSA P-256)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return Ed25519Signer(private_key)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return EcdsaP256Signer(private_key)
    raise InputError(f"unsupported private key type {type(private_key).__name__}")


def verify_signature(public_key: PublicKeyTypes, data: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``data``; raise :class:`SignatureError` naming the key if not.

    Any public key is accepted as an argument (e.g. straight from a certificate); only Ed25519
    and ECDSA keys can verify, anything else is a :class:`SignatureError`.

    ECDSA keys use SHA-256 for P-256 (and the curve's matching hash for P-384 / P-521, which
    only the model-signing interop ever meets).
    """
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(_ec_hash(public_key)))
        else:
            raise SignatureError(f"unsupported public key type {type(public_key).__name__}")
    except InvalidSignature:
        raise SignatureError(
            f"signature does not verify with key {key_id_of(public_key)}"
        ) from None
    except (ValueError, TypeError):
        # e.g. a DER signature that does not parse
        raise SignatureError(f"malformed signature for key {key_id_of(public_key)}") from None


def _ec_hash(public_key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    size = public_key.curve.key_size
    if size == 256:
        return hashes.SHA256()
    if size == 384:
        return hashes.SHA384()
    if size == 521:
        return hashes.SHA512()
    raise SignatureError(f"unsupported elliptic curve {public_key.curve.name}")
