"""The live dashboard: one static HTML page and a stream of server-sent snapshots.

The page (``static/dashboard.html``) has no build step and no external assets: its CSS and
JavaScript are inline, it loads nothing from other origins, and it writes every value from the
data with ``textContent``. It opens an ``EventSource`` on ``<its own path>/events`` with its own
query string (so ``/dashboard?token=...`` streams from ``/dashboard/events?token=...``) and
redraws on every frame that :func:`dashboard_events` sends.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import AsyncGenerator, Callable
from importlib import resources
from typing import Any

#: Suggested response headers for the events stream (no caching, no proxy buffering).
EVENT_HEADERS: dict[str, str] = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
#: Suggested headers for the page: nothing may load from anywhere but the page itself.
PAGE_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@functools.cache
def dashboard_html() -> str:
    """The dashboard page (read once from the package's ``static/dashboard.html``)."""
    page = resources.files("modelseal.gateway").joinpath("static", "dashboard.html")
    return page.read_text(encoding="utf-8")


def _json_safe(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {str(key): _json_safe(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_json_safe(value) for value in data]
    return data


def sse_frame(data: Any) -> bytes:
    """One server-sent event frame, ``data: <compact json>\\n\\n``.

    The JSON is strict (browsers' ``JSON.parse`` rejects ``NaN``): non-finite numbers become
    ``null``, other values JSON cannot hold are written with ``str``. It never spans lines.
    """
    try:
        text = json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(_json_safe(data), separators=(",", ":"), default=str, allow_nan=False)
    return b"data: " + text.encode("utf-8") + b"\n\n"


async def dashboard_events(
    snapshot: Callable[[], dict[str, Any]], interval_s: float = 1.0
) -> AsyncGenerator[bytes, None]:
    """Server-sent event frames of ``snapshot()``, one now and one every ``interval_s``, forever.

    The app wraps it in a ``StreamingResponse`` with media type ``text/event-stream``; the
    server cancels it when the client goes away.
    """
    while True:
        yield sse_frame(snapshot())
        await asyncio.sleep(interval_s)
