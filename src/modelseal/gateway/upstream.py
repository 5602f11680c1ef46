"""The upstream model server: one pooled HTTP client, errors mapped to 502 and 504.

Three clients behind one small interface (:class:`Upstream`), chosen by :func:`open_upstream`:

- :class:`~modelseal.gateway._http.RawUpstream` for ``http://`` (the usual case: a model server
  on the same host or network): a small keep-alive HTTP/1.1 pool on asyncio protocols with
  httptools' parser, about a quarter of aiohttp's CPU per request and a tenth of httpx's (the
  gateway's whole budget is about a millisecond; see ``benchmarks/bench_gateway.py``).
- :class:`AiohttpUpstream` for ``https://``.
- :class:`HttpxUpstream`, when a transport is injected (``httpx.ASGITransport`` in the tests,
  so the whole gateway runs in process against an ASGI fake), as in httpx itself.

Every failure becomes an :class:`~modelseal.errors.UpstreamError` carrying the status the gateway
answers with: 504 when the upstream did not answer in time, 502 for everything else (refused
connection, reset, malformed answer). The gateway never hangs on a dead upstream: every request
has a connect and a read timeout.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from modelseal.errors import UpstreamError

_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class UpstreamStream(Protocol):
    """An upstream answer whose headers are in and whose body is read as it comes."""

    @property
    def status(self) -> int: ...

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class Upstream(Protocol):
    base_url: str

    async def get_json(self, path: str, *, timeout_s: float | None = None) -> Any: ...

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    async def open_stream(self, path: str, body: bytes) -> UpstreamStream: ...

    async def close(self) -> None: ...


def open_upstream(
    base_url: str,
    *,
    timeout_s: float = 120.0,
    connect_timeout_s: float = 5.0,
    max_connections: int = 512,
    transport: Any = None,
    api_key: str | None = None,
) -> Upstream:
    """The client for ``base_url``: the httpx one when ``transport`` (an httpx transport) is
    given, else :class:`~modelseal.gateway._http.RawUpstream` for ``http://`` and aiohttp for
    ``https://``."""
    options = {
        "timeout_s": timeout_s,
        "connect_timeout_s": connect_timeout_s,
        "max_connections": max_connections,
        "api_key": api_key,
    }
    if transport is not None:
        return HttpxUpstream(base_url, transport=transport, **options)  # type: ignore[arg-type]
    if base_url.lower().startswith("http://"):
        from modelseal.gateway._http import RawUpstream

        return RawUpstream(base_url, **options)  # type: ignore[arg-type]
    return AiohttpUpstream(base_url, **options)  # type: ignore[arg-type]


def _base(url: str) -> str:
    base = url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _headers(api_key: str | None) -> dict[str, str]:
    headers = dict(_HEADERS)
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def _parse_json(path: str, status: int, content: bytes) -> Any:
    if status != 200:
        raise UpstreamError(f"the upstream answered GET {path} with {status}")
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise UpstreamError(f"the upstream's answer to GET {path} is not JSON") from None


# -- aiohttp ------------------------------------------------------------------------------------


class AiohttpUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 512,
        api_key: str | None = None,
    ) -> None:
        self.base_url = _base(base_url)
        self._headers = _headers(api_key)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_connections = max_connections
        self._session: Any = None

    def _client(self) -> Any:
        if self._session is None:  # created on the event loop that uses it
            import aiohttp

            self._session = aiohttp.ClientSession(
                base_url=self.base_url,
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self._connect_timeout_s,
                    sock_connect=self._connect_timeout_s,
                    sock_read=self._timeout_s,
                ),
                skip_auto_headers=("User-Agent",),
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(self, path: str, *, timeout_s: float | None = None) -> Any:
        import aiohttp

        with _mapped(TimeoutError, aiohttp.ClientError, f"the upstream on GET {path}"):
            kwargs: dict[str, Any] = {}
            if timeout_s is not None:
                kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout_s)
            async with self._client().get(path, **kwargs) as response:
                content = await response.read()
                status = response.status
        return _parse_json(path, status, content)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        import aiohttp

        with _mapped(TimeoutError, aiohttp.ClientError):
            async with self._client().post(path, data=body) as response:
                return response.status, await response.read()

    async def open_stream(self, path: str, body: bytes) -> UpstreamStream:
        import aiohttp

        with _mapped(TimeoutError, aiohttp.ClientError):
            response = await self._client().post(path, data=body)
        return _AiohttpStream(response)


class _AiohttpStream:
    def __init__(self, response: Any) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return int(self._response.status)

    async def read(self) -> bytes:
        import aiohttp

        with _mapped(TimeoutError, aiohttp.ClientError):
            return bytes(await self._response.read())

    async def chunks(self) -> AsyncIterator[bytes]:
        import aiohttp

        with _mapped(TimeoutError, aiohttp.ClientError, "the upstream stream"):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def close(self) -> None:
        # close, not release: a half-read stream must drop its connection, which also tells the
        # upstream to stop generating
        self._response.close()


# -- httpx (injectable transports) --------------------------------------------------------------


class HttpxUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 512,
        transport: Any = None,
        api_key: str | None = None,
    ) -> None:
        import httpx

        self.base_url = _base(base_url)
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(api_key),
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
        import httpx

        with _mapped(httpx.TimeoutException, httpx.HTTPError, f"the upstream on GET {path}"):
            kwargs: dict[str, Any] = {}
            if timeout_s is not None:
                kwargs["timeout"] = timeout_s
            response = await self._client.get(path, **kwargs)
        return _parse_json(path, response.status_code, response.content)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        import httpx

        with _mapped(httpx.TimeoutException, httpx.HTTPError):
            response = await self._client.post(path, content=body)
        return response.status_code, response.content

    async def open_stream(self, path: str, body: bytes) -> UpstreamStream:
        import httpx

        request = self._client.build_request("POST", path, content=body)
        with _mapped(httpx.TimeoutException, httpx.HTTPError):
            response = await self._client.send(request, stream=True)
        return _HttpxStream(response)


class _HttpxStream:
    def __init__(self, response: Any) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return int(self._response.status_code)

    async def read(self) -> bytes:
        import httpx

        with _mapped(httpx.TimeoutException, httpx.HTTPError):
            return bytes(await self._response.aread())

    async def chunks(self) -> AsyncIterator[bytes]:
        import httpx

        with _mapped(httpx.TimeoutException, httpx.HTTPError, "the upstream stream"):
            async for chunk in self._response.aiter_bytes():
                yield chunk

    async def close(self) -> None:
        await self._response.aclose()


# -- answers ------------------------------------------------------------------------------------


def upstream_error_body(status: int, content: bytes) -> tuple[int, dict[str, Any]]:
    """What to answer when the upstream answered with an error status.

    4xx answers in OpenAI's shape are passed on (the client's request was at fault); anything
    else becomes a 502 that says what the upstream did, without forwarding arbitrary bodies.
    """
    if 400 <= status < 500 and status != 429:
        try:
            doc = json.loads(content)
        except (ValueError, UnicodeDecodeError):
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


@contextlib.contextmanager
def _mapped(
    timeout: type[BaseException],
    failure: type[BaseException],
    what: str = "the upstream model server",
) -> Iterator[None]:
    """A client library's timeout as a 504 UpstreamError, its other failures as a 502."""
    try:
        yield
    except timeout:
        raise UpstreamError(f"{what} timed out (timeout)", status=504) from None
    except failure as exc:
        raise UpstreamError(f"{what} failed: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
