"""The gateway in front of a real model: Gemma 3 270M served by llama.cpp, sealed by modelseal.

The release is certified by the real CLI (local CA, log), the gateway verifies it against the
same files llama.cpp loaded, and the official ``openai`` SDK talks to the gateway: a completion,
a streamed chat, a blocked request. Every receipt is checked against the gateway's key and the
release's sealed root.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

import modelseal.ca.keys
from modelseal._cli.main import main
from modelseal.errors import ModelRefused
from modelseal.gateway.app import create_app, gateway_start, gateway_stop
from modelseal.gateway.build import build_gateway
from modelseal.gateway.config import parse_config
from modelseal.gateway.launch import LaunchedServer
from modelseal.gateway.receipts import load_receipt_public_key, verify_receipt
from tests.tlog.test_server import serving

from .conftest import GEMMA_ALIAS

pytestmark = pytest.mark.e2e


@dataclass
class SealedGemma:
    home: Path
    bundle: Path
    release: Path


@pytest.fixture(scope="module")
def sealed_gemma(gemma_release: Path, tmp_path_factory: pytest.TempPathFactory) -> SealedGemma:
    base = tmp_path_factory.mktemp("gemma-seal")
    home, bundle = base / "home", base / "gemma.seal.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(modelseal.ca.keys, "KDF_ROUNDS", 1000)
        mp.setenv("MODELSEAL_PASSPHRASE", "e2e passphrase")
        assert main(["init", "--home", str(home)]) == 0
        assert main(["certify", str(gemma_release), "-o", str(bundle), "--home", str(home)]) == 0
    return SealedGemma(home, bundle, gemma_release)


def gateway_for(sealed: SealedGemma, server: LaunchedServer, tmp: Path, **model: str):  # type: ignore[no-untyped-def]
    config = parse_config(
        {
            "model": {"id": GEMMA_ALIAS, **model},
            "checks": {"trust": str(sealed.home / "trust")},
            "audit": {"path": str(tmp / "audit.db")},
            "receipts": {"key": str(tmp / "receipt.key")},
        }
    )
    return build_gateway(
        config,
        upstream_url=server.url,
        release_dir=sealed.release,
        bundle_path=sealed.bundle,
        home=sealed.home,
        upstream_id=model.get("upstream_id", GEMMA_ALIAS),
    )


@pytest.fixture
def gateway_url(
    sealed_gemma: SealedGemma, gemma_server: LaunchedServer, tmp_path: Path
) -> Iterator[tuple[str, object]]:
    gateway = gateway_for(sealed_gemma, gemma_server, tmp_path)
    with serving(create_app(gateway)) as url:
        yield url, gateway


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_guarded_completion_stream_and_block_on_gemma(
    gateway_url: tuple[str, object], sealed_gemma: SealedGemma
) -> None:
    url, gateway = gateway_url
    key = load_receipt_public_key(httpx.get(f"{url}/v1/receipts/key").content)
    sealed = json.loads(sealed_gemma.bundle.read_text())
    assert sealed["envelope"]  # a real bundle
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)

    # a guarded completion
    raw = client.completions.with_raw_response.create(
        model=GEMMA_ALIAS, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    completion = raw.parse()
    text = completion.choices[0].text
    assert text.strip()
    claims = verify_receipt(raw.headers["x-modelseal-receipt"], key)
    status = gateway.identity.status  # type: ignore[attr-defined]
    assert claims["model"] == {"id": GEMMA_ALIAS, "root": status.root, "serial": status.serial}
    assert claims["response"] == sha(text)
    assert claims["status"] == "ok"

    # a streamed chat: the receipt's digest covers the whole streamed text
    body = {
        "model": GEMMA_ALIAS,
        "messages": [{"role": "user", "content": "Write one short sentence about the sea."}],
        "max_tokens": 12,
        "temperature": 0,
        "stream": True,
    }
    streamed, receipt = "", ""
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    streamed += choice["delta"].get("content") or ""
            elif line.startswith(": modelseal-receipt "):
                receipt = line.removeprefix(": modelseal-receipt ")
    assert streamed.strip()
    claims = verify_receipt(receipt, key)
    assert claims["stream"] is True
    assert claims["response"] == sha(streamed)

    # a blocked request never reaches the model
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=GEMMA_ALIAS,
            messages=[{"role": "user", "content": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl"}],
        )
    assert caught.value.code == "content_blocked"
    assert "secrets" in caught.value.message


@pytest.mark.anyio
async def test_gateway_refuses_an_upstream_serving_another_model(
    sealed_gemma: SealedGemma, gemma_server: LaunchedServer, tmp_path: Path
) -> None:
    gateway = gateway_for(sealed_gemma, gemma_server, tmp_path, upstream_id="llama-3-8b")
    with pytest.raises(ModelRefused, match="does not serve 'llama-3-8b'"):
        await gateway_start(gateway)
    await gateway_stop(gateway)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
