"""The request path: authenticate, check, limit, guard, forward, guard again, sign, record.

One :class:`Gateway` holds every part (key store, limits, guard pipelines, upstream client,
receipt signer, audit log, metrics, identity monitor); :mod:`.app` only maps HTTP routes onto
:meth:`Gateway.handle`. The hot path avoids pydantic and re-serialisation where it can: bodies are
parsed once with :mod:`json`, upstream answers are forwarded byte for byte unless something in
them must change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import orjson

from modelseal.errors import GatewayError, PolicyViolation, UpstreamError
from modelseal.gateway import sse
from modelseal.gateway.extraction import (
    REFUSE,
    STRIP,
    TIGHTEN,
    ExtractionMonitor,
    subject_address,
)
from modelseal.gateway.identity import IdentityMonitor
from modelseal.gateway.upstream import Upstream, UpstreamStream, error_body, upstream_error_body
from modelseal.guard.base import Finding
from modelseal.guard.pipeline import SYSTEM_ROLES, GuardPipeline, PipelineResult

Operation = Literal["chat", "text_completion"]
ENDPOINTS: dict[Operation, str] = {
    "chat": "/v1/chat/completions",
    "text_completion": "/v1/completions",
}
RECEIPT_HEADER = "x-modelseal-receipt"
RECEIPT_COMMENT = "modelseal-receipt "


@dataclass
class Reply:
    """What the app sends back: a whole JSON body or an SSE stream."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    # bookkeeping (metrics, audit) for a whole answer, run once it is sent; a stream does its
    # own when it ends
    after: Callable[[], None] | None = None

    def done(self) -> None:
        if self.after is not None:
            after, self.after = self.after, None
            after()


@dataclass
class Caller:
    key_id: str | None
    policy: Any
    rpm: float | None
    tpm: float | None


@dataclass
class Exchange:
    """Everything known about one request, for the receipt, the audit log and the metrics."""

    operation: Operation
    request_digest: str
    started: float
    caller: Caller | None = None
    response_id: str = ""
    stream: bool = False
    status: str = "ok"
    http: int = 200
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    blocked_by: Finding | None = None
    policy_notes: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    ttft_s: float | None = None
    system: str = ""  # the request's system / developer messages (the leak guard's context)
    prompt: list[str] | None = None
    answer: str | None = None
    error: str | None = None
    guard_results: list[PipelineResult] = field(default_factory=list)
    client: str | None = None  # the client's address (for the extraction statistics)
    arrived: float = 0.0  # on the extraction monitor's clock
    body: dict[str, Any] | None = None  # as the client sent it (for the extraction statistics)
    extraction: int = 0  # extraction action bits in force for this request
    extraction_applied: list[str] = field(default_factory=list)


