"""The gateway in process (httpx ASGI transports on both sides) against the fake upstream."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelseal.errors import ModelRefused
from modelseal.gateway.app import create_app, gateway_start, gateway_stop
from modelseal.gateway.audit import verify_audit
from modelseal.gateway.keys import hash_key
from modelseal.gateway.receipts import load_receipt_public_key, verify_receipt
from modelseal.gateway.service import Gateway
from modelseal.gateway.sse import SseParser
from tests.gateway.conftest import Sealed, make_gateway
from tests.gateway.fakes import FakeUpstream

pytestmark = pytest.mark.anyio

AWS_KEY = "AKIA" + "Z7QX3J5KPLM2VW4R"  # a well-formed access key id (not a real one)
CARD = "4111 1111 1111 1111"  # Luhn-valid test card number
ALICE, BOB, ADMIN = "msk-alice-secret-0001", "msk-bob-secret-0002", "admin-token-xyz"


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    await gateway_start(gateway)
    app = create_app(gateway, manage_lifecycle=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        ) as client:
            yield client
    finally:
        await gateway_stop(gateway)


def chat(text: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"model": "tiny-gateway", "messages": [{"role": "user", "content": text}], **extra}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def claims_of(gateway: Gateway, receipt: str) -> dict[str, Any]:
    return verify_receipt(receipt, load_receipt_public_key(gateway.signer.public_pem))


def stream_events(body: bytes) -> tuple[list[Any], list[str]]:
    """The JSON events and the comments of an SSE body."""
    parser = SseParser()
    events = [e.data for e in parser.feed(body) + parser.close()]
    comments = [line[2:] for line in body.decode().split("\n") if line.startswith(": ")]
    return [e if e == "[DONE]" else json.loads(e) for e in events], comments


def streamed_text(events: list[Any]) -> str:
    out = []
    for event in events:
        if isinstance(event, dict):
            for choice in event.get("choices", []):
                out.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
    return "".join(out)


async def test_chat_answer_with_a_verifiable_receipt(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    async with running(gateway) as client:
        request = json.dumps(chat()).encode()
        response = await client.post("/v1/chat/completions", content=request)
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc["choices"][0]["message"]["content"] == fake.reply
        assert doc["model"] == "tiny-gateway"  # the upstream's own id is not shown
        assert fake.requests[-1]["model"] == "tiny-upstream"
        claims = claims_of(gateway, response.headers["x-modelseal-receipt"])
    status = gateway.identity.status
    assert claims["model"] == {"id": "tiny-gateway", "root": status.root, "serial": status.serial}
    assert claims["request"] == sha(request)
    assert claims["response"] == sha(fake.reply.encode())
    assert claims["body"] == sha(response.content)
    assert claims["status"] == "ok"
    assert claims["stream"] is False
    assert claims["key"] is None
    assert {g["guard"] for g in claims["guards"]} >= {"secrets", "pii"}
    assert all(g["verdict"] == "pass" for g in claims["guards"])


async def test_text_completion_and_models(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    async with running(gateway) as client:
        response = await client.post(
            "/v1/completions", json={"model": "tiny-gateway", "prompt": "Once upon"}
        )
        assert response.status_code == 200
        assert response.json()["choices"][0]["text"] == fake.reply
        claims = claims_of(gateway, response.headers["x-modelseal-receipt"])
        assert claims["operation"] == "text_completion"
        models = (await client.get("/v1/models")).json()
        assert [m["id"] for m in models["data"]] == ["tiny-gateway"]
        seal = models["data"][0]["modelseal"]
        assert seal["verified"]
        assert seal["serial"] == gateway.identity.status.serial
        wrong = await client.post("/v1/completions", json={"model": "gpt-4", "prompt": "x"})
        assert wrong.status_code == 404
        assert wrong.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("operation", ["chat", "text_completion"])
async def test_streams_carry_the_text_and_a_final_receipt(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path, operation: str
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    fake.reply = "A streamed answer, in four-character deltas, long enough to cross windows. " * 3
    async with running(gateway) as client:
        if operation == "chat":
            response = await client.post("/v1/chat/completions", json=chat(stream=True))
        else:
            body = {"model": "tiny-gateway", "prompt": "x", "stream": True}
            response = await client.post("/v1/completions", json=body)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events, comments = stream_events(response.content)
    assert events[-1] == "[DONE]"
    assert streamed_text(events) == fake.reply
    # the gateway asked the upstream for usage but the client did not: no usage chunk
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    assert not any(isinstance(e, dict) and "usage" in e and not e["choices"] for e in events)
    receipts = [c.removeprefix("modelseal-receipt ") for c in comments]
    assert len(receipts) == 1
    claims = claims_of(gateway, receipts[0])
    assert claims["stream"] is True
    assert claims["status"] == "ok"
    assert claims["response"] == sha(fake.reply.encode())
    assert claims["body"] is None


async def test_input_secret_is_blocked_without_echoing_it(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    async with running(gateway) as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(f"my key is {AWS_KEY}, store it")
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_blocked"
    assert error["guard"] == "secrets"
    assert error["category"].startswith("secret.")
    assert "secrets" in error["message"]
    assert error["category"] in error["message"]
    assert AWS_KEY not in response.text
    assert AWS_KEY[4:] not in response.text
    assert fake.requests == []  # nothing reached the model
    claims = claims_of(gateway, response.headers["x-modelseal-receipt"])
    assert claims["status"] == "blocked"
    assert any(g["verdict"] == "block" for g in claims["guards"])


async def test_card_number_needs_a_valid_checksum(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    async with running(gateway) as client:
        blocked = await client.post("/v1/chat/completions", json=chat(f"card {CARD} please"))
        fine = await client.post("/v1/chat/completions", json=chat("order 4111 1111 1111 1112"))
    assert blocked.status_code == 400
    assert blocked.json()["error"]["category"].startswith("pii.")
    assert fine.status_code == 200


@pytest.mark.parametrize("mode", ["buffer", "stream"])
async def test_secret_split_across_chunks_is_caught(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path, mode: str
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path, {"guards": {"mode": mode}})
    fake.reply = "Sure. Here is the key you asked for: " + AWS_KEY + " and that is all."
    fake.chunk_size = 3  # the key is spread over six deltas
    async with running(gateway) as client:
        response = await client.post("/v1/chat/completions", json=chat(stream=True))
    events, comments = stream_events(response.content)
    assert events[-1] == "[DONE]"
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1
    assert errors[0]["error"]["code"] == "content_blocked"
    assert errors[0]["error"]["guard"] == "secrets"
    text = streamed_text(events)
    assert "that is all" not in text  # the stream was cut at the secret
    if mode == "buffer":  # nothing of the secret left the gateway
        assert "AKIA" not in text
        assert AWS_KEY not in response.text
    claims = claims_of(gateway, comments[-1].removeprefix("modelseal-receipt "))
    assert claims["status"] == "blocked"
    assert claims["response"] == sha(text.encode())


async def test_whole_answer_with_a_secret_is_blocked(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    fake.reply = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----"
    async with running(gateway) as client:
        response = await client.post("/v1/chat/completions", json=chat())
    assert response.status_code == 400
    assert response.json()["error"]["stage"] == "output"
    assert "MIIE" not in response.text


async def test_upstream_errors_are_clean(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    async with running(gateway) as client:
        fake.status = 500
        failed = await client.post("/v1/chat/completions", json=chat())
        assert failed.status_code == 502
        assert failed.json()["error"]["code"] == "upstream_error"
        fake.status, fake.error_body = (
            400,
            json.dumps(
                {"error": {"message": "context too long", "type": "invalid_request_error"}}
            ).encode(),
        )
        refused = await client.post("/v1/chat/completions", json=chat())
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "context too long"
        # (timeouts need real sockets: see test_openai_sdk.py)


async def test_unreachable_upstream_refuses_to_start(sealed_module: Sealed, tmp_path: Path) -> None:
    gateway = make_gateway(sealed_module, None, tmp_path, upstream_url="http://127.0.0.1:9")
    with pytest.raises(ModelRefused, match="upstream"):
        await gateway_start(gateway)
    await gateway_stop(gateway)


async def test_keys_limits_and_policy(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    config = {
        "auth": {
            "admin_token_hash": hash_key(ADMIN),
            "keys": [
                {
                    "id": "alice",
                    "hash": hash_key(ALICE),
                    "requests_per_minute": 2,
                    "policy": {"max_tokens": 64, "logit_bias": "refuse", "logprobs": "strip"},
                },
                {"id": "bob", "hash": hash_key(BOB)},
            ],
        }
    }
    gateway = make_gateway(sealed_module, fake, tmp_path, config)
    alice = {"authorization": f"Bearer {ALICE}"}
    async with running(gateway) as client:
        missing = await client.post("/v1/chat/completions", json=chat())
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        wrong = await client.post(
            "/v1/chat/completions", json=chat(), headers={"authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        refused = await client.post(
            "/v1/chat/completions", json=chat(logit_bias={"42": 100}), headers=alice
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "logit_bias"
        first = await client.post(
            "/v1/chat/completions", json=chat(max_tokens=4096, logprobs=True), headers=alice
        )
        assert first.status_code == 200
        assert fake.requests[-1]["max_tokens"] == 64
        assert "logprobs" not in fake.requests[-1]
        assert claims_of(gateway, first.headers["x-modelseal-receipt"])["key"] == "alice"
        second = await client.post("/v1/chat/completions", json=chat(), headers=alice)
        assert second.status_code == 200
        third = await client.post("/v1/chat/completions", json=chat(), headers=alice)
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(third.headers["retry-after"]) >= 1
        other = await client.post(
            "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {BOB}"}
        )
        assert other.status_code == 200  # limits are per key
        # admin endpoints need the admin token
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/admin/status", headers=alice)).status_code == 401
        status = await client.get("/admin/status", headers={"authorization": f"Bearer {ADMIN}"})
        assert status.status_code == 200
        assert status.json()["identity"]["serving"] is True
        metrics = await client.get("/metrics", params={"token": ADMIN})
    assert metrics.status_code == 200
    text = metrics.text
    assert "gen_ai_client_operation_duration_seconds_bucket" in text
    assert "gen_ai_client_token_usage" in text
    assert 'modelseal_ratelimit_rejections_total{key="alice",limit="requests"} 1' in text


async def test_tampered_release_refuses_to_start(
    sealed: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    (sealed.release / "config.json").write_text('{"architectures": ["Evil"]}')
    gateway = make_gateway(sealed, fake, tmp_path)
    with pytest.raises(ModelRefused, match=r"config\.json"):
        await gateway_start(gateway)
    await gateway_stop(gateway)


async def test_open_checks_serve_but_report(
    sealed: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    (sealed.release / "config.json").write_text('{"architectures": ["Evil"]}')
    gateway = make_gateway(sealed, fake, tmp_path, {"checks": {"seal": "open"}})
    async with running(gateway) as client:
        assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
        status = (await client.get("/admin/status")).json()["identity"]
    seal = next(c for c in status["checks"] if c["check"] == "seal")
    assert not seal["ok"]
    assert seal["mode"] == "open"
    assert "config.json" in seal["reason"]


async def test_revoked_seal_stops_serving_at_the_next_check(
    sealed: Sealed, fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelseal.ca.keys

    monkeypatch.setattr(modelseal.ca.keys, "KDF_ROUNDS", 1000)
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "gateway test passphrase")
    crl = tmp_path / "revoked.crl"
    assert sealed.cli("crl", "-o", crl, "--home", sealed.home) == 0
    gateway = make_gateway(sealed, fake, tmp_path, {"checks": {"crl": str(crl)}})
    async with running(gateway) as client:
        assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        serial = gateway.identity.status.serial
        assert (
            sealed.cli("revoke", serial, "--reason", "key-compromise", "--home", sealed.home) == 0
        )
        assert sealed.cli("crl", "-o", crl, "--home", sealed.home) == 0
        recheck = await client.post("/admin/recheck")
        assert recheck.status_code == 503
        refused = await client.post("/v1/chat/completions", json=chat())
        assert refused.status_code == 503
        error = refused.json()["error"]
        assert error["code"] == "model_not_verified"
        assert "revok" in error["message"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "revocation" in ready.json()["reason"]
        assert (await client.get("/healthz")).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert 'modelseal_seal_valid{model="tiny-gateway"' in metrics
    assert next(
        line for line in metrics.splitlines() if line.startswith("modelseal_seal_valid{")
    ).endswith(" 0")


async def test_upstream_serving_another_model_is_refused(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path, {"model": {"upstream_id": "other"}})
    with pytest.raises(ModelRefused, match=r"does not serve 'other'"):
        await gateway_start(gateway)
    await gateway_stop(gateway)


async def test_upstream_model_file_must_be_a_sealed_file(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    sealed_file = sealed_module.release / "model.safetensors"
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(sealed_file.read_bytes())
    fake.models_payload = {"object": "list", "data": [{"id": str(copy), "object": "model"}]}
    gateway = make_gateway(sealed_module, fake, tmp_path, {"model": {"upstream_id": str(copy)}})
    async with running(gateway):
        upstream = next(c for c in gateway.identity.status.checks if c.name == "upstream")
        assert upstream.ok, upstream.reason  # the same bytes elsewhere are the same model
    other = tmp_path / "other.safetensors"
    data = bytearray(sealed_file.read_bytes())
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    fake.models_payload = {"object": "list", "data": [{"id": str(other), "object": "model"}]}
    gateway = make_gateway(sealed_module, fake, tmp_path / "2", {"model": {"upstream_id": None}})
    with pytest.raises(ModelRefused, match="differs from every sealed file"):
        await gateway_start(gateway)
    await gateway_stop(gateway)


async def test_audit_log_is_chained_and_keeps_prompts_out(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    async with running(gateway) as client:
        await client.post("/v1/chat/completions", json=chat("tell me a story"))
        await client.post("/v1/chat/completions", json=chat(f"key {AWS_KEY}"))
    check = verify_audit(tmp_path / "audit.db")
    assert check.ok
    assert check.entries == 2
    import sqlite3

    rows = sqlite3.connect(tmp_path / "audit.db").execute("SELECT event FROM audit").fetchall()
    text = " ".join(r[0] for r in rows)
    assert "tell me a story" not in text
    assert AWS_KEY not in text
    events = [json.loads(r[0]) for r in rows]
    assert [e["status"] for e in events] == ["ok", "blocked"]
    assert events[1]["blocked_by"]["guard"] == "secrets"


async def test_bad_requests_get_openai_errors(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    async with running(gateway) as client:
        not_json = await client.post("/v1/chat/completions", content=b"{nope")
        assert not_json.status_code == 400
        no_messages = await client.post("/v1/chat/completions", json={"model": "tiny-gateway"})
        assert no_messages.status_code == 400
        assert no_messages.json()["error"]["param"] == "messages"
        for response in (not_json, no_messages):
            assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
    assert fake.requests == []


async def test_every_choice_of_a_stream_is_guarded(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path)
    fake.reply = "two choices, one stream, checked separately " * 2
    async with running(gateway) as client:
        response = await client.post("/v1/chat/completions", json=chat(stream=True, n=2))
    events, comments = stream_events(response.content)
    texts: dict[int, str] = {0: "", 1: ""}
    for event in events:
        if isinstance(event, dict):
            for choice in event["choices"]:
                texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: fake.reply, 1: fake.reply}
    claims = claims_of(gateway, comments[-1].removeprefix("modelseal-receipt "))
    assert claims["response"] == sha((fake.reply * 2).encode())


async def test_scheduled_recheck_stops_serving_a_tampered_release(
    sealed: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    import anyio

    gateway = make_gateway(sealed, fake, tmp_path, {"checks": {"interval_s": 1}})
    async with running(gateway) as client:
        assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
        (sealed.release / "model.safetensors").write_bytes(b"not the sealed weights")
        with anyio.fail_after(15):
            while gateway.identity.status.serving:
                await anyio.sleep(0.1)
        refused = await client.post("/v1/chat/completions", json=chat())
    assert refused.status_code == 503
    assert "model.safetensors" in refused.json()["error"]["message"]


async def test_token_limits_charge_the_real_usage(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    config = {"auth": {"keys": [{"id": "t", "hash": hash_key(ALICE), "tokens_per_minute": 30}]}}
    gateway = make_gateway(sealed_module, fake, tmp_path, config)
    headers = {"authorization": f"Bearer {ALICE}"}
    async with running(gateway) as client:
        codes = []
        for _ in range(4):  # each answer costs 7 prompt + 5 completion tokens (the fake's usage)
            response = await client.post("/v1/chat/completions", json=chat(), headers=headers)
            codes.append(response.status_code)
    assert codes[:2] == [200, 200]
    assert 429 in codes[2:]
    assert gateway.metrics.snapshot()["rate_limited"]["total"] >= 1


async def test_redis_down_refuses_instead_of_serving_uncounted(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    config = {"auth": {"keys": [{"id": "r", "hash": hash_key(ALICE), "requests_per_minute": 5}]}}
    gateway = make_gateway(sealed_module, fake, tmp_path, config, redis_url="redis://127.0.0.1:1/0")
    async with running(gateway) as client:
        response = await client.post(
            "/v1/chat/completions", json=chat(), headers={"authorization": f"Bearer {ALICE}"}
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "limits_unavailable"
    assert fake.requests == []


async def test_receipt_cli_recomputes_the_digests(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    from modelseal._cli.main import main

    gateway = make_gateway(sealed_module, fake, tmp_path)
    request = json.dumps(chat("a question")).encode()
    async with running(gateway) as client:
        response = await client.post("/v1/chat/completions", content=request)
        key = (await client.get("/v1/receipts/key")).content
    files = {
        "receipt": response.headers["x-modelseal-receipt"].encode(),
        "key.pem": key,
        "request.json": request,
        "answer.txt": fake.reply.encode(),
        "other.txt": b"a different answer",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    base = ["receipt", "verify", str(tmp_path / "receipt"), "--key", str(tmp_path / "key.pem")]
    good = [*base, "--request", str(tmp_path / "request.json")]
    assert main([*good, "--response-text", str(tmp_path / "answer.txt")]) == 0
    assert main([*good, "--response-text", str(tmp_path / "other.txt")]) == 1
    token = files["receipt"].decode()
    head, payload, signature = token.split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    (tmp_path / "receipt").write_text(f"{head}.{flipped}.{signature}")
    assert main(base) == 1


def test_cli_refuses_to_serve_a_tampered_release(
    sealed: Sealed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelseal._cli.main import main

    (sealed.release / "config.json").write_text("{}")
    code = main(
        [
            "gateway",
            "--upstream", "http://127.0.0.1:9",
            "--release", str(sealed.release),
            "--bundle", str(sealed.bundle),
            "--home", str(sealed.home),
            "--port", "0",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "refusing to serve" in err
    assert "config.json" in err


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from modelseal._cli.main import main

    assert main(["gateway"]) == 2
    assert "needs --upstream URL" in capsys.readouterr().err
    assert main(["gateway", "--upstream", "http://x", "--launch", "llama-cpp", "--release", "r",
                 "--bundle", "b"]) == 2  # fmt: skip
    assert "not both" in capsys.readouterr().err


async def test_upstream_must_serve_the_expected_model_id(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    # without model.upstream_id the upstream must list the gateway's own model id
    gateway = make_gateway(sealed_module, fake, tmp_path, {"model": {"upstream_id": None}})
    with pytest.raises(ModelRefused, match=r"does not serve 'tiny-gateway'.*'tiny-upstream'"):
        await gateway_start(gateway)
    await gateway_stop(gateway)
