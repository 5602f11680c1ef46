"""The extraction defence wired into the gateway: each action on the real request path, the
client address, the metrics, the dashboard feed and page, and the admin endpoints."""

from __future__ import annotations

import contextlib
import json
import random
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelseal.gateway.app import create_app, gateway_start, gateway_stop
from modelseal.gateway.dashboard import dashboard_html
from modelseal.gateway.keys import hash_key
from modelseal.gateway.metrics import MAX_ADDRESSES, OTHER, Metrics
from modelseal.gateway.service import Gateway
from tests.gateway.conftest import Sealed, make_gateway
from tests.gateway.fakes import FakeUpstream

pytestmark = pytest.mark.anyio

ALICE, ADMIN = "msk-alice-extraction-01", "admin-extraction-token"
ALLOW_ALL = {"logprobs": "allow", "top_logprobs": "allow", "logit_bias": "allow"}
ONLY = {"alert_at": None, "strip_logprobs_at": None, "tighten_at": None, "refuse_at": None}


def config(extraction: dict[str, Any], **key: Any) -> dict[str, Any]:
    return {
        "auth": {
            "admin_token_hash": hash_key(ADMIN),
            "keys": [{"id": "alice", "hash": hash_key(ALICE), "policy": ALLOW_ALL, **key}],
        },
        "guards": {"input": [], "output": []},
        "extraction": extraction,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def running(
    gateway: Gateway, client: tuple[str, int] = ("127.0.0.1", 50000)
) -> AsyncIterator[httpx.AsyncClient]:
    await gateway_start(gateway)
    app = create_app(gateway, manage_lifecycle=False)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=client), base_url="http://gateway.test"
        ) as http:
            yield http
    finally:
        await gateway_stop(gateway)


def chat(text: str = "Tell me about the weather in spring", **extra: Any) -> dict[str, Any]:
    return {"model": "tiny-gateway", "messages": [{"role": "user", "content": text}], **extra}


def audit_events(gateway: Gateway) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(gateway.audit.path)) as db:
        return [json.loads(row[0]) for row in db.execute("SELECT event FROM audit ORDER BY seq")]


ALICE_AUTH = {"authorization": f"Bearer {ALICE}"}
ADMIN_AUTH = {"authorization": f"Bearer {ADMIN}"}


