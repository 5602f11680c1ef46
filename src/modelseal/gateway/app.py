"""HTTP routes of the gateway (FastAPI), mapped onto :class:`~.service.Gateway`.

=========================  =========================================================
``POST /v1/chat/completions``  chat, whole or streamed (SSE), OpenAI's shapes
``POST /v1/completions``       text completion, whole or streamed
``GET /v1/models``             the one model this gateway serves, with its seal status
``GET /v1/receipts/key``       the receipt signing key (PEM), for ``modelseal receipt verify``
``GET /healthz``               the process is up
``GET /readyz``                the model passed its checks (503 with the reason otherwise)
``GET /metrics``               Prometheus text format (admin token when one is set)
``GET /dashboard``             the live dashboard page; ``/dashboard/events`` its SSE feed
``GET /admin/status``          identity checks, keys near their limits, audit position
``POST /admin/recheck``        run the identity checks now
``GET /admin/extraction``      extraction-risk scores with their features (``?subject=``,
                               ``?limit=``)
``POST /admin/extraction/reset``  forget one subject's statistics (``{"subject": "key:..."}``)
=========================  =========================================================

The client's address (for the extraction statistics) is the socket peer, or with
``extraction.trusted_proxies`` set, taken from ``X-Forwarded-For``
(:func:`~.extraction.client_address`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from modelseal._version import __version__
from modelseal.gateway.extraction import client_address
from modelseal.gateway.service import Gateway, Operation, Reply
from modelseal.gateway.upstream import error_body


def create_app(gateway: Gateway, *, manage_lifecycle: bool = True) -> FastPath:
    """The ASGI app. With ``manage_lifecycle`` the app's lifespan starts and stops the gateway."""
    return FastPath(_routes(gateway, manage_lifecycle), gateway)


