"""Private keys at rest: generated here, stored encrypted (PKCS#8, passphrase), mode 0600.

The file is a standard ``ENCRYPTED PRIVATE KEY`` PEM (PKCS#8 EncryptedPrivateKeyInfo, PBES2:
PBKDF2-HMAC-SHA256 and AES-256-CBC), exactly what ``BestAvailableEncryption`` writes and
``openssl pkey`` reads, except for the work factor: cryptography 50 fixes PBKDF2 at 2,048
iterations for PKCS#8 and offers no knob, so the envelope is built here with ``KDF_ROUNDS``
(600,000, the OWASP figure for PBKDF2-HMAC-SHA256); loading goes through cryptography.

A key file is created with ``O_CREAT | O_EXCL`` and mode ``0600``: an existing file is never
overwritten. Loading refuses an unencrypted key and a key file other users can read. Messages
name the file, never its contents.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import os
import stat
import sys
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from modelseal.attest.signers import PrivateKey
from modelseal.errors import InputError

PASSPHRASE_ENV = "MODELSEAL_PASSPHRASE"
ALGORITHMS: tuple[str, ...] = ("ecdsa-p256", "ed25519")
MAX_KEY_FILE_BYTES = 64 * 1024
KDF_ROUNDS = 600_000

Algorithm = Literal["ecdsa-p256", "ed25519"]

__all__ = [
    "ALGORITHMS",
    "PASSPHRASE_ENV",
    "generate_key",
    "load_private_key",
    "passphrase_from_env_or_prompt",
    "save_private_key",
]


def generate_key(algorithm: str = "ecdsa-p256") -> PrivateKey:
    """A fresh private key: ``"ecdsa-p256"`` or ``"ed25519"``."""
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise InputError(f"unknown key algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})")


# -- PKCS#8 EncryptedPrivateKeyInfo (RFC 5958 / RFC 8018 PBES2), DER by hand ---------------------

_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_OID_HMAC_SHA256 = "1.2.840.113549.2.9"
_OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for value in parts[2:]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def encrypt_pkcs8_pem(key: PrivateKey, passphrase: bytes, rounds: int) -> bytes:
    """``key`` as an ENCRYPTED PRIVATE KEY PEM (PBES2, PBKDF2-HMAC-SHA256 x ``rounds``,
    AES-256-CBC)."""
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, iv = os.urandom(16), os.urandom(16)
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=rounds)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(kdf.derive(passphrase)), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    params = _seq(
        _seq(
            _oid(_OID_PBKDF2),
            _seq(_der(0x04, salt), _int(rounds), _seq(_oid(_OID_HMAC_SHA256), b"\x05\x00")),
        ),
        _seq(_oid(_OID_AES256_CBC), _der(0x04, iv)),
    )
    der = _seq(_seq(_oid(_OID_PBES2), params), _der(0x04, encrypted))
    b64 = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    text = "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + "\n".join(lines)
    return (text + "\n-----END ENCRYPTED PRIVATE KEY-----\n").encode("ascii")


def _passphrase_bytes(passphrase: bytes | str) -> bytes:
    data = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not data:
        raise InputError("the passphrase must not be empty")
    return data


def save_private_key(
    path: str | os.PathLike[str], key: PrivateKey, passphrase: bytes | str
) -> None:
    """Write ``key`` to a new file ``path`` (mode 0600), encrypted with ``passphrase``.

    Refuses to overwrite an existing file (InputError).
    """
    secret = _passphrase_bytes(passphrase)
    data = encrypt_pkcs8_pem(key, secret, KDF_ROUNDS)
    target = os.fspath(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise InputError(f"refusing to overwrite the existing key file {target}") from None
    except OSError as exc:
        raise InputError(f"cannot create key file {target}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits, never added: make it exact
        with os.fdopen(fd, "wb", closefd=True) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise InputError(f"cannot write key file {target}: {exc.strerror}") from None


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | str) -> PrivateKey:
    """Read and decrypt the key at ``path`` (InputError "wrong passphrase for PATH" etc.)."""
    target = os.fspath(path)
    secret = _passphrase_bytes(passphrase)
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"key file not found: {target}") from None
    except OSError as exc:
        raise InputError(f"cannot read key file {target}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"key file {target} is not a regular file")
        if st.st_mode & 0o077:
            raise InputError(
                f"key file {target} is accessible by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"chmod 600 {target}",
            )
        data = fh.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise InputError(f"key file {target} is too large to be a private key")
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in data:
        raise InputError(
            f"key file {target} is not an encrypted PKCS#8 private key",
            hint="modelseal stores private keys encrypted; re-create it with modelseal",
        )
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except ValueError:
        # cryptography reports a failed decryption and a damaged file the same way; the
        # message never includes the file's bytes
        raise InputError(
            f"wrong passphrase for {target}",
            hint=f"check {PASSPHRASE_ENV}; a damaged key file gives the same error",
        ) from None
    except (TypeError, UnsupportedAlgorithm):
        raise InputError(f"key file {target} holds an unsupported key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise InputError(f"key file {target} holds an unsupported key type")


def passphrase_from_env_or_prompt(
    prompt: str = "modelseal passphrase: ", *, confirm: bool = False
) -> bytes:
    """``$MODELSEAL_PASSPHRASE``, else a prompt on the terminal, else InputError.

    With ``confirm`` (creating keys), the prompt asks twice and the answers must match.
    """
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode("utf-8")
    if not _stdin_is_tty():
        raise InputError(
            "no passphrase: stdin is not a terminal",
            hint=f"set {PASSPHRASE_ENV} to the passphrase of the modelseal keys",
        )
    first = getpass.getpass(prompt)
    if not first:
        raise InputError("the passphrase must not be empty")
    if confirm and getpass.getpass("repeat " + prompt) != first:
        raise InputError("the passphrases do not match")
    return first.encode("utf-8")


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def key_file_mode(path: str | os.PathLike[str]) -> int:
    """The permission bits of ``path`` (for tests and ``doctor``-style checks)."""
    return stat.S_IMODE(Path(path).stat().st_mode)
