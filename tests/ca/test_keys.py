from __future__ import annotations

import base64
import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import modelseal.ca.keys
from modelseal.ca.keys import (
    PASSPHRASE_ENV,
    generate_key,
    load_private_key,
    passphrase_from_env_or_prompt,
    save_private_key,
)
from modelseal.errors import InputError
from tests.ca.conftest import REAL_KDF_ROUNDS

ALGORITHMS = ["ecdsa-p256", "ed25519"]


def raw_forms(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> list[str]:
    """Every way the secret could leak into a text: PEM, base64 DER, hex DER."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    body = "".join(pem.strip().splitlines()[1:-1])
    return [pem, body, body[:40], der.hex(), base64.b64encode(der).decode()]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_round_trip_and_mode(algorithm: str, tmp_path: Path) -> None:
    key = generate_key(algorithm)
    path = tmp_path / "k.key"
    old = os.umask(0)
    try:
        save_private_key(path, key, b"correct horse")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    for form in raw_forms(key):
        assert form not in text
    loaded = load_private_key(path, b"correct horse")
    assert loaded.public_key() == key.public_key()
    assert load_private_key(path, "correct horse").public_key() == key.public_key()


def test_unknown_algorithm() -> None:
    with pytest.raises(InputError, match="unknown key algorithm 'rsa'"):
        generate_key("rsa")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_passphrase_is_clean(algorithm: str, tmp_path: Path) -> None:
    key = generate_key(algorithm)
    path = tmp_path / "k.key"
    save_private_key(path, key, b"right")
    with pytest.raises(InputError) as info:
        load_private_key(path, b"wrong")
    exc = info.value
    assert str(exc) == f"wrong passphrase for {path}"
    shown = exc.diagnostics() + repr(exc)
    file_text = path.read_text()
    assert "".join(file_text.splitlines()[1:-1])[:40] not in shown
    for form in raw_forms(key):
        assert form not in shown
    assert "right" not in shown
    assert exc.__cause__ is None
    assert exc.__suppress_context__


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    save_private_key(path, generate_key(), b"pw")
    before = path.read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite"):
        save_private_key(path, generate_key(), b"pw")
    assert path.read_bytes() == before


def test_refuses_empty_passphrase(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must not be empty"):
        save_private_key(tmp_path / "k", generate_key(), b"")
    assert not (tmp_path / "k").exists()


def test_refuses_unencrypted_key(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "plain.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with pytest.raises(InputError, match="not an encrypted PKCS#8") as info:
        load_private_key(path, b"pw")
    for form in raw_forms(key):
        assert form not in info.value.diagnostics()


def test_refuses_readable_key_file(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    save_private_key(path, generate_key(), b"pw")
    path.chmod(0o644)
    with pytest.raises(InputError, match="accessible by other users") as info:
        load_private_key(path, b"pw")
    assert info.value.hint == f"chmod 600 {path}"


def test_missing_and_damaged_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="key file not found"):
        load_private_key(tmp_path / "nope", b"pw")
    path = tmp_path / "k.key"
    save_private_key(path, generate_key(), b"pw")
    lines = path.read_text().splitlines()
    lines[2] = lines[2][::-1]
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="wrong passphrase"):  # damaged reads the same
        load_private_key(path, b"pw")


def test_default_work_factor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelseal.ca.keys, "KDF_ROUNDS", REAL_KDF_ROUNDS)
    assert REAL_KDF_ROUNDS >= 600_000
    path = tmp_path / "k.key"
    key = generate_key()
    save_private_key(path, key, b"pw")
    der = base64.b64decode("".join(path.read_text().splitlines()[1:-1]))
    encoded = REAL_KDF_ROUNDS.to_bytes((REAL_KDF_ROUNDS.bit_length() // 8) + 1, "big")
    assert bytes([0x02, len(encoded)]) + encoded in der  # the PBKDF2 iteration count
    assert load_private_key(path, b"pw").public_key() == key.public_key()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_reads_our_key_file(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    key = generate_key()
    save_private_key(path, key, b"pw")
    out = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-passin", "pass:pw", "-pubout"],
        capture_output=True,
        check=True,
    ).stdout
    assert out == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "s3cret")
    assert passphrase_from_env_or_prompt() == b"s3cret"


def test_passphrase_without_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(InputError, match="not a terminal") as info:
        passphrase_from_env_or_prompt()
    assert PASSPHRASE_ENV in info.value.diagnostics()


def test_passphrase_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(modelseal.ca.keys, "_stdin_is_tty", lambda: True)
    answers = iter(["pw1", "pw1", "pw2"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert passphrase_from_env_or_prompt("pass: ") == b"pw1"
    assert prompts == ["pass: "]
    with pytest.raises(InputError, match="do not match"):
        passphrase_from_env_or_prompt("pass: ", confirm=True)