class FastPath:
    """The two hot routes as a bare ASGI handler in front of the FastAPI app.

    ``POST /v1/chat/completions`` and ``POST /v1/completions`` skip Starlette's routing, request
    and response objects and exception middleware (a sizeable share of the gateway's budget of
    about a millisecond), and a whole answer is sent before its bookkeeping (metrics, audit log)
    runs. Streams go through Starlette's StreamingResponse, which handles client disconnects.
    Everything else is the FastAPI app, unchanged.
    """

    ROUTES: ClassVar[dict[str, Operation]] = {
        "/v1/chat/completions": "chat",
        "/v1/completions": "text_completion",
    }

    def __init__(self, app: FastAPI, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        operation = self.ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if operation is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        authorization = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        client = _client(self.gateway, scope.get("client"), forwarded)
        reply = await self.gateway.handle(operation, b"".join(chunks), authorization, client)
        if reply.stream is not None:
            await _response(reply)(scope, receive, send)
            return
        body = reply.body or b""
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
        headers.append((b"content-length", str(len(body)).encode()))
        try:
            await send({"type": "http.response.start", "status": reply.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            reply.done()


def _routes(gateway: Gateway, manage_lifecycle: bool) -> FastAPI:

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await gateway_start(gateway)
        try:
            yield
        finally:
            if manage_lifecycle:
                await gateway_stop(gateway)

    app = FastAPI(
        title="modelseal gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    async def completion(request: Request, operation: Operation) -> Response:
        raw = await request.body()
        peer = request.client
        client = _client(
            gateway,
            None if peer is None else (peer.host, peer.port),
            request.headers.getlist("x-forwarded-for"),
        )
        reply = await gateway.handle(operation, raw, request.headers.get("authorization"), client)
        return _response(reply)

    async def chat_completions(request: Request) -> Response:
        return await completion(request, "chat")

    async def completions(request: Request) -> Response:
        return await completion(request, "text_completion")

    # reached only through FastPath for methods other than POST (405) and by direct users
    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_route("/v1/completions", completions, methods=["POST"])

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if not _caller_ok(gateway, request):
            return _error(401, "Incorrect or missing API key", "invalid_api_key")
        return _json({"object": "list", "data": [gateway.model_card()]})

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> Response:
        if not _caller_ok(gateway, request):
            return _error(401, "Incorrect or missing API key", "invalid_api_key")
        if model_id != gateway.model_id:
            return _error(404, f"the model {model_id!r} does not exist here", "model_not_found")
        return _json(gateway.model_card())

    @app.get("/v1/receipts/key")
    async def receipt_key() -> Response:
        return Response(gateway.signer.public_pem, media_type="application/x-pem-file")

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok", "version": __version__})

    @app.get("/readyz")
    async def readyz() -> Response:
        status = gateway.identity.status
        if status.serving:
            return _json({"status": "ready", "serial": status.serial, "root": status.root})
        return _json({"status": "not ready", "reason": status.reason()}, 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not _admin_ok(gateway, request):
            return _error(401, "the admin token is required", "invalid_admin_token")
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        if not _admin_ok(gateway, request):
            return _error(401, "the admin token is required (?token=...)", "invalid_admin_token")
        from modelseal.gateway.dashboard import PAGE_HEADERS, dashboard_html

        return HTMLResponse(dashboard_html(), headers=PAGE_HEADERS)

    @app.get("/dashboard/events")
    async def dashboard_events(request: Request) -> Response:
        if not _admin_ok(gateway, request):
            return _error(401, "the admin token is required", "invalid_admin_token")
        from modelseal.gateway.dashboard import EVENT_HEADERS
        from modelseal.gateway.dashboard import dashboard_events as events

        return StreamingResponse(
            events(gateway.metrics.snapshot, interval_s=gateway.dashboard_interval_s),
            media_type="text/event-stream",
            headers=EVENT_HEADERS,
        )

    @app.get("/admin/status")
    async def admin_status(request: Request) -> Response:
        if not _admin_ok(gateway, request, strict=True):
            return _error(401, "the admin token is required", "invalid_admin_token")
        return _json(
            {
                "model": gateway.model_id,
                "upstream": gateway.upstream.base_url,
                "upstream_model": gateway.upstream_id,
                "identity": gateway.identity.status.to_dict(),
                "guard_mode": gateway.guard_mode,
                "receipt_kid": gateway.signer.kid,
                "keys_near_limits": await gateway.key_levels(),
            }
        )

    @app.get("/admin/extraction")
    async def admin_extraction(request: Request) -> Response:
        if not _admin_ok(gateway, request, strict=True):
            return _error(401, "the admin token is required", "invalid_admin_token")
        monitor = gateway.extraction
        if monitor is None:
            return _json({"enabled": False, "top": []})
        subject = request.query_params.get("subject")
        if subject:
            found = monitor.subject(subject)
            if found is None:
                return _error(404, f"no statistics for {subject!r}", "subject_not_found")
            return _json(found)
        try:
            limit = max(1, min(1000, int(request.query_params.get("limit", "50"))))
        except ValueError:
            return _error(400, "limit must be an integer", "invalid_limit")
        return _json(monitor.report(limit))

    @app.post("/admin/extraction/reset")
    async def admin_extraction_reset(request: Request) -> Response:
        if not _admin_ok(gateway, request, strict=True):
            return _error(401, "the admin token is required", "invalid_admin_token")
        try:
            doc = json.loads(await request.body())
        except ValueError:
            doc = None
        subject = doc.get("subject") if isinstance(doc, dict) else None
        if not isinstance(subject, str) or not subject:
            wanted = 'expected {"subject": "key:<id>" or "addr:<address>"}'
            return _error(400, wanted, "invalid_subject")
        if gateway.extraction is None or not gateway.extraction.reset(subject):
            return _error(404, f"no statistics for {subject!r}", "subject_not_found")
        if gateway.audit is not None:
            gateway.audit.record({"event": "extraction", "subject": subject, "action": "reset"})
        gateway.publish_extraction()
        return _json({"reset": subject})

    @app.post("/admin/recheck")
    async def admin_recheck(request: Request) -> Response:
        if not _admin_ok(gateway, request, strict=True):
            return _error(401, "the admin token is required", "invalid_admin_token")
        status = await gateway.identity.check_now()
        return _json(status.to_dict(), 200 if status.serving else 503)

    return app


async def gateway_start(gateway: Gateway) -> None:
    """Verify the model (raising GatewayError when a fail-closed check fails), start the timers."""
    from modelseal.errors import ModelRefused

    status = await gateway.identity.check_now()
    if not status.serving and not gateway.start_unverified:
        raise ModelRefused(
            f"refusing to serve: {status.reason()}",
            hint="fix the release, the seal or the upstream; or make the check 'open' in the "
            "config (checks.seal / checks.revocation / checks.upstream)",
        )
    gateway.identity.start()
    gateway.key_level_task = asyncio.get_running_loop().create_task(_key_levels_loop(gateway))


async def gateway_stop(gateway: Gateway) -> None:
    task = gateway.key_level_task
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await gateway.identity.stop()
    await gateway.upstream.close()
    await gateway.limits.close()
    if gateway.audit is not None:
        gateway.audit.close()


async def _key_levels_loop(gateway: Gateway) -> None:
    from modelseal.errors import Error

    while True:
        await asyncio.sleep(1.0)
        gateway.publish_extraction()
        try:
            gateway.metrics.set_key_levels(await gateway.key_levels())
        except Error:  # a shared-state hiccup must not kill the dashboard feed
            continue


def _client(gateway: Gateway, peer: Any, forwarded: list[str]) -> str | None:
    """The client's address, when the extraction statistics want it."""
    monitor = gateway.extraction
    if monitor is None:
        return None
    host = peer[0] if isinstance(peer, list | tuple) and peer else None
    return client_address(
        host if isinstance(host, str) else None, forwarded, monitor.settings.trusted_proxies
    )


def _response(reply: Reply) -> Response:
    if reply.stream is not None:
        return StreamingResponse(reply.stream, status_code=reply.status, headers=reply.headers)
    reply.done()
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc), status_code=status, media_type="application/json")


def _error(status: int, message: str, code: str) -> Response:
    return _json(error_body(message, "invalid_request_error", code=code), status)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.query_params.get("token")


def _admin_ok(gateway: Gateway, request: Request, *, strict: bool = False) -> bool:
    """Admin pages need the admin token when one is configured (always, with ``strict``)."""
    token = _token(request)
    if gateway.admin_configured:
        return token is not None and bool(gateway.keys.is_admin(token))
    return not strict or gateway.allow_anonymous


def _caller_ok(gateway: Gateway, request: Request) -> bool:
    token = _token(request)
    if token and (gateway.keys.lookup(token) is not None or gateway.keys.is_admin(token)):
        return True
    return gateway.allow_anonymous and (not token or not gateway.keys.keys)
