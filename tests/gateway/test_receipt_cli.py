"""`modelseal receipt verify`: claims shown, exit 0 valid, 1 invalid with a reason, 2 usage."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelseal._cli.main import main
from modelseal.gateway.receipts import ReceiptSigner, digest

REQUEST = b'{"model":"gemma","messages":[{"role":"user","content":"hi"}]}'
RESPONSE = b"Hello there!"


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def call(*args: str | os.PathLike[str]) -> Result:
        capsys.readouterr()
        code = main([os.fspath(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


@dataclass
class Files:
    signer: ReceiptSigner
    token: str
    receipt: Path
    key: Path
    request: Path
    response: Path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    signer = ReceiptSigner(Ed25519PrivateKey.generate())
    token = signer.sign(
        {
            "v": 1,
            "id": "chatcmpl-42",
            "iat": "2025-05-01T12:00:00Z",
            "request": digest(REQUEST),
            "response": digest(RESPONSE),
            "body": None,
            "model": {"id": "gemma", "root": "sha256:" + "cd" * 32, "serial": "5e41"},
            "key": "alice",
            "status": "blocked",
            "stream": True,
            "guards": [
                {
                    "guard": "pii",
                    "stage": "output",
                    "blocked": True,
                    "findings": [{"category": "pii.card_number", "action": "block"}],
                },
                {"guard": "secrets", "stage": "input", "blocked": False, "findings": []},
                {"guard": "pii", "stage": "input", "verdict": "flag", "categories": ["pii.email"]},
            ],
        }
    )
    receipt = tmp_path / "receipt.jws"
    receipt.write_text(f"\n  {token}\n\n")  # surrounding whitespace is accepted
    key = tmp_path / "receipt-key.pem"
    key.write_bytes(signer.public_pem)
    request = tmp_path / "request.json"
    request.write_bytes(REQUEST)
    response = tmp_path / "response.txt"
    response.write_bytes(RESPONSE)
    return Files(signer, token, receipt, key, request, response)


def test_valid_receipt_prints_its_claims(run: Run, files: Files) -> None:
    result = run("receipt", "verify", files.receipt, "--key", files.key)
    assert result.code == 0, result.err
    assert result.out.startswith(f"valid receipt, signed by {files.signer.kid}")
    for text in ("chatcmpl-42", "gemma", "5e41", "alice", "blocked", "2025-05-01T12:00:00Z"):
        assert text in result.out
    assert "pii/output block (pii.card_number)" in result.out
    assert "secrets/input pass" in result.out
    assert "pii/input flag (pii.email)" in result.out
    assert "stream   yes" in result.out


def test_request_and_response_digests_are_recomputed(run: Run, files: Files) -> None:
    ok = run(
        "receipt", "verify", files.receipt, "--key", files.key,
        "--request", files.request, "--response-text", files.response,
    )  # fmt: skip
    assert ok.code == 0, ok.err
    assert ok.out.count("(matches)") == 2
    files.response.write_bytes(RESPONSE + b"\n")
    bad = run(
        "receipt", "verify", files.receipt, "--key", files.key, "--response-text", files.response
    )
    assert bad.code == 1
    assert "DOES NOT MATCH" in bad.out
    assert "--response-text digest" in bad.err
    files.request.write_bytes(REQUEST.replace(b"hi", b"ho"))
    bad = run("receipt", "verify", files.receipt, "--key", files.key, "--request", files.request)
    assert bad.code == 1
    assert "--request digest" in bad.err


def test_json_output(run: Run, files: Files) -> None:
    result = run(
        "receipt", "verify", files.receipt, "--key", files.key, "--request", files.request, "--json"
    )
    assert result.code == 0
    data = json.loads(result.out)
    assert data["valid"] is True
    assert data["claims"]["model"]["serial"] == "5e41"
    assert data["checks"] == {"request": True}
    files.receipt.write_text(files.token[:-2] + ("AA" if files.token[-2:] != "AA" else "BA"))
    result = run("receipt", "verify", files.receipt, "--key", files.key, "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["valid"] is False
    assert data["reason"]


def test_modified_receipt_is_invalid_with_a_reason(run: Run, files: Files) -> None:
    header, payload, signature = files.token.split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    files.receipt.write_text(f"{header}.{flipped}.{signature}")
    result = run("receipt", "verify", files.receipt, "--key", files.key)
    assert result.code == 1
    assert result.err.startswith("invalid: ")
    assert result.out == ""


def test_wrong_key_is_invalid(run: Run, files: Files, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(ReceiptSigner(Ed25519PrivateKey.generate()).public_pem)
    result = run("receipt", "verify", files.receipt, "--key", other)
    assert result.code == 1
    assert files.signer.kid in result.err


def test_receipt_from_stdin(run: Run, files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(f"{files.token}\r\n".encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    result = run("receipt", "verify", "-", "--key", files.key)
    assert result.code == 0, result.err
    assert "chatcmpl-42" in result.out


def test_usage_errors_exit_2(run: Run, files: Files, tmp_path: Path) -> None:
    assert run("receipt", "verify", files.receipt).code == 2  # --key is required
    missing = run("receipt", "verify", tmp_path / "nope", "--key", files.key)
    assert missing.code == 2
    assert "cannot read" in missing.err
    assert run("receipt", "verify", files.receipt, "--key", tmp_path / "nope.pem").code == 2
    notkey = tmp_path / "notkey.pem"
    notkey.write_text("hello")
    result = run("receipt", "verify", files.receipt, "--key", notkey)
    assert result.code == 2
    assert "not a PEM public key" in result.err
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    assert run("receipt", "verify", binary, "--key", files.key).code == 2
    assert run("receipt").code == 2
