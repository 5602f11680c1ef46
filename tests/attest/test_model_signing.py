"""Interop with the real OpenSSF model-signing 1.1.1 CLI, both directions, plus tampering."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from modelseal.attest.model_signing import (
    BUNDLE_MEDIA_TYPE,
    PREDICATE_TYPE,
    OmsBundleError,
    key_hint,
    read_oms_bundle,
    verify_oms_bundle,
    write_oms_bundle,
)
from modelseal.attest.signers import SignatureError
from modelseal.errors import InputError, ManifestMismatch

CLI = Path(sys.executable).parent / "model_signing"

FILES = {
    "config.json": b'{"architectures": ["X"]}\n',
    "model.safetensors": os.urandom(5 << 20),  # above the hash engine's large-file threshold
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    "a/b": b"component order",
    "a-b/x": b"differs from string order",
    "empty": b"",
    "README.md": b"# card\n",
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[ec.EllipticCurvePrivateKey, Path, Path]:
    d = tmp_path_factory.mktemp("keys")
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = d / "key.priv", d / "key.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, priv, pub


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "my-model"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")  # ignored by both tools
    return root


@pytest.fixture
def model(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "my-model"))


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert CLI.exists(), f"the model_signing CLI is not installed at {CLI}"
    return subprocess.run(
        [str(CLI), *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def payload_of(bundle: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return result


def flip_byte(model: Path) -> str:
    p = model / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    return "model.safetensors"


def add_file(model: Path) -> str:
    (model / "tokenizer" / "extra.py").write_text("import os\n")
    return "tokenizer/extra.py"


def remove_file(model: Path) -> str:
    (model / "config.json").unlink()
    return "config.json"


TAMPERS: dict[str, tuple[Callable[[Path], str], str, str]] = {
    # name: (tamper, our diff word, model_signing's words)
    "flipped byte": (flip_byte, "modified", "Hash mismatch for"),
    "added file": (add_file, "added", "Extra files found"),
    "removed file": (remove_file, "removed", "Missing files"),
}


# -- ours -> the real model_signing ------------------------------------------------------------


def test_our_bundle_has_the_model_signing_shape(model: Path, keys: Any) -> None:
    key, _, _ = keys
    bundle = write_oms_bundle(model, key)
    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": key_hint(key.public_key())},
        "tlogEntries": [],
    }
    env = bundle["dsseEnvelope"]
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert env["signatures"][0]["keyid"] == ""
    statement = payload_of(bundle)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"][0]["name"] == "my-model"
    secret = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    text = json.dumps(bundle)
    assert secret.hex() not in text
    assert base64.b64encode(secret).decode() not in text
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names.index("a/b") < names.index("a-b/x")  # PurePosixPath order, not str order
    assert ".git/HEAD" not in names
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
    }


def test_model_signing_cli_accepts_our_bundle(model: Path, keys: Any, tmp_path: Path) -> None:
    key, _, pub = keys
    sig = tmp_path / "ours.sig"
    sig.write_text(json.dumps(write_oms_bundle(model, key)))
    r = cli("verify", "key", model, "--signature", sig, "--public_key", pub, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Verification succeeded" in r.stdout


def test_model_signing_cli_accepts_our_bundle_inside_the_model(
    model: Path, keys: Any, tmp_path: Path
) -> None:
    key, _, pub = keys
    sig = model / "model.sig"
    sig.write_text(json.dumps(write_oms_bundle(model, key, ignore=["model.sig"])))
    r = cli("verify", "key", model, "--signature", sig, "--public_key", pub, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_model_signing_cli_rejects_tampered_model(
    tamper: str, model: Path, keys: Any, tmp_path: Path
) -> None:
    key, _, pub = keys
    sig = tmp_path / "ours.sig"
    sig.write_text(json.dumps(write_oms_bundle(model, key)))
    change, _, theirs = TAMPERS[tamper]
    name = change(model)
    r = cli("verify", "key", model, "--signature", sig, "--public_key", pub, cwd=tmp_path)
    assert r.returncode == 1
    assert theirs in r.stderr
    assert name in r.stderr


def test_model_signing_cli_rejects_our_bundle_with_wrong_key(
    model: Path, keys: Any, tmp_path: Path
) -> None:
    _, _, pub = keys
    sig = tmp_path / "ours.sig"
    sig.write_text(json.dumps(write_oms_bundle(model, ec.generate_private_key(ec.SECP256R1()))))
    r = cli("verify", "key", model, "--signature", sig, "--public_key", pub, cwd=tmp_path)
    assert r.returncode == 1
    assert "Key mismatch" in r.stderr


def test_model_signing_cli_rejects_our_tampered_statement(
    model: Path, keys: Any, tmp_path: Path
) -> None:
    key, _, pub = keys
    bundle = write_oms_bundle(model, key)
    statement = payload_of(bundle)
    statement["subject"][0]["name"] = "another-model"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig = tmp_path / "ours.sig"
    sig.write_text(json.dumps(bundle))
    r = cli("verify", "key", model, "--signature", sig, "--public_key", pub, cwd=tmp_path)
    assert r.returncode == 1


# -- the real model_signing -> ours ------------------------------------------------------------


@pytest.fixture(scope="module")
def their_bundle(pristine: Path, keys: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, priv, _ = keys
    d = tmp_path_factory.mktemp("theirs")
    sig = d / "model.sig"
    r = cli("sign", "key", pristine, "--private_key", priv, "--signature", sig, cwd=d)
    assert r.returncode == 0, r.stderr
    return sig


def test_we_accept_their_bundle(model: Path, keys: Any, their_bundle: Path) -> None:
    key, _, _ = keys
    result = verify_oms_bundle(model, read_oms_bundle(their_bundle), key.public_key())
    assert result.model_name == "my-model"
    assert {name for name, _ in result.resources} == set(FILES)


def test_same_statement_both_ways(model: Path, keys: Any, their_bundle: Path) -> None:
    """Our subject digest and resource list equal model_signing's for the same directory."""
    key, _, _ = keys
    theirs = payload_of(read_oms_bundle(their_bundle))
    ours = payload_of(write_oms_bundle(model, key))
    assert ours["subject"] == theirs["subject"]
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]
    assert sorted(ours["predicate"]["serialization"]["ignore_paths"]) == sorted(
        theirs["predicate"]["serialization"]["ignore_paths"]
    )


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_we_reject_tampered_model(tamper: str, model: Path, keys: Any, their_bundle: Path) -> None:
    key, _, _ = keys
    change, ours, _ = TAMPERS[tamper]
    name = change(model)
    with pytest.raises(ManifestMismatch) as info:
        verify_oms_bundle(model, read_oms_bundle(their_bundle), key.public_key())
    assert info.value.differences == [f"{ours}: {name}"]
    assert f"{ours}: {name}" in str(info.value)


