"""Receipts: compact JWS, EdDSA (RFC 7515 / RFC 8037), strict verification, key files."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import ConfigError, InputError, ReceiptError, VerificationError
from modelseal.gateway.receipts import (
    RECEIPT_TYP,
    ReceiptSigner,
    b64url_decode,
    b64url_encode,
    digest,
    kid_of,
    load_or_create_receipt_key,
    load_receipt_public_key,
    verify_receipt,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SIGNER = ReceiptSigner(KEY)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "id": "chatcmpl-123",
        "iat": "2025-05-01T12:00:00.123456Z",
        "request": digest(b'{"model":"m"}'),
        "response": digest(b"Hello, world"),
        "body": None,
        "model": {"id": "gemma", "root": "sha256:" + "ab" * 32, "serial": "0a1b"},
        "key": "alice",
        "status": "ok",
        "stream": True,
        "guards": [{"guard": "secrets", "stage": "output", "blocked": False, "findings": []}],
    }
    base.update(overrides)
    return base


TOKEN = SIGNER.sign(claims())


def test_rfc8037_appendix_a4_signature() -> None:
    """Our base64url and signing input reproduce the RFC 8037 Ed25519 JWS example exactly."""
    key = Ed25519PrivateKey.from_private_bytes(
        b64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    )
    raw_public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert b64url_encode(raw_public) == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    signing_input = (
        b64url_encode(b'{"alg":"EdDSA"}') + "." + b64url_encode(b"Example of Ed25519 signing")
    )
    assert signing_input == "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    assert b64url_encode(key.sign(signing_input.encode("ascii"))) == (
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )


def test_token_layout() -> None:
    header_b64, payload_b64, signature_b64 = TOKEN.split(".")
    assert "=" not in TOKEN
    header = b64url_decode(header_b64)
    assert header == b'{"alg":"EdDSA","kid":"%s","typ":"%s"}' % (
        SIGNER.kid.encode(),
        RECEIPT_TYP.encode(),
    )
    payload = b64url_decode(payload_b64)
    decoded = json.loads(payload)
    assert decoded == {**claims(), "kid": SIGNER.kid}
    assert payload == json.dumps(decoded, sort_keys=True, separators=(",", ":")).encode()
    # the signature covers ASCII(b64(header) "." b64(payload)), checked independently
    KEY.public_key().verify(
        b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode("ascii")
    )


def test_kid_is_sha256_prefix_of_the_raw_public_key() -> None:
    raw = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert SIGNER.kid == hashlib.sha256(raw).hexdigest()[:16]
    assert kid_of(KEY.public_key()) == SIGNER.kid
    assert load_receipt_public_key(SIGNER.public_pem) is not None
    assert SIGNER.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_verify_returns_the_claims() -> None:
    got = verify_receipt(TOKEN, KEY.public_key())
    assert got == {**claims(), "kid": SIGNER.kid}


def test_pyjwt_verifies_our_receipts() -> None:
    jwt = pytest.importorskip("jwt")
    decoded = jwt.api_jws.PyJWS().decode_complete(TOKEN, KEY.public_key(), algorithms=["EdDSA"])
    assert decoded["header"] == {"alg": "EdDSA", "kid": SIGNER.kid, "typ": RECEIPT_TYP}
    assert json.loads(decoded["payload"])["id"] == "chatcmpl-123"


def test_sign_fills_kid_and_refuses_a_foreign_one() -> None:
    assert verify_receipt(SIGNER.sign({**claims(), "kid": SIGNER.kid}), KEY.public_key())
    with pytest.raises(InputError, match="signer"):
        SIGNER.sign({**claims(), "kid": "0000000000000000"})
    with pytest.raises(InputError, match="JSON"):
        SIGNER.sign({**claims(), "x": float("nan")})


def test_wrong_key_names_both_kids() -> None:
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ReceiptError) as info:
        verify_receipt(TOKEN, other)
    assert SIGNER.kid in str(info.value)
    assert kid_of(other) in str(info.value)
    assert isinstance(info.value, VerificationError)
    assert info.value.exit_code == 1


def _forge(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes) -> str:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = b64url_encode(h) + "." + b64url_encode(p)
    return signing_input + "." + b64url_encode(KEY.sign(signing_input.encode()))


HEADER = {"alg": "EdDSA", "kid": SIGNER.kid, "typ": RECEIPT_TYP}
FULL = {**claims(), "kid": SIGNER.kid}


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        ({**HEADER, "alg": "none"}, FULL, "algorithm"),
        ({**HEADER, "alg": "ES256"}, FULL, "algorithm"),
        ({**HEADER, "typ": "JWT"}, FULL, "type"),
        ({**HEADER, "crit": ["exp"]}, FULL, "unsupported"),
        ({**HEADER, "kid": "ffffffffffffffff"}, FULL, "signed by key"),
        (b'{"alg":"EdDSA","alg":"EdDSA"}', FULL, "repeats"),
        (b"[]", FULL, "not a JSON object"),
        (b"\xff", FULL, "not JSON"),
        (HEADER, b"not json", "not JSON"),
        (HEADER, {k: v for k, v in FULL.items() if k != "request"}, "lacks"),
        (HEADER, {**FULL, "v": 2}, "version"),
        (HEADER, {**FULL, "v": True}, "version"),
        (HEADER, {**FULL, "kid": "0123456789abcdef"}, "kid claim"),
        (HEADER, {**FULL, "iat": "yesterday"}, "RFC 3339"),
        (HEADER, {**FULL, "iat": "2025-05-01T12:00:00"}, "RFC 3339"),
        (HEADER, {**FULL, "request": "md5:abc"}, "request"),
        (HEADER, {**FULL, "response": "sha256:" + "A" * 64}, "response"),
        (HEADER, {**FULL, "body": 5}, "body"),
        (HEADER, {**FULL, "status": "fine"}, "status"),
        (HEADER, {**FULL, "model": "gemma"}, "model"),
        (HEADER, {**FULL, "stream": "yes"}, "stream"),
        (HEADER, {**FULL, "guards": {}}, "guards"),
        (HEADER, {**FULL, "key": 7}, "key"),
        (HEADER, {**FULL, "id": 7}, "id"),
    ],
)
def test_validly_signed_but_malformed_receipts_are_refused(
    header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, reason: str
) -> None:
    with pytest.raises(ReceiptError, match=reason):
        verify_receipt(_forge(header, payload), KEY.public_key())


def test_the_forger_itself_is_sound() -> None:
    assert verify_receipt(_forge(HEADER, FULL), KEY.public_key()) == FULL


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        TOKEN + "=",
        TOKEN.replace(".", "=.", 1),
        TOKEN + "\n",
        " " + TOKEN,
        TOKEN.replace("-", "+").replace("_", "/") if ("-" in TOKEN or "_" in TOKEN) else "+.+.+",
    ],
)
def test_structurally_broken_receipts_are_refused(token: str) -> None:
    with pytest.raises(ReceiptError):
        verify_receipt(token, KEY.public_key())


def test_non_canonical_base64_of_the_signature_is_refused() -> None:
    """Changing only the unused low bits of the last character decodes to the same bytes."""
    head, _, signature = TOKEN.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(signature[-1])
    # 64 bytes -> 86 chars: the last char carries 2 bits, the low 4 are zero
    sibling = alphabet[index | 0b0001]
    assert sibling != signature[-1]
    forged = f"{head}.{signature[:-1]}{sibling}"
    with pytest.raises(ReceiptError, match="canonical"):
        verify_receipt(forged, KEY.public_key())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_modified_byte_fails(data: st.DataObject) -> None:
    raw = TOKEN.encode("ascii")
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != raw[position]))
    modified = raw[:position] + bytes([replacement]) + raw[position + 1 :]
    with pytest.raises(ReceiptError):
        verify_receipt(modified.decode("latin-1"), KEY.public_key())


@settings(max_examples=200, deadline=None)
@given(
    cut=st.integers(0, len(TOKEN) - 1),
    length=st.integers(0, 5),
    insert=st.text(alphabet="ABCabc012-_.=", max_size=3),
)
def test_any_cut_or_insertion_fails(cut: int, length: int, insert: str) -> None:
    modified = TOKEN[:cut] + insert + TOKEN[cut + length :]
    if modified == TOKEN:
        return
    with pytest.raises(ReceiptError):
        verify_receipt(modified, KEY.public_key())


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
extra_claims = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in FULL),
    st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=5),
    max_size=4,
)


@settings(max_examples=100, deadline=None)
@given(extra=extra_claims, response=st.binary(max_size=64))
def test_round_trip_for_any_json_claims(extra: dict[str, Any], response: bytes) -> None:
    wanted = {**claims(response=digest(response)), **extra}
    assert verify_receipt(SIGNER.sign(wanted), KEY.public_key()) == {**wanted, "kid": SIGNER.kid}


def test_digest_format() -> None:
    assert digest(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_load_receipt_public_key_refuses_other_keys() -> None:
    with pytest.raises(InputError, match="PEM"):
        load_receipt_public_key(b"not a key", "k.pem")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InputError, match="Ed25519"):
        load_receipt_public_key(ec_pem, "ec.pem")


# -- key files ---------------------------------------------------------------------------------


def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "receipt.pem"
    key = load_or_create_receipt_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_receipt_key(path)
    assert kid_of(again.public_key()) == kid_of(key.public_key())
    assert [p.name for p in path.parent.iterdir()] == ["receipt.pem"]  # no temporary left


def test_key_file_created_0600_despite_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_receipt_key(tmp_path / "k.pem")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600


def test_concurrent_creation_yields_one_key(tmp_path: Path) -> None:
    path = tmp_path / "receipt.pem"
    kids: list[str] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        kids.append(kid_of(load_or_create_receipt_key(path).public_key()))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kids) == 8
    assert len(set(kids)) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        ),
    ],
)
def test_malformed_key_file_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "receipt.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a PEM Ed25519 private key") as info:
        load_or_create_receipt_key(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "receipt.pem"
    load_or_create_receipt_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="other users") as info:
        load_or_create_receipt_key(path)
    assert "chmod 600" in info.value.diagnostics()


def test_key_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="regular file"):
        load_or_create_receipt_key(tmp_path)
