"""The live dashboard: the static page, the event stream, and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.gateway.dashboard import (
    PAGE_HEADERS,
    dashboard_events,
    dashboard_html,
    sse_frame,
)
from modelseal.gateway.metrics import Metrics

REQUIRED_IDS = [
    "rps",
    "p50",
    "p95",
    "p99",
    "tokens-in",
    "tokens-out",
    "requests-total",
    "blocks",
    "seal-serial",
    "seal-status",
    "keys",
    "seal",
    "rps-chart",
    "latency-chart",
]


# --- the page ----------------------------------------------------------------------------------


def test_page_has_the_agreed_element_ids() -> None:
    html = dashboard_html()
    for name in REQUIRED_IDS:
        assert len(re.findall(rf'\bid="{re.escape(name)}"', html)) == 1, name


def test_page_loads_nothing_from_anywhere() -> None:
    html = dashboard_html()
    lowered = html.lower()
    assert "http://" not in lowered
    assert "https://" not in lowered
    assert "//cdn" not in lowered
    assert not re.search(r"<script[^>]*\bsrc\s*=", lowered)
    # the one <link> is the empty data: favicon that stops the browser asking for /favicon.ico
    assert re.findall(r"<link\b[^>]*>", lowered) == ['<link rel="icon" href="data:,">']
    assert not re.search(r"<(img|iframe|object|embed)\b", lowered)
    assert "@import" not in lowered
    assert "url(" not in lowered
    assert "@font-face" not in lowered


def test_page_never_writes_data_as_html() -> None:
    html = dashboard_html()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in html, sink
    assert "textContent" in html


def test_page_is_ascii_and_read_once() -> None:
    html = dashboard_html()
    html.encode("ascii")
    assert dashboard_html() is html
    assert html.lstrip().lower().startswith("<!doctype html>")


def test_page_streams_from_its_own_path_and_keeps_the_query_string() -> None:
    html = dashboard_html()
    assert 'new EventSource(base + "/events" + window.location.search)' in html
    assert "connect-src 'self'" in PAGE_HEADERS["Content-Security-Policy"]


# --- the event stream --------------------------------------------------------------------------


def parse_frame(frame: bytes) -> Any:
    assert frame.startswith(b"data: ")
    assert frame.endswith(b"\n\n")
    body = frame[len(b"data: ") : -2]
    assert b"\n" not in body
    assert b"\r" not in body
    return json.loads(body)


def test_events_yield_one_json_frame_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    calls = iter(range(100))

    def snapshot() -> dict[str, Any]:
        return {"n": next(calls), "text": "line\nbreak \u2028 </script>"}

    async def take(count: int) -> list[bytes]:
        frames: list[bytes] = []
        stream = dashboard_events(snapshot, interval_s=0.25)
        assert isinstance(stream, AsyncIterator)
        async for frame in stream:
            frames.append(frame)
            if len(frames) == count:
                break
        await stream.aclose()
        return frames

    frames = asyncio.run(take(3))
    assert [parse_frame(f)["n"] for f in frames] == [0, 1, 2]
    assert parse_frame(frames[0])["text"] == "line\nbreak \u2028 </script>"
    assert sleeps == [0.25, 0.25]


def test_events_carry_a_real_metrics_snapshot() -> None:
    metrics = Metrics()
    metrics.observe_request(
        model="m",
        operation="chat",
        status="ok",
        duration_s=0.01,
        ttft_s=None,
        input_tokens=1,
        output_tokens=1,
        key=None,
        blocked_by=None,
    )

    async def first() -> bytes:
        stream = dashboard_events(metrics.snapshot, interval_s=0.001)
        frame = await anext(stream)
        await stream.aclose()
        return frame

    data = parse_frame(asyncio.run(first()))
    assert data["requests"]["total"] == 1
    assert data["latency"]["p50"] == 0.01


def test_frames_turn_non_finite_numbers_into_null() -> None:
    assert parse_frame(sse_frame({"a": float("nan"), "b": [float("inf"), 1.5]})) == {
        "a": None,
        "b": [None, 1.5],
    }
    assert parse_frame(sse_frame({"when": Path("x")})) == {"when": "x"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_survives_one_frame(value: Any) -> None:
    assert parse_frame(sse_frame(value)) == value


# --- in headless Chromium ----------------------------------------------------------------------

HOSTILE_KEY = '<img src=x onerror="window.__pwned=1">"&amp;'


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def set(self, now: float) -> None:
        with self.lock:
            self.now = now


def dashboard_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()

    @app.get("/dashboard")
    def page() -> HTMLResponse:
        return HTMLResponse(dashboard_html(), headers=PAGE_HEADERS)

    @app.get("/dashboard/events")
    def events() -> StreamingResponse:
        return StreamingResponse(
            dashboard_events(metrics.snapshot, interval_s=0.1), media_type="text/event-stream"
        )

    return app


def feed(metrics: Metrics, count: int, duration_s: float, **extra: Any) -> None:
    args: dict[str, Any] = {
        "model": "gemma-3-270m",
        "operation": "chat",
        "status": "ok",
        "ttft_s": duration_s / 4,
        "input_tokens": 12,
        "output_tokens": 30,
        "key": "team-a",
        "blocked_by": None,
    }
    args.update(extra)
    for _ in range(count):
        metrics.observe_request(duration_s=duration_s, **args)


def text_of(page: Any, selector: str) -> str:
    return str(page.text_content(selector))


def wait_text(page: Any, element_id: str, expected: str) -> None:
    page.wait_for_function(
        "([id, want]) => document.getElementById(id).textContent === want",
        arg=[element_id, expected],
        timeout=15_000,
    )


def test_dashboard_updates_live_in_headless_chromium(browser: Any, tmp_path: Path) -> None:
    from tests.tlog.test_server import serving

    clock = Clock(1000.0)
    metrics = Metrics(clock)
    metrics.set_seal(
        serial="5eal-0001",
        model="gemma-3-270m",
        root="sha256:" + "3f" * 32,
        valid=True,
        not_after="2031-06-30T00:00:00Z",
        checks=[
            {"name": "bundle", "ok": True, "detail": "signature, chain, inclusion proof"},
            {"name": "release", "ok": True, "detail": "412 files match the manifest"},
            {"check": "upstream", "ok": True, "reason": "model id gemma-3-270m"},
            {"check": "revocation", "ok": True, "skipped": True, "reason": "no list"},
        ],
    )
    metrics.set_key_levels(
        [
            {"key": "team-b", "limit": "requests", "used_fraction": 0.42},
            {"key": HOSTILE_KEY, "limit": "tokens", "used_fraction": 0.93},
        ]
    )
    requests: list[str] = []
    errors: list[str] = []
    with serving(dashboard_app(metrics)) as base:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(f"{base}/dashboard?token=s3cret", wait_until="domcontentloaded")
            wait_text(page, "requests-total", "0")
            wait_text(page, "conn", "live")
            assert text_of(page, "#p50") == "-"

            # seal and keys, with a hostile key id that must show as plain text
            assert text_of(page, "#seal-serial") == "5eal-0001"
            assert text_of(page, "#seal-status") == "valid"
            assert "ok" in str(page.get_attribute("#seal", "class"))
            assert page.locator("#seal-checks .mark").all_text_contents() == ["ok", "ok", "ok", "-"]
            assert page.locator("#seal-checks .name").nth(2).text_content() == "upstream"
            assert page.locator("#seal-checks .detail").nth(3).text_content() == "no list"
            rows = page.locator("#keys tbody tr")
            assert rows.count() == 2
            assert rows.nth(0).locator("td").nth(0).text_content() == HOSTILE_KEY
            assert rows.nth(0).locator("td").nth(3).text_content() == "93%"
            assert rows.nth(0).locator(".bar").get_attribute("aria-valuenow") == "93"
            assert rows.nth(1).locator("td").nth(0).text_content() == "team-b"
            assert page.locator("#keys img").count() == 0
            assert page.evaluate("() => window.__pwned") is None

            # traffic flows: 40 requests of 20 ms in the first 2 s
            clock.set(1000.5)
            feed(metrics, 40, 0.020)
            clock.set(1002.0)
            wait_text(page, "requests-total", "40")
            assert text_of(page, "#rps") == "20.0"
            assert text_of(page, "#p50") == "20.0 ms"
            assert text_of(page, "#tokens-in") == "480"
            assert text_of(page, "#tokens-out") == "1,200"

            # more, slower traffic and one blocked request: every number moves
            clock.set(1002.5)
            feed(metrics, 59, 0.080)
            feed(
                metrics,
                1,
                0.080,
                status="blocked",
                blocked_by=("secrets", "secret.aws_access_key"),
                output_tokens=0,
            )
            clock.set(1004.0)
            wait_text(page, "requests-total", "100")
            assert text_of(page, "#rps") == "25.0"
            assert text_of(page, "#p50") == "80.0 ms"
            assert text_of(page, "#p99") == "80.0 ms"
            assert text_of(page, "#blocked-total") == "1"
            block = page.locator("#blocks tbody tr").nth(0).locator("td")
            assert block.nth(0).text_content() == "secrets"
            assert block.nth(1).text_content() == "secret.aws_access_key"

            # the sparkline drew something
            clock.set(1006.0)
            wait_text(page, "requests-total", "100")
            page.wait_for_timeout(300)
            inked = page.evaluate(
                """() => {
                  const c = document.getElementById('rps-chart');
                  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0;
                  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                  return n;
                }"""
            )
            assert inked > 100

            # the seal fails: the card turns red
            metrics.set_seal(
                serial="5eal-0001",
                model="gemma-3-270m",
                root="sha256:" + "3f" * 32,
                valid=False,
                not_after="2031-06-30T00:00:00Z",
                checks=[{"name": "release", "ok": False, "detail": "1 file modified"}],
            )
            wait_text(page, "seal-status", "invalid")
            assert "bad" in str(page.get_attribute("#seal", "class"))
            border = page.evaluate(
                "() => getComputedStyle(document.getElementById('seal')).borderLeftColor"
            )
            assert border == "rgb(248, 113, 113)"
            assert text_of(page, "#seal-checks") == "xrelease1 file modified"
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            page.close()
            context.close()

    assert not errors
    assert requests
    assert all(url.startswith(base + "/") for url in requests)
    assert f"{base}/dashboard/events?token=s3cret" in requests