def test_we_reject_their_bundle_with_wrong_key(model: Path, their_bundle: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError, match="signed for another key"):
        verify_oms_bundle(model, read_oms_bundle(their_bundle), other)
    bundle = read_oms_bundle(their_bundle)
    del bundle["verificationMaterial"]["publicKey"]["hint"]  # no hint: the signature decides
    with pytest.raises(SignatureError, match="does not verify"):
        verify_oms_bundle(model, bundle, other)


def test_we_reject_their_tampered_statement(model: Path, keys: Any, their_bundle: Path) -> None:
    key, _, _ = keys
    bundle = read_oms_bundle(their_bundle)
    statement = payload_of(bundle)
    statement["predicate"]["resources"] = statement["predicate"]["resources"][1:]
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(SignatureError):
        verify_oms_bundle(model, bundle, key.public_key())


def test_signature_inside_the_model(model: Path, keys: Any, tmp_path: Path) -> None:
    key, priv, _ = keys
    sig = model / "model.sig"
    r = cli("sign", "key", model, "--private_key", priv, "--signature", sig, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # model_signing records the signature file in ignore_paths, so it is skipped either way
    verify_oms_bundle(model, read_oms_bundle(sig), key.public_key())


# -- hostile bundles ---------------------------------------------------------------------------


def signed_bundle_with(
    key: ec.EllipticCurvePrivateKey, statement: dict[str, Any]
) -> dict[str, Any]:
    """A bundle whose (valid) signature covers ``statement``: exercises the statement checks."""
    from modelseal.attest.dsse import pae

    payload = json.dumps(statement).encode()
    sig = key.sign(pae("application/vnd.in-toto+json", payload), ec.ECDSA(hashes.SHA256()))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: s["predicate"]["serialization"].update(method="shards"), "not supported"),
        (lambda s: s["predicate"]["serialization"].update(hash_type="md5"), "hash_type"),
        (lambda s: s.update(predicateType="https://model_signing/Digests/v0.1"), "v0.2"),
        (lambda s: s.update(predicateType="x"), "predicateType"),
        (lambda s: s["subject"][0]["digest"].update(sha256="00" * 32), "inconsistent"),
        (lambda s: s["predicate"]["resources"].append(s["predicate"]["resources"][0]), "twice"),
        (lambda s: s["predicate"]["resources"][0].update(digest="zz"), "not hex"),
        (lambda s: s["predicate"]["resources"][0].update(algorithm="blake3"), "differs"),
        (lambda s: s["predicate"]["serialization"].update(ignore_paths=["."]), "whole model"),
        (lambda s: s["predicate"]["serialization"].update(ignore_paths="x"), "list of strings"),
        (lambda s: s.update(subject=[]), "subject"),
    ],
)
def test_hostile_statements(mutate: Any, reason: str, model: Path, keys: Any) -> None:
    key, _, _ = keys
    statement = payload_of(write_oms_bundle(model, key))
    mutate(statement)
    bundle = signed_bundle_with(key, statement)
    with pytest.raises(OmsBundleError, match=reason):
        verify_oms_bundle(model, bundle, key.public_key())


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b.update(mediaType="application/vnd.dev.sigstore.bundle.v0.2+json"), "media"),
        (lambda b: b.pop("verificationMaterial"), "verificationMaterial"),
        (lambda b: b.pop("dsseEnvelope"), "dsseEnvelope"),
        (lambda b: b["dsseEnvelope"].update(payload="***"), "not base64"),
        (lambda b: b["dsseEnvelope"].update(signatures=[]), "non-empty list"),
        (lambda b: b["dsseEnvelope"].update(payloadType="text/plain"), "payloadType"),
    ],
)
def test_hostile_bundles(mutate: Any, reason: str, model: Path, keys: Any) -> None:
    key, _, _ = keys
    bundle = write_oms_bundle(model, key)
    mutate(bundle)
    with pytest.raises(OmsBundleError, match=reason):
        verify_oms_bundle(model, bundle, key.public_key())


def test_read_oms_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_oms_bundle(tmp_path / "missing.sig")
    bad = tmp_path / "bad.sig"
    bad.write_bytes(b"\x00not json")
    with pytest.raises(OmsBundleError, match="not valid JSON"):
        read_oms_bundle(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(OmsBundleError, match="not a JSON object"):
        read_oms_bundle(bad)


def test_only_ec_keys(model: Path) -> None:
    with pytest.raises(InputError, match="elliptic-curve"):
        write_oms_bundle(model, ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ignore the whole model"):
        write_oms_bundle(model, ec.generate_private_key(ec.SECP256R1()), ignore=["."])


def test_blake3_round_trip(model: Path, keys: Any) -> None:
    key, _, _ = keys
    bundle = write_oms_bundle(model, key, hash_type="blake3")
    assert verify_oms_bundle(model, bundle, key.public_key()).hash_type == "blake3"
    flip_byte(model)
    with pytest.raises(ManifestMismatch, match=r"modified: model\.safetensors"):
        verify_oms_bundle(model, bundle, key.public_key())