async def test_strip_removes_the_fields_from_what_the_upstream_receives(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(
        sealed_module, fake, tmp_path, config({**ONLY, "strip_logprobs_at": 0.0})
    )
    probing = chat(logprobs=True, top_logprobs=5, logit_bias={"50256": -100})
    async with running(gateway) as http:
        first = await http.post("/v1/chat/completions", json=probing, headers=ALICE_AUTH)
        assert first.status_code == 200
        sent = fake.requests[-1]
        assert sent["logprobs"] is True  # the key's policy allows them ...
        assert sent["top_logprobs"] == 5
        assert sent["logit_bias"] == {"50256": -100}
        second = await http.post("/v1/chat/completions", json=probing, headers=ALICE_AUTH)
        assert second.status_code == 200
        sent = fake.requests[-1]
        for name in ("logprobs", "top_logprobs", "logit_bias"):  # ... until the action is on
            assert name not in sent, name
        assert sent["messages"] == probing["messages"]
        plain = await http.post("/v1/chat/completions", json=chat(), headers=ALICE_AUTH)
        assert plain.status_code == 200
    requests = [e for e in audit_events(gateway) if e.get("operation") == "chat"]
    assert requests[0]["policy"] == []
    assert requests[1]["policy"] == [
        "logprobs: stripped (extraction risk)",
        "top_logprobs: stripped (extraction risk)",
        "logit_bias: stripped (extraction risk)",
    ]
    assert requests[2]["policy"] == []
    counted = gateway.metrics.extraction_actions
    assert counted.get(("strip_logprobs",)) == 1  # the plain request had nothing to strip


async def test_refuse_answers_an_openai_shaped_429(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path, config({**ONLY, "refuse_at": 0.0}))
    async with running(gateway) as http:
        first = await http.post("/v1/chat/completions", json=chat(), headers=ALICE_AUTH)
        assert first.status_code == 200
        upstream_calls = len(fake.requests)
        refused = await http.post("/v1/chat/completions", json=chat(), headers=ALICE_AUTH)
        streamed = await http.post(
            "/v1/chat/completions", json=chat(stream=True), headers=ALICE_AUTH
        )
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "extraction_suspected"
    assert error["type"] == "rate_limit_error"
    assert "extraction" in error["message"]
    assert "x-modelseal-receipt" in refused.headers
    assert streamed.status_code == 429  # streams too, before anything is sent
    assert len(fake.requests) == upstream_calls  # the upstream never saw them
    events = [e for e in audit_events(gateway) if e.get("operation") == "chat"]
    assert [e["error"] for e in events] == [None, "extraction_suspected", "extraction_suspected"]
    assert gateway.metrics.extraction_actions.get(("refuse",)) == 2


async def test_tighten_lowers_the_keys_limit(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    async def served(extraction: dict[str, Any], path: Path) -> list[int]:
        path.mkdir()
        gateway = make_gateway(
            sealed_module, fake, path, config(extraction, requests_per_minute=60)
        )
        async with running(gateway) as http:
            codes = []
            for _ in range(8):
                reply = await http.post("/v1/chat/completions", json=chat(), headers=ALICE_AUTH)
                codes.append(reply.status_code)
                if reply.status_code == 429:
                    assert "tightened: extraction risk" in reply.json()["error"]["message"]
        if extraction.get("enabled", True):
            assert gateway.metrics.extraction_actions.get(("tighten",)) >= 4
        return codes

    tightened = {**ONLY, "tighten_at": 0.0, "tighten_factor": 0.05}  # 60 -> 3 a minute
    assert await served({"enabled": False}, tmp_path / "off") == [200] * 8
    codes = await served(tightened, tmp_path / "on")
    # the first request scores the key; then 3 a minute, the rest are limited
    assert codes == [200, 200, 200, 200, 429, 429, 429, 429]


async def test_an_anonymous_client_is_tightened_on_its_own_bucket(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    extraction = {**ONLY, "tighten_at": 0.0, "tighten_factor": 0.05}
    extraction["tighten_requests_per_minute"] = 40  # no limit of its own: 40 * 0.05 = 2
    gateway = make_gateway(
        sealed_module, fake, tmp_path, {"extraction": extraction, "guards": {"input": []}}
    )
    assert gateway.allow_anonymous
    await gateway_start(gateway)
    app = create_app(gateway, manage_lifecycle=False)

    def client(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(host, 1234))
        return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")

    try:
        async with client("192.0.2.1") as one, client("192.0.2.2") as two:
            codes_one = [
                (await one.post("/v1/chat/completions", json=chat())).status_code for _ in range(4)
            ]
            codes_two = [
                (await two.post("/v1/chat/completions", json=chat())).status_code for _ in range(3)
            ]
    finally:
        await gateway_stop(gateway)
    assert codes_one == [200, 200, 200, 429]
    assert codes_two == [200, 200, 200]  # not the first client's bucket


async def test_alerts_are_audited_once_per_start_and_counted(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path, config({**ONLY, "alert_at": 0.0}))
    async with running(gateway, client=("198.51.100.7", 4000)) as http:
        for _ in range(3):
            reply = await http.post("/v1/chat/completions", json=chat(), headers=ALICE_AUTH)
            assert reply.status_code == 200  # an alert changes nothing for the client
    alerts = [e for e in audit_events(gateway) if e.get("event") == "extraction"]
    assert sorted((e["subject"], e["action"], e["state"]) for e in alerts) == [
        ("addr:198.51.100.7", "alert", "on"),
        ("key:alice", "alert", "on"),
    ]
    assert set(alerts[0]["features"]) >= {"volume", "sweep", "logprobs", "regularity"}
    assert gateway.metrics.extraction_actions.get(("alert",)) == 2


@pytest.mark.parametrize(("proxies", "expected"), [(0, "addr:127.0.0.1"), (1, "addr:203.0.113.50")])
async def test_forwarded_for_counts_only_when_trusted(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path, proxies: int, expected: str
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path, config({"trusted_proxies": proxies}))
    headers = {**ALICE_AUTH, "x-forwarded-for": "6.6.6.6, 203.0.113.50"}
    async with running(gateway) as http:
        assert (await http.post("/v1/chat/completions", json=chat(), headers=headers)).is_success
    assert gateway.extraction is not None
    assert gateway.extraction.subject(expected) is not None
    assert gateway.extraction.subject("addr:6.6.6.6") is None  # the client's own claim
    assert len(gateway.extraction) == 2  # the key and one address


async def campaign(http: httpx.AsyncClient, clock: Clock, n: int) -> list[int]:
    rng = random.Random(11)
    words = [f"w{i}" for i in range(400)]
    codes = []
    for _ in range(n):
        clock.now += 6.0
        text = " ".join(rng.choice(words) for _ in range(12)) + " Think step by step."
        body = chat(text, logprobs=True, max_tokens=4096)
        codes.append(
            (await http.post("/v1/chat/completions", json=body, headers=ALICE_AUTH)).status_code
        )
    return codes


async def test_metrics_dashboard_and_admin_show_the_riskiest_subjects(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    from tests.gateway.test_metrics import families, samples

    gateway = make_gateway(sealed_module, fake, tmp_path, config({}))
    assert gateway.extraction is not None
    clock = Clock()
    gateway.extraction.clock = clock
    async with running(gateway, client=("192.0.2.77", 1)) as http:
        codes = await campaign(http, clock, 80)
        assert codes[:20] == [200] * 20
        assert codes[-1] == 429  # refused by the end
        gateway.publish_extraction()
        assert (await http.get("/metrics")).status_code == 401
        text = (await http.get("/metrics", headers=ADMIN_AUTH)).text

        assert (await http.get("/admin/extraction")).status_code == 401
        assert (await http.get("/admin/extraction", headers=ALICE_AUTH)).status_code == 401
        report = (await http.get("/admin/extraction", headers=ADMIN_AUTH)).json()
        one = await http.get(
            "/admin/extraction", params={"subject": "key:alice"}, headers=ADMIN_AUTH
        )
        unknown = await http.get(
            "/admin/extraction", params={"subject": "key:bob"}, headers=ADMIN_AUTH
        )
        bad_limit = await http.get("/admin/extraction?limit=lots", headers=ADMIN_AUTH)
        bad_reset = await http.post("/admin/extraction/reset", json={}, headers=ADMIN_AUTH)
        reset = await http.post(
            "/admin/extraction/reset", json={"subject": "key:alice"}, headers=ADMIN_AUTH
        )
        gone = await http.get(
            "/admin/extraction", params={"subject": "key:alice"}, headers=ADMIN_AUTH
        )
        again = await http.post(
            "/admin/extraction/reset", json={"subject": "key:alice"}, headers=ADMIN_AUTH
        )

    # Prometheus: the risk gauge per subject, the action counters, the update cost
    risk = {
        (s.labels["subject_kind"], s.labels["subject"]): s.value
        for s in samples(text, "modelseal_extraction_risk")
    }
    assert risk[("key", "alice")] >= 0.85
    assert risk[("address", "192.0.2.77")] >= 0.85
    actions = {
        s.labels["action"]: s.value for s in samples(text, "modelseal_extraction_actions_total")
    }
    assert actions["alert"] == 2  # the key and the address
    assert actions["strip_logprobs"] >= 1
    assert actions["refuse"] == codes.count(429)
    assert samples(text, "modelseal_extraction_subjects")[0].value == 2
    assert samples(text, "modelseal_extraction_updates_total")[0].value == 80
    assert samples(text, "modelseal_extraction_update_seconds_total")[0].value > 0
    assert families(text)["modelseal_extraction_risk"].type == "gauge"

    # the dashboard's feed
    snapshot = gateway.metrics.snapshot()["extraction"]
    assert snapshot["subjects"] == 1  # alice was reset since: the address is left
    assert {row["subject"] for row in snapshot["top"]} == {"addr:192.0.2.77"}
    assert snapshot["top"][0]["actions"] == ["alert", "strip_logprobs", "tighten", "refuse"]
    assert snapshot["top"][0]["features"]["logprobs"] == 1.0
    assert snapshot["actions"]["refuse"] == codes.count(429)

    # the admin endpoint
    assert report["enabled"] is True
    assert report["subjects"] == 2
    assert report["settings"]["alert_at"] == 0.5
    assert {row["subject"] for row in report["top"]} == {"key:alice", "addr:192.0.2.77"}
    assert report["memory_bound_bytes"] >= report["memory_bytes"] > 0
    assert one.status_code == 200
    alice = one.json()
    assert alice["actions"] == ["alert", "strip_logprobs", "tighten", "refuse"]
    assert alice["reasons"][0] == "logprobs"
    assert alice["features"]["reasoning"]["value"] == 1.0
    assert alice["features"]["logprobs"]["weight"] == 0.45
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "subject_not_found"
    assert bad_limit.status_code == 400
    assert bad_reset.status_code == 400
    assert reset.json() == {"reset": "key:alice"}
    assert gone.status_code == 404
    assert again.status_code == 404
    resets = [e for e in audit_events(gateway) if e.get("action") == "reset"]
    assert [(e["event"], e["subject"]) for e in resets] == [("extraction", "key:alice")]


async def test_switched_off_nothing_is_scored_or_changed(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway = make_gateway(sealed_module, fake, tmp_path, config({"enabled": False}))
    assert gateway.extraction is None
    clock = Clock()
    async with running(gateway) as http:
        codes = await campaign(http, clock, 60)
        report = (await http.get("/admin/extraction", headers=ADMIN_AUTH)).json()
    assert codes == [200] * 60
    assert all(request["logprobs"] is True for request in fake.requests if "messages" in request)
    assert report == {"enabled": False, "top": []}
    assert gateway.metrics.snapshot()["extraction"]["top"] == []


def test_the_risk_gauge_respects_the_label_caps() -> None:
    metrics = Metrics()
    for batch in range(6):  # 300 distinct addresses over six refreshes, 50 at a time
        subjects = [
            {"kind": "address", "id": f"10.{batch}.0.{i}", "score": 0.5, "subject": "x"}
            for i in range(50)
        ]
        metrics.set_extraction(subjects, 50)
    labels = {labels[1] for labels in metrics.extraction_risk.values}
    assert OTHER in labels  # addresses past the cap share one series
    assert len(metrics._addresses.seen) == MAX_ADDRESSES
    metrics.set_extraction([{"kind": "key", "id": "k", "score": 0.9}] * 80, 80)
    assert len(metrics.extraction_risk.values) == 1
    assert len(metrics.snapshot()["extraction"]["top"]) == 10


# --- the dashboard page ------------------------------------------------------------------------


def test_the_page_has_the_extraction_panel() -> None:
    html = dashboard_html()
    for name in (
        "extraction",
        "extraction-subjects",
        "extraction-alerts",
        "extraction-stripped",
        "extraction-tightened",
        "extraction-refused",
    ):
        assert len(re.findall(rf'\bid="{re.escape(name)}"', html)) == 1, name
    assert 'fillTable("extraction", extraction.top || []' in html


def test_the_page_lists_the_riskiest_subjects_in_headless_chromium(
    browser: Any, tmp_path: Path
) -> None:
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, StreamingResponse

    from modelseal.gateway.dashboard import PAGE_HEADERS, dashboard_events
    from modelseal.gateway.extraction import ExtractionMonitor
    from tests.tlog.test_server import serving

    monitor = ExtractionMonitor(clock=lambda: 2000.0)
    hostile = '<img src=x onerror="window.__pwned=1">'
    for i in range(80):
        body = chat(f"What is the melting point of alloy number {i} in kelvin?")
        monitor.observe(key_id=hostile, address=None, operation="chat", body=body, at=i * 12.0)
    metrics = Metrics()
    metrics.set_extraction(monitor.top(10), len(monitor))
    metrics.observe_extraction(seconds=0.0001, applied=["refuse"], alerts=1)
    app = FastAPI()

    @app.get("/dashboard")
    def page() -> HTMLResponse:
        return HTMLResponse(dashboard_html(), headers=PAGE_HEADERS)

    @app.get("/dashboard/events")
    def events() -> StreamingResponse:
        return StreamingResponse(
            dashboard_events(metrics.snapshot, interval_s=0.1), media_type="text/event-stream"
        )

    errors: list[str] = []
    with serving(app) as base:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{base}/dashboard", wait_until="domcontentloaded")
            page.wait_for_function(
                "() => document.getElementById('extraction-subjects').textContent === '1'",
                timeout=15_000,
            )
            row = page.locator("#extraction tbody tr").nth(0).locator("td")
            assert row.nth(0).text_content() == f"key:{hostile}"
            assert float(str(row.nth(2).text_content())) >= 0.85
            assert row.nth(3).text_content() == "alert, strip_logprobs, tighten, refuse"
            assert str(row.nth(4).text_content()).startswith("sweep 1.00")
            assert page.locator("#extraction-refused").text_content() == "1"
            assert page.locator("#extraction img").count() == 0
            assert page.evaluate("() => window.__pwned") is None
        finally:
            page.close()
            context.close()
    assert not errors
