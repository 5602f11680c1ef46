"""The upstream model server: one pooled HTTP client, errors mapped to 502 and 504.

The transport is injectable (``httpx.ASGITransport`` in tests), as in httpx itself. Every failure
becomes an :class:`~modelseal.errors.UpstreamError` carrying the status the gateway answers with:
504 when the upstream did not answer in time, 502 for everything else (refused connection, reset,
malformed answer). The gateway never hangs on a dead upstream: every request has a connect, read,
write and pool timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from modelseal.errors import UpstreamError

_FORWARDED_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class Upstream:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 512,
        transport: httpx.AsyncBaseTransport | None = None,
        api_key: str | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        self.base_url = base
        headers = dict(_FORWARDED_HEADERS)
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            base_url=base,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def get_json(self, path: str, *, timeout_s: float | None = None) -> Any:
        """GET ``path`` and parse the JSON answer (identity checks, /v1/models)."""
        try:
            kwargs: dict[str, Any] = {}
            if timeout_s is not None:
                kwargs["timeout"] = timeout_s
            response = await self._client.get(path, **kwargs)
        except httpx.TimeoutException:
            raise UpstreamError(
                f"the upstream did not answer GET {path} in time", status=504
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream failed on GET {path}: {_describe(exc)}") from None
        if response.status_code != 200:
            raise UpstreamError(f"the upstream answered GET {path} with {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"the upstream's answer to GET {path} is not JSON") from None

    async def post(self, path: str, body: bytes) -> httpx.Response:
        """POST and read the whole answer (any status: the caller decides what to forward)."""
        try:
            return await self._client.post(path, content=body)
        except httpx.TimeoutException:
            raise UpstreamError("the upstream model server timed out", status=504) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream model server failed: {_describe(exc)}") from None

    async def open_stream(self, path: str, body: bytes) -> httpx.Response:
        """POST and return once the headers are in; the caller reads and closes the body."""
        request = self._client.build_request("POST", path, content=body)
        try:
            return await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamError("the upstream model server timed out", status=504) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream model server failed: {_describe(exc)}") from None


async def iter_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body of a streamed answer, with transport failures as UpstreamError."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TimeoutException:
        raise UpstreamError(
            "the upstream model server stopped sending (timeout)", status=504
        ) from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"the upstream stream broke: {_describe(exc)}") from None


def upstream_error_body(response: httpx.Response, content: bytes) -> tuple[int, dict[str, Any]]:
    """What to answer when the upstream answered with an error status.

    4xx answers in OpenAI's shape are passed on (the client's request was at fault); anything
    else becomes a 502 that says what the upstream did, without forwarding arbitrary bodies.
    """
    status = response.status_code
    if 400 <= status < 500 and status != 429:
        try:
            doc = json.loads(content)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return status, doc
        return status, error_body(
            f"the upstream model server refused the request ({status})", "invalid_request_error"
        )
    return 502, error_body(
        f"the upstream model server answered {status}", "upstream_error", code="upstream_error"
    )


def error_body(
    message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped error document."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
