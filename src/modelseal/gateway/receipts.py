"""Signed receipts: one compact JWS (RFC 7515) per gateway answer, EdDSA/Ed25519 (RFC 8037).

A receipt is ``b64(header) "." b64(payload) "." b64(signature)`` with unpadded base64url
(RFC 7515 section 2), the header ``{"alg":"EdDSA","kid":...,"typ":"modelseal-receipt+jws"}``
and the payload the canonical JSON of the claims (sorted keys, no spaces, UTF-8). The Ed25519
signature covers the ASCII bytes of ``b64(header) "." b64(payload)``. ``kid`` is the first 16
hex digits of SHA-256 of the raw 32-byte public key.

Claims (built by the gateway)::

    v         1
    id        the response id
    iat       RFC 3339 time of issue
    kid       the signing key id (as in the header)
    request   digest of the raw request body          "sha256:<hex>"
    response  digest of the full response text        "sha256:<hex>"
    body      digest of the exact non-stream body, or null
    model     {"id", "root", "serial"}
    key       API key id or null
    status    "ok" | "blocked" | "refused" | "rate_limited" | "error" | "cancelled"
    stream    true | false
    guards    guard verdict summaries

:func:`verify_receipt` is strict: canonical base64url only (a changed padding bit is a changed
receipt), exact header, the key id of the key it is given, the signature, then the claims.
Every failure is a :class:`~modelseal.errors.ReceiptError`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelseal.attest.statement import canonical_json
from modelseal.errors import ConfigError, InputError, ReceiptError

__all__ = [
    "RECEIPT_TYP",
    "REQUIRED_CLAIMS",
    "ReceiptSigner",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "digest",
    "kid_of",
    "load_or_create_receipt_key",
    "load_receipt_public_key",
    "verify_receipt",
]

RECEIPT_TYP = "modelseal-receipt+jws"
RECEIPT_VERSION = 1
REQUIRED_CLAIMS = ("v", "id", "iat", "kid", "request", "response", "model", "status")
STATUSES = ("ok", "blocked", "refused", "rate_limited", "error", "cancelled")
MAX_RECEIPT_CHARS = 4 * 1024 * 1024
MAX_KEY_FILE_BYTES = 64 * 1024

_B64URL = re.compile(r"\A[A-Za-z0-9_-]*\Z")
_DIGEST = re.compile(r"\Asha256:[0-9a-f]{64}\Z")


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url: the alphabet only, no padding, canonical trailing bits."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ReceiptError("receipt is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ReceiptError("receipt is not base64url") from None
    if b64url_encode(data) != text:
        raise ReceiptError("receipt is not canonical base64url")
    return data


def digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def kid_of(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class ReceiptSigner:
    """Signs receipt claims with an Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("receipts are signed with an Ed25519 private key")
        self._key = key
        self.public_key: Ed25519PublicKey = key.public_key()
        self.kid: str = kid_of(self.public_key)
        self.public_pem: bytes = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "EdDSA", "kid": self.kid, "typ": RECEIPT_TYP}
        self._header_b64 = b64url_encode(canonical_json(header))

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The compact JWS of ``claims`` (``kid`` is filled in; a different one is refused)."""
        payload = dict(claims)
        if payload.setdefault("kid", self.kid) != self.kid:
            raise InputError(f"claims name key {payload['kid']!r}, the signer is {self.kid!r}")
        signing_input = self._header_b64 + "." + b64url_encode(canonical_json(payload))
        signature = self._key.sign(signing_input.encode("ascii"))
        return signing_input + "." + b64url_encode(signature)

    def __repr__(self) -> str:
        return f"ReceiptSigner(kid={self.kid!r})"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ReceiptError(f"receipt repeats the member {key!r}")
        result[key] = value
    return result


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ReceiptError(f"receipt {what} is not JSON") from None
    if not isinstance(value, dict):
        raise ReceiptError(f"receipt {what} is not a JSON object")
    return value


def _check_claims(claims: dict[str, Any], kid: str) -> None:
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise ReceiptError(f"receipt lacks the claim(s) {', '.join(missing)}")
    if claims["v"] != RECEIPT_VERSION or isinstance(claims["v"], bool):
        raise ReceiptError(f"unsupported receipt version {claims['v']!r}")
    if claims["kid"] != kid:
        raise ReceiptError("the receipt's kid claim differs from its header")
    if not isinstance(claims["id"], str):
        raise ReceiptError("receipt id is not a string")
    iat = claims["iat"]
    try:
        if not isinstance(iat, str):
            raise ValueError
        moment = datetime.fromisoformat(iat.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError
    except ValueError:
        raise ReceiptError(f"receipt iat {iat!r} is not an RFC 3339 time") from None
    for name in ("request", "response"):
        if not isinstance(claims[name], str) or not _DIGEST.match(claims[name]):
            raise ReceiptError(f"receipt {name} is not a sha256 digest")
    body = claims.get("body")
    if body is not None and (not isinstance(body, str) or not _DIGEST.match(body)):
        raise ReceiptError("receipt body is not a sha256 digest")
    if not isinstance(claims["model"], dict):
        raise ReceiptError("receipt model is not an object")
    if claims["status"] not in STATUSES:
        raise ReceiptError(f"receipt status {claims['status']!r} is not one of {STATUSES}")
    if claims.get("key") is not None and not isinstance(claims["key"], str):
        raise ReceiptError("receipt key is not a string")
    if "stream" in claims and not isinstance(claims["stream"], bool):
        raise ReceiptError("receipt stream is not a boolean")
    if "guards" in claims and not isinstance(claims["guards"], list):
        raise ReceiptError("receipt guards is not a list")


def verify_receipt(token: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The claims of ``token`` if it is a valid receipt signed by ``public_key``.

    Raises ReceiptError naming the first failed check.
    """
    if not isinstance(public_key, Ed25519PublicKey):
        raise InputError("receipts are verified with an Ed25519 public key")
    if not isinstance(token, str):
        raise ReceiptError("receipt is not text")
    if len(token) > MAX_RECEIPT_CHARS:
        raise ReceiptError("receipt is too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise ReceiptError("receipt is not a compact JWS (three base64url parts)")
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(b64url_decode(header_b64), "header")
    if header.get("alg") != "EdDSA":
        raise ReceiptError(f"receipt algorithm {header.get('alg')!r} is not EdDSA")
    if header.get("typ") != RECEIPT_TYP:
        raise ReceiptError(f"receipt type {header.get('typ')!r} is not {RECEIPT_TYP}")
    extra = sorted(set(header) - {"alg", "kid", "typ"})
    if extra:
        raise ReceiptError(f"receipt header has unsupported member(s) {', '.join(extra)}")
    kid = kid_of(public_key)
    if header.get("kid") != kid:
        raise ReceiptError(
            f"receipt was signed by key {header.get('kid')!r}, not by the given key {kid}"
        )
    payload = b64url_decode(payload_b64)
    signature = b64url_decode(signature_b64)
    try:
        public_key.verify(signature, (header_b64 + "." + payload_b64).encode("ascii"))
    except InvalidSignature:
        raise ReceiptError("receipt signature does not verify") from None
    claims = _json_object(payload, "payload")
    _check_claims(claims, kid)
    return claims


def load_receipt_public_key(data: bytes, source: str = "key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (as served at /v1/receipts/key); InputError otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError(f"{source} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{source} is a {type(key).__name__}, receipts use Ed25519 keys")
    return key


def _read_key(path: Path) -> Ed25519PrivateKey:
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the gateway
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read receipt key {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(f"receipt key {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_mode & 0o077:
            raise ConfigError(
                f"receipt key {path} is accessible by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o})",
                hint=f"chmod 600 {path}",
            )
        data = handle.read(MAX_KEY_FILE_BYTES + 1)
    malformed = ConfigError(
        f"receipt key {path} is not a PEM Ed25519 private key",
        hint="remove it to have the gateway create a new one (receipts signed with the old "
        "key then need the old public key)",
    )
    if len(data) > MAX_KEY_FILE_BYTES or b"-----BEGIN PRIVATE KEY-----" not in data:
        raise malformed
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise malformed from None
    if not isinstance(key, Ed25519PrivateKey):
        raise malformed
    return key


def load_or_create_receipt_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key at ``path`` (PKCS#8 PEM, mode 0600), created there if absent.

    Creation is atomic (written to a temporary file, then hard-linked into place), so replicas
    that start together end up with the same key. A file that is not such a key, or that other
    users can read, is refused with a ConfigError.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        return _read_key(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create {path.parent}: {exc.strerror}") from None
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create receipt key {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key(path)  # another process created it first: use theirs
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            # no hard links on this file system: publish with O_EXCL instead
            try:
                fd2 = os.open(path, flags, 0o600)
            except FileExistsError:
                return _read_key(path)
            with os.fdopen(fd2, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot write receipt key {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return key
