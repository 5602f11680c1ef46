"""The real gateway's dashboard in headless Chromium while traffic flows through it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelseal.gateway.keys import hash_key
from tests.gateway.conftest import Sealed
from tests.gateway.fakes import FakeUpstream
from tests.gateway.test_openai_sdk import stack

ADMIN = "dashboard-admin-token"
KEY = "msk-dashboard-key-0001"
AWS_KEY = "AKIA" + "Z7QX3J5KPLM2VW4R"


def number(page: Any, selector: str) -> float:
    text = page.text_content(selector) or ""
    digits = "".join(c for c in text if c.isdigit() or c == ".")
    return float(digits) if digits else 0.0


def test_dashboard_shows_live_gateway_traffic(
    browser: Any,
    sealed_module: Sealed,
    fake: FakeUpstream,
    tmp_path: Path,
) -> None:
    config = {
        "auth": {
            "admin_token_hash": hash_key(ADMIN),
            "keys": [{"id": "dash", "hash": hash_key(KEY), "requests_per_minute": 100000}],
        }
    }
    with stack(sealed_module, fake, tmp_path, config) as (url, gateway):
        # without the token the page is refused
        assert httpx.get(f"{url}/dashboard").status_code == 401
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/dashboard?token={ADMIN}")
        page.wait_for_function(
            "() => document.querySelector('#seal-serial').textContent.length > 3"
        )
        serial = gateway.identity.status.serial  # type: ignore[attr-defined]
        assert serial.startswith(page.text_content("#seal-serial").strip()[:8])
        before = number(page, "#requests-total")
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEY}"}) as c:
                i = 0
                while not stop.is_set():
                    text = f"leak {AWS_KEY}" if i % 5 == 0 else f"hello {i}"
                    c.post(
                        "/v1/chat/completions",
                        json={
                            "model": "tiny-gateway",
                            "messages": [{"role": "user", "content": text}],
                        },
                    )
                    i += 1
                    time.sleep(0.01)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        try:
            page.wait_for_function(
                f"() => Number(document.querySelector('#requests-total').textContent"
                f".replace(/[^0-9.]/g, '')) > {before + 20}",
                timeout=20000,
            )
            first = number(page, "#requests-total")
            page.wait_for_function(
                f"() => Number(document.querySelector('#requests-total').textContent"
                f".replace(/[^0-9.]/g, '')) > {first + 10}",
                timeout=20000,
            )
            assert number(page, "#rps") > 0
            assert (page.text_content("#p50") or "-").strip() not in ("", "-")
            page.wait_for_function(
                "() => document.querySelector('#blocks').textContent.includes('secret.')",
                timeout=20000,
            )
            assert "secrets" in (page.text_content("#blocks") or "")
            assert "dash" in (page.text_content("#keys") or "")
        finally:
            stop.set()
            thread.join(10)
        assert not errors, errors
        page.close()


@pytest.mark.parametrize("path", ["/dashboard/events", "/metrics", "/admin/status"])
def test_admin_pages_need_the_token(
    sealed_module: Sealed, fake: FakeUpstream, tmp_path: Path, path: str
) -> None:
    config = {"auth": {"admin_token_hash": hash_key(ADMIN)}}
    with stack(sealed_module, fake, tmp_path, config) as (url, _):
        assert httpx.get(f"{url}{path}").status_code == 401
        assert httpx.get(f"{url}{path}", params={"token": "wrong"}).status_code == 401
        if path != "/dashboard/events":
            assert httpx.get(f"{url}{path}", params={"token": ADMIN}).status_code == 200
