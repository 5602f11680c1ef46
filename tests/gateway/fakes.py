"""A fake OpenAI-compatible upstream (ASGI), scriptable per test.

It answers like llama.cpp's server or vLLM: ``/v1/models``, ``/v1/chat/completions`` and
``/v1/completions``, whole or streamed in small deltas (4 characters by default, so anything
longer is split across chunks). Tests set ``reply`` (the text), ``status``, ``delay_s`` (before
answering), ``chunk_delay_s``, ``hang_after`` (stop sending after N chunks without closing) and
read back what it received and whether a stream was abandoned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse


class FakeUpstream:
    def __init__(self, model_id: str = "fake-model") -> None:
        self.model_id = model_id
        self.models_payload: dict[str, Any] | None = None
        self.reply = "Hello from the fake model."
        self.status = 200
        self.error_body: bytes | None = None
        self.delay_s = 0.0
        self.chunk_size = 4
        self.chunk_delay_s = 0.0
        self.hang_after: int | None = None
        self.break_after: int | None = None
        self.send_usage = True
        self.requests: list[dict[str, Any]] = []
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_abandoned = 0
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> Response:
            payload = self.models_payload or {
                "object": "list",
                "data": [{"id": self.model_id, "object": "model", "owned_by": "fake"}],
            }
            return Response(json.dumps(payload), media_type="application/json")

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            return await self._answer(request, chat=True)

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            return await self._answer(request, chat=False)

        return app

    async def _answer(self, request: Request, *, chat: bool) -> Response:
        body = json.loads(await request.body())
        self.requests.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            content = (
                self.error_body
                or json.dumps(
                    {"error": {"message": "fake failure", "type": "server_error", "code": None}}
                ).encode()
            )
            return Response(content, status_code=self.status, media_type="application/json")
        n = int(body.get("n") or 1)
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                self._stream(body, chat=chat, n=n, usage=usage), media_type="text/event-stream"
            )
        choices: list[dict[str, Any]] = []
        for i in range(n):
            if chat:
                message = {"role": "assistant", "content": self.reply}
                choices.append({"index": i, "message": message, "finish_reason": "stop"})
            else:
                choices.append(
                    {"index": i, "text": self.reply, "finish_reason": "stop", "logprobs": None}
                )
        doc = {
            "id": "cmpl-fake",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": choices,
            "usage": {
                "prompt_tokens": 7,
                "completion_tokens": 5 * n,
                "total_tokens": 7 + 5 * n,
            },
        }
        return Response(json.dumps(doc), media_type="application/json")

    async def _stream(
        self, body: dict[str, Any], *, chat: bool, n: int, usage: bool
    ) -> AsyncIterator[bytes]:
        self.streams_started += 1
        completed = False
        try:
            pieces = [
                self.reply[i : i + self.chunk_size]
                for i in range(0, len(self.reply), self.chunk_size)
            ]
            base = {
                "id": "chatcmpl-fake" if chat else "cmpl-fake",
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()),
                "model": body.get("model"),
            }
            if chat:
                first = [
                    {"index": i, "delta": {"role": "assistant"}, "finish_reason": None}
                    for i in range(n)
                ]
                yield _frame({**base, "choices": first})
            for sent, piece in enumerate(pieces):
                if self.hang_after is not None and sent >= self.hang_after:
                    await asyncio.sleep(3600)
                if self.break_after is not None and sent >= self.break_after:
                    raise RuntimeError("the fake upstream breaks the stream")
                for i in range(n):
                    if chat:
                        choice: dict[str, Any] = {
                            "index": i,
                            "delta": {"content": piece},
                            "finish_reason": None,
                        }
                    else:
                        choice = {"index": i, "text": piece, "finish_reason": None}
                    yield _frame({**base, "choices": [choice]})
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            final: list[dict[str, Any]] = []
            for i in range(n):
                if chat:
                    final.append({"index": i, "delta": {}, "finish_reason": "stop"})
                else:
                    final.append({"index": i, "text": "", "finish_reason": "stop"})
            yield _frame({**base, "choices": final})
            if usage and self.send_usage:
                counted = {
                    "prompt_tokens": 7,
                    "completion_tokens": len(pieces) * n,
                    "total_tokens": 7 + len(pieces) * n,
                }
                yield _frame({**base, "choices": [], "usage": counted})
            yield b"data: [DONE]\n\n"
            completed = True
            self.streams_completed += 1
        finally:
            if not completed:
                self.streams_abandoned += 1


def _frame(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc).encode() + b"\n\n"