class Gateway:
    def __init__(
        self,
        *,
        model_id: str,
        upstream: Upstream,
        identity: IdentityMonitor,
        keys: Any,
        limits: Any,
        input_guards: GuardPipeline,
        output_guards: GuardPipeline,
        signer: Any,
        metrics: Any,
        audit: Any = None,
        guard_mode: str = "buffer",
        allow_anonymous: bool = False,
        anonymous_policy: Any = None,
        anonymous_rpm: float | None = None,
        anonymous_tpm: float | None = None,
        upstream_id: str | None = None,
        record_prompts: bool = False,
        admin_configured: bool = False,
        extraction: ExtractionMonitor | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.model_id = model_id
        self.upstream = upstream
        self.identity = identity
        self.keys = keys
        self.limits = limits
        self.input_guards = input_guards
        self.output_guards = output_guards
        self.signer = signer
        self.metrics = metrics
        self.audit = audit
        self.guard_mode = guard_mode
        self.allow_anonymous = allow_anonymous
        self.anonymous_policy = anonymous_policy
        self.anonymous_rpm = anonymous_rpm
        self.anonymous_tpm = anonymous_tpm
        self.configured_upstream_id = upstream_id
        self.record_prompts = record_prompts
        self.extraction = extraction
        self._clock = clock
        self.started_at = datetime.now(UTC)
        self.recent_keys: dict[str, Caller] = {}
        self.admin_configured = admin_configured
        self.start_unverified = False  # serve 503s instead of refusing to start
        self.dashboard_interval_s = 1.0
        self.key_level_task: asyncio.Task[None] | None = None

    # -- identity -------------------------------------------------------------------------

    @property
    def upstream_id(self) -> str:
        return self.configured_upstream_id or self.identity.status.upstream_model or self.model_id

    def model_card(self) -> dict[str, Any]:
        status = self.identity.status
        return {
            "id": self.model_id,
            "object": "model",
            "created": int(self.started_at.timestamp()),
            "owned_by": "modelseal",
            "modelseal": {
                "verified": status.serving,
                "release": status.release,
                "root": status.root,
                "serial": status.serial,
                "not_after": status.not_after,
                "checked_at": status.checked_at,
            },
        }

    # -- the request path -----------------------------------------------------------------

    async def handle(
        self,
        operation: Operation,
        raw: bytes,
        authorization: str | None,
        client: str | None = None,
    ) -> Reply:
        """Answer one request; ``client`` is the client's address (see
        :func:`~.extraction.client_address`)."""
        exchange = Exchange(operation, _digest(raw), self._clock(), client=client)
        if self.extraction is not None:
            exchange.arrived = self.extraction.clock()
        self.metrics.in_flight(1)
        try:
            reply = await self._handle(exchange, raw, authorization)
        except BaseException:
            self.metrics.in_flight(-1)
            raise
        if reply.stream is None:
            reply.after = lambda: self._finish(exchange)
        return reply

    async def _handle(self, ex: Exchange, raw: bytes, authorization: str | None) -> Reply:
        caller = self._authenticate(authorization)
        if caller is None:
            return self._refuse(
                ex, 401, "invalid_api_key", "Incorrect or missing API key", "invalid_request_error"
            )
        ex.caller = caller
        status = self.identity.status
        if not status.serving:
            return self._refuse(
                ex,
                503,
                "model_not_verified",
                f"the model is not being served: {status.reason()}",
                "service_unavailable",
            )
        try:
            body = json.loads(raw)  # the json module: exact big integers, forwarded as sent
        except (ValueError, UnicodeDecodeError):
            return self._refuse(ex, 400, "invalid_json", "the request body is not JSON")
        if not isinstance(body, dict):
            return self._refuse(ex, 400, "invalid_json", "the request body must be a JSON object")
        model = body.get("model")
        if model != self.model_id:
            return self._refuse(
                ex,
                404,
                "model_not_found",
                f"the model {model!r} does not exist here; this gateway serves {self.model_id!r}",
                param="model",
            )
        if self.extraction is not None:
            ex.body = body
            ex.extraction = self.extraction.actions(caller.key_id, ex.client)
            if ex.extraction & REFUSE:
                ex.extraction_applied.append("refuse")
                return self._refuse(
                    ex,
                    429,
                    "extraction_suspected",
                    "the traffic from this API key or address looks like model extraction "
                    "(distillation); requests are refused for now",
                    "rate_limit_error",
                )
        try:
            body, ex.policy_notes = _apply_policy(body, caller.policy)
        except PolicyViolation as exc:
            return self._refuse(ex, 400, "parameter_not_allowed", exc.message, param=exc.param)
        if ex.extraction & STRIP:
            body = _strip_logprobs(body, ex)
        roles: list[str] = []
        texts = _input_texts(ex.operation, body, roles)
        if texts is None:
            field_name = "messages" if ex.operation == "chat" else "prompt"
            return self._refuse(
                ex,
                400,
                "invalid_request",
                f"'{field_name}' is missing or malformed",
                param=field_name,
            )
        try:
            limited = await self._take_limits(ex, caller, texts)
        except GatewayError as exc:  # the shared limit store is down: refuse, never uncounted
            return self._refuse(ex, 503, "limits_unavailable", exc.message, "service_unavailable")
        if limited is not None:
            return limited
        checked = self.input_guards.check_messages(texts, "input", roles or None)
        self._record_verdicts(ex, checked)
        if checked.blocked:
            return self._blocked(ex, checked.block, "input")
        if roles:
            ex.system = "\n".join(
                t for t, r in zip(texts, roles, strict=False) if r in SYSTEM_ROLES
            )
        if self.record_prompts:
            ex.prompt = list(texts)
        ex.stream = bool(body.get("stream"))
        body["model"] = self.upstream_id
        path = ENDPOINTS[ex.operation]
        if ex.stream:
            return await self._stream(ex, body, path)
        return await self._whole(ex, body, path)

    def _output_guards(self, ex: Exchange) -> GuardPipeline:
        """The output pipeline, bound to the request's system prompt when a guard needs it."""
        if ex.system and self.output_guards.contextual:
            return self.output_guards.bind({"system": ex.system})
        return self.output_guards

    def _authenticate(self, authorization: str | None) -> Caller | None:
        secret = None
        if authorization and authorization[:7].lower() == "bearer ":
            secret = authorization[7:].strip()
        if secret:
            key = self.keys.lookup(secret)
            if key is None:
                # with no keys at all (a local setup) whatever the client sends is anonymous:
                # OpenAI clients always send some key
                if self.allow_anonymous and not self.keys.keys:
                    return Caller(
                        None, self.anonymous_policy, self.anonymous_rpm, self.anonymous_tpm
                    )
                return None
            caller = Caller(key.id, key.policy, key.requests_per_minute, key.tokens_per_minute)
            self.recent_keys[key.id] = caller
            return caller
        if self.allow_anonymous:
            return Caller(None, self.anonymous_policy, self.anonymous_rpm, self.anonymous_tpm)
        return None

    async def _take_limits(
        self, ex: Exchange, caller: Caller, texts: Sequence[str]
    ) -> Reply | None:
        who = caller.key_id or "anonymous"
        if ex.extraction & TIGHTEN:
            caller = ex.caller = self._tightened(caller)
            ex.extraction_applied.append("tighten")
        bucket = _bucket(ex, caller)
        if caller.rpm:
            took = await self.limits.take(f"{bucket}:requests", 1, caller.rpm, caller.rpm / 60.0)
            if not took.allowed:
                return self._rate_limited(ex, who, "requests", caller.rpm, took.retry_after_s)
        if caller.tpm:
            estimate = max(1, sum(len(t) for t in texts) // 4)
            took = await self.limits.take(
                f"{bucket}:tokens", min(estimate, caller.tpm), caller.tpm, caller.tpm / 60.0
            )
            if not took.allowed:
                return self._rate_limited(ex, who, "tokens", caller.tpm, took.retry_after_s)
            ex.input_tokens = estimate  # charged so far; settled after the answer
        return None

    def _tightened(self, caller: Caller) -> Caller:
        """The caller's rate limits scaled down (extraction risk); a base limit when none."""
        assert self.extraction is not None
        settings = self.extraction.settings
        factor = settings.tighten_factor
        rpm = (caller.rpm or settings.tighten_requests_per_minute) * factor
        tpm = caller.tpm * factor if caller.tpm else None
        return Caller(caller.key_id, caller.policy, rpm, tpm)

    async def _settle_tokens(self, ex: Exchange, charged: int) -> None:
        caller = ex.caller
        if caller is None or not caller.tpm:
            return
        extra = ex.input_tokens + ex.output_tokens - charged
        if extra:
            with contextlib.suppress(GatewayError):  # the answer is out; the debt counts next time
                await self.limits.take(
                    f"{_bucket(ex, caller)}:tokens", extra, caller.tpm, caller.tpm / 60.0, debt=True
                )

    # -- whole answers --------------------------------------------------------------------

    async def _whole(self, ex: Exchange, body: dict[str, Any], path: str) -> Reply:
        charged = ex.input_tokens
        try:
            upstream_status, content = await self.upstream.post(path, _dumps(body))
        except UpstreamError as exc:
            return self._upstream_failed(ex, exc)
        if upstream_status != 200:
            status, doc = upstream_error_body(upstream_status, content)
            ex.error = f"upstream {upstream_status}"
            return self._refuse_doc(ex, status, doc, "error")
        try:
            answer = _loads(content)
            choices = answer["choices"]
            texts = [_choice_text(ex.operation, c) for c in choices]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return self._upstream_failed(
                ex, UpstreamError("the upstream's answer is not an OpenAI completion")
            )
        ex.response_id = str(answer.get("id") or _new_id(ex.operation))
        ex.ttft_s = self._clock() - ex.started
        checked = self._output_guards(ex).check_messages(texts, "output")
        self._record_verdicts(ex, checked)
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        ex.input_tokens = _int(usage.get("prompt_tokens"), ex.input_tokens)
        ex.output_tokens = _int(usage.get("completion_tokens"), sum(len(t) for t in texts) // 4)
        await self._settle_tokens(ex, charged)
        if checked.blocked:
            return self._blocked(ex, checked.block, "output")
        if answer.get("model") != self.model_id:
            answer["model"] = self.model_id
            content = _dumps(answer)
        full_text = "".join(texts)
        if self.record_prompts:
            ex.answer = full_text
        receipt = self._receipt(ex, full_text, content)
        return Reply(200, {RECEIPT_HEADER: receipt, "content-type": "application/json"}, content)

    # -- streams --------------------------------------------------------------------------

    async def _stream(self, ex: Exchange, body: dict[str, Any], path: str) -> Reply:
        options = body.get("stream_options")
        client_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        if not client_wants_usage:
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        try:
            response = await self.upstream.open_stream(path, _dumps(body))
        except UpstreamError as exc:
            return self._upstream_failed(ex, exc)
        if response.status != 200:
            try:
                content = await response.read()
            except UpstreamError as exc:
                return self._upstream_failed(ex, exc)
            finally:
                await response.close()
            status, doc = upstream_error_body(response.status, content)
            ex.error = f"upstream {response.status}"
            return self._refuse_doc(ex, status, doc, "error")
        ex.response_id = _new_id(ex.operation)
        headers = {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
        }
        return Reply(200, headers, stream=self._relay(ex, response, client_wants_usage))

    async def _relay(
        self, ex: Exchange, response: UpstreamStream, client_wants_usage: bool
    ) -> AsyncIterator[bytes]:
        charged = ex.input_tokens
        buffer = self.guard_mode == "buffer"
        scanners: dict[int, Any] = {}
        released: dict[int, list[str]] = {}
        parser = sse.SseParser()
        chat = ex.operation == "chat"
        field_name = "content" if chat else "text"
        done: set[int] = set()
        upstream_model_differs = self.upstream_id != self.model_id
        usage_seen = False
        finished = False
        try:
            async for raw in response.chunks():
                for event in parser.feed(raw):
                    if event.data == "[DONE]":
                        finished = True
                        break
                    try:
                        chunk = _loads(event.data)
                    except ValueError:
                        raise UpstreamError("the upstream sent an event that is not JSON") from None
                    if not isinstance(chunk, dict):
                        raise UpstreamError("the upstream sent an event that is not a JSON object")
                    if "error" in chunk and "choices" not in chunk:
                        ex.status, ex.error = "error", "upstream error event"
                        yield sse.frame(chunk)
                        finished = True
                        break
                    if ex.ttft_s is None:
                        ex.ttft_s = self._clock() - ex.started
                    if isinstance(chunk.get("id"), str):
                        ex.response_id = chunk["id"]
                    usage = chunk.get("usage")
                    if isinstance(usage, dict):
                        usage_seen = True
                        ex.input_tokens = _int(usage.get("prompt_tokens"), ex.input_tokens)
                        ex.output_tokens = _int(usage.get("completion_tokens"), ex.output_tokens)
                    choices = chunk.get("choices")
                    if not isinstance(choices, list):
                        choices = []
                    if not choices and isinstance(usage, dict) and not client_wants_usage:
                        continue  # we asked for usage, the client did not
                    changed = upstream_model_differs
                    block: Finding | None = None
                    for choice in choices:
                        if not isinstance(choice, dict):
                            continue
                        index = _int(choice.get("index"), 0)
                        holder = choice.get("delta") if chat else choice
                        if not isinstance(holder, dict):
                            holder = None
                        text = holder.get(field_name) if holder is not None else None
                        if not isinstance(text, str):
                            text = ""
                        scanner = scanners.get(index)
                        if scanner is None:
                            scanner = scanners[index] = self._output_guards(ex).stream("output")
                            released[index] = []
                        out = text
                        if text:
                            step = scanner.feed(text)
                            if step.blocked:
                                block = step.block
                                break
                            if buffer:
                                out = step.release
                        if choice.get("finish_reason") is not None and index not in done:
                            done.add(index)
                            step = scanner.finish()
                            if step.blocked:
                                block = step.block
                                break
                            if buffer:
                                out += step.release
                        if out != text:
                            if holder is None:
                                holder = choice["delta"] = {}
                            holder[field_name] = out
                            changed = True
                        released[index].append(out)
                    if block is not None:
                        self._merge_stream_verdicts(ex, scanners)
                        ex.blocked_by, ex.status = block, "blocked"
                        yield sse.frame(_block_error(block, "output"))
                        yield self._stream_receipt(ex, released)
                        yield sse.DONE
                        return
                    if changed:
                        if upstream_model_differs:
                            chunk["model"] = self.model_id
                        yield sse.frame(chunk)
                    else:
                        yield b"data: " + event.data.encode() + b"\n\n"
                if finished:
                    break
            # the upstream ended (with [DONE] or by closing): check what is still held
            for index, scanner in scanners.items():
                if index in done:
                    continue
                step = scanner.finish()
                if step.blocked:
                    self._merge_stream_verdicts(ex, scanners)
                    ex.blocked_by, ex.status = step.block, "blocked"
                    yield sse.frame(_block_error(step.block, "output"))
                    yield self._stream_receipt(ex, released)
                    yield sse.DONE
                    return
                if buffer and step.release:
                    released[index].append(step.release)
                    yield sse.frame(_tail_chunk(ex, index, step.release, chat, self.model_id))
            self._merge_stream_verdicts(ex, scanners)
            if not usage_seen:
                ex.output_tokens = sum(len("".join(parts)) for parts in released.values()) // 4
            yield self._stream_receipt(ex, released)
            yield sse.DONE
        except UpstreamError as exc:
            ex.status, ex.error = "error", exc.message
            ex.http = exc.status
            kind = "timeout" if exc.status == 504 else "upstream_error"
            yield sse.frame(error_body(exc.message, kind, code=kind))
            yield self._stream_receipt(ex, released)
            yield sse.DONE
        except (asyncio.CancelledError, GeneratorExit):
            ex.status, ex.error = "cancelled", "the client went away"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await response.close()
                if ex.status != "cancelled" or ex.output_tokens:
                    await self._settle_tokens(ex, charged)
            if self.record_prompts:
                ex.answer = "".join("".join(released[i]) for i in sorted(released))
            self._finish(ex)

    def _merge_stream_verdicts(self, ex: Exchange, scanners: Mapping[int, Any]) -> None:
        for scanner in scanners.values():
            self._record_verdicts(ex, scanner.result)

    def _stream_receipt(self, ex: Exchange, released: Mapping[int, list[str]]) -> bytes:
        text = "".join("".join(released[i]) for i in sorted(released))
        return sse.comment(RECEIPT_COMMENT + self._receipt(ex, text, None))

    # -- answers that are not the model's ---------------------------------------------------

    def _refuse(
        self,
        ex: Exchange,
        status: int,
        code: str,
        message: str,
        kind: str = "invalid_request_error",
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        ex.error = code
        return self._refuse_doc(
            ex, status, error_body(message, kind, param=param, code=code), "refused", headers
        )

    def _refuse_doc(
        self,
        ex: Exchange,
        status: int,
        doc: Mapping[str, Any],
        outcome: str,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        ex.status = outcome if ex.status == "ok" else ex.status
        ex.http = status
        content = _dumps(doc)
        out = {"content-type": "application/json", **(headers or {})}
        if ex.caller is not None or status != 401:
            out[RECEIPT_HEADER] = self._receipt(ex, "", content)
        return Reply(status, out, content)

    def _blocked(self, ex: Exchange, finding: Finding | None, stage: str) -> Reply:
        assert finding is not None
        ex.blocked_by, ex.status = finding, "blocked"
        return self._refuse_doc(ex, 400, _block_error(finding, stage), "blocked")

    def _rate_limited(
        self, ex: Exchange, who: str, limit: str, per_minute: float, retry_after: float
    ) -> Reply:
        self.metrics.rate_limited(key=who, limit=limit)
        ex.status = "rate_limited"
        tightened = " (tightened: extraction risk)" if ex.extraction & TIGHTEN else ""
        return self._refuse(
            ex,
            429,
            "rate_limit_exceeded",
            f"rate limit reached for {who}: {per_minute:g} {limit} per minute{tightened}; "
            f"retry after {retry_after:.1f} s",
            limit,
            headers={"retry-after": str(max(1, round(retry_after + 0.5)))},
        )

    def _upstream_failed(self, ex: Exchange, exc: UpstreamError) -> Reply:
        ex.status = "error"
        kind = "timeout" if exc.status == 504 else "upstream_error"
        return self._refuse(ex, exc.status, kind, exc.message, kind)

    # -- receipts, audit, metrics ---------------------------------------------------------

    def _record_verdicts(self, ex: Exchange, result: PipelineResult) -> None:
        """Summaries for the receipt now; the metrics once the answer is out (``_finish``)."""
        ex.guard_results.append(result)
        for verdict in result.verdicts:
            ex.verdicts.append(
                {
                    "guard": verdict.guard,
                    "version": verdict.version,
                    "stage": verdict.stage,
                    "verdict": "block"
                    if verdict.blocked
                    else ("flag" if verdict.findings else "pass"),
                    "categories": sorted({f.category for f in verdict.findings})
                    if verdict.findings
                    else [],
                }
            )

    def _observe_guards(self, ex: Exchange) -> None:
        for result in ex.guard_results:
            for verdict in result.verdicts:
                first = verdict.block if verdict.blocked else None
                if first is None and verdict.findings:
                    first = verdict.findings[0]
                self.metrics.observe_guard(
                    guard=verdict.guard,
                    stage=verdict.stage,
                    blocked=verdict.blocked,
                    category=first.category if first is not None else None,
                    latency_s=verdict.latency_s,
                )

    def _receipt(self, ex: Exchange, text: str, body: bytes | None) -> str:
        status = self.identity.status
        claims = {
            "v": 1,
            "id": ex.response_id or _new_id(ex.operation),
            "iat": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "kid": self.signer.kid,
            "operation": ex.operation,
            "request": ex.request_digest,
            "response": _digest(text.encode()),
            "body": None if body is None else _digest(body),
            "model": {"id": self.model_id, "root": status.root, "serial": status.serial},
            "key": ex.caller.key_id if ex.caller else None,
            "status": ex.status,
            "stream": ex.stream,
            "guards": ex.verdicts,
        }
        self.metrics.receipt_issued()
        return str(self.signer.sign(claims))

    def _finish(self, ex: Exchange) -> None:
        duration = self._clock() - ex.started
        self.metrics.in_flight(-1)
        self._observe_guards(ex)
        self._observe_extraction(ex)
        blocked = ex.blocked_by
        self.metrics.observe_request(
            model=self.model_id,
            operation=ex.operation,
            status=ex.status,
            duration_s=duration,
            ttft_s=ex.ttft_s,
            input_tokens=ex.input_tokens,
            output_tokens=ex.output_tokens,
            key=ex.caller.key_id if ex.caller else None,
            blocked_by=blocked,
        )
        if self.audit is None:
            return
        event: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "id": ex.response_id or None,
            "operation": ex.operation,
            "key": ex.caller.key_id if ex.caller else None,
            "model": self.model_id,
            "serial": self.identity.status.serial,
            "status": ex.status,
            "http": ex.http,
            "stream": ex.stream,
            "request": ex.request_digest,
            "guards": ex.verdicts,
            "blocked_by": None
            if blocked is None
            else {"guard": blocked.guard, "category": blocked.category},
            "policy": ex.policy_notes,
            "tokens": {"input": ex.input_tokens, "output": ex.output_tokens},
            "duration_ms": round(duration * 1000, 3),
            "error": ex.error,
        }
        if self.record_prompts:
            event["prompt"] = ex.prompt
            event["answer"] = ex.answer
        self.audit.record(event)

    def _observe_extraction(self, ex: Exchange) -> None:
        """Feed the request to the extraction statistics; record the actions that changed."""
        monitor = self.extraction
        if monitor is None or ex.body is None or ex.caller is None:
            return
        started = time.perf_counter()
        changes = monitor.observe(
            key_id=ex.caller.key_id,
            address=ex.client,
            operation=ex.operation,
            body=ex.body,
            prompt_tokens=ex.input_tokens,
            completion_tokens=ex.output_tokens,
            at=ex.arrived,
        )
        alerts = sum(1 for c in changes if c.action == "alert" and c.state == "on")
        self.metrics.observe_extraction(
            seconds=time.perf_counter() - started, applied=ex.extraction_applied, alerts=alerts
        )
        if self.audit is not None:
            for change in changes:
                self.audit.record(change.to_event())

    def publish_extraction(self, top: int = 50) -> None:
        """Hand the riskiest subjects to the metrics (gauges) and the dashboard."""
        if self.extraction is not None:
            self.metrics.set_extraction(self.extraction.top(top), len(self.extraction))

    # -- state shared with the dashboard ----------------------------------------------------

    async def key_levels(self) -> list[dict[str, Any]]:
        levels: list[dict[str, Any]] = []
        for key_id, caller in list(self.recent_keys.items())[-200:]:
            for limit, per_minute in (("requests", caller.rpm), ("tokens", caller.tpm)):
                if not per_minute:
                    continue
                level = await self.limits.level(f"{key_id}:{limit}", per_minute, per_minute / 60.0)
                used = 1.0 - max(0.0, min(1.0, level / per_minute))
                levels.append({"key": key_id, "limit": limit, "used_fraction": round(used, 4)})
        levels.sort(key=lambda item: -float(item["used_fraction"]))
        return levels[:20]


def _apply_policy(body: dict[str, Any], policy: Any) -> tuple[dict[str, Any], list[str]]:
    if policy is None:
        return body, []
    from modelseal.gateway.policy import apply_policy

    return apply_policy(body, policy)


def _bucket(ex: Exchange, caller: Caller) -> str:
    """The rate-limit bucket prefix: the key id; "anonymous" (shared); an anonymous client
    whose limits are tightened (extraction risk) gets buckets of its own address."""
    if caller.key_id is not None:
        return caller.key_id
    if ex.extraction & TIGHTEN and ex.client:
        return f"anonymous@{subject_address(ex.client)}"  # an IPv6 client: its /64
    return "anonymous"


def _strip_logprobs(body: dict[str, Any], ex: Exchange) -> dict[str, Any]:
    """``body`` without logprobs, top_logprobs and logit_bias (a copy when any is there)."""
    present = [name for name in ("logprobs", "top_logprobs", "logit_bias") if name in body]
    if not present:
        return body
    out = dict(body)
    stripped = False
    for name in present:
        value = out.pop(name)
        if value not in (None, False, 0, {}, []):
            ex.policy_notes.append(f"{name}: stripped (extraction risk)")
            stripped = True
    if stripped:
        ex.extraction_applied.append("strip_logprobs")
    return out


def _input_texts(
    operation: Operation, body: Mapping[str, Any], roles: list[str] | None = None
) -> list[str] | None:
    """The texts of a request to guard; ``roles`` (when given) gets each text's message role."""
    if operation == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        texts: list[str] = []
        for message in messages:
            if not isinstance(message, dict):
                return None
            role = message.get("role")
            role = role if isinstance(role, str) else "user"
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        texts.append(part["text"])
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    texts.append(function["arguments"])
            if roles is not None:
                roles.extend([role] * (len(texts) - len(roles)))
        return texts
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and all(isinstance(p, int) for p in prompt):
        return []  # token ids: nothing textual to check
    return None


def _choice_text(operation: Operation, choice: Mapping[str, Any]) -> str:
    if operation == "chat":
        message = choice.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _tail_chunk(ex: Exchange, index: int, text: str, chat: bool, model: str) -> dict[str, Any]:
    if chat:
        choice: dict[str, Any] = {"index": index, "delta": {"content": text}, "finish_reason": None}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": index, "text": text, "finish_reason": None, "logprobs": None}
        kind = "text_completion"
    return {
        "id": ex.response_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


def _block_error(finding: Finding, stage: str) -> dict[str, Any]:
    where = "request" if stage == "input" else "answer"
    doc = error_body(
        f"the {where} was blocked by guard '{finding.guard}' ({finding.category}): "
        f"{finding.detail}",
        "invalid_request_error",
        param="messages" if stage == "input" else None,
        code="content_blocked",
    )
    doc["error"].update(guard=finding.guard, category=finding.category, stage=stage)
    return doc


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _loads(data: bytes | str) -> Any:
    """Upstream answers, with orjson's speed (raises ValueError for what is not JSON)."""
    return orjson.loads(data)


def _dumps(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:  # an integer beyond 64 bits, which orjson refuses: exact, the slow way
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _new_id(operation: Operation) -> str:
    return ("chatcmpl-" if operation == "chat" else "cmpl-") + uuid.uuid4().hex[:24]


Handler = Callable[[Operation, bytes, str | None], Awaitable[Reply]]
