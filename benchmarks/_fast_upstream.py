"""A fast fake OpenAI-compatible model server for the gateway benchmark (stdlib only).

A raw asyncio HTTP/1.1 keep-alive server (an ``asyncio.Protocol``, no framework) that answers
at once with fixed bytes, so it is never what a benchmark measures:

- ``GET /v1/models``: one model, ``bench-model`` (``--model``);
- ``POST /v1/chat/completions``: a fixed small chat completion (with ``usage``);
- ``POST /v1/completions``: a fixed small text completion;
- anything else: 404 with an OpenAI-shaped error.

Requests may be pipelined; bodies are read by ``Content-Length`` (chunked request bodies are
refused with 411, no client here sends them). The answer's ``id`` is fixed: the benchmark needs
the same bytes each time, not unique ids.

Run: ``python benchmarks/_fast_upstream.py --port 0``: prints ``listening on PORT`` on stdout once
it accepts connections, then serves until SIGTERM/SIGINT. Uses uvloop when it is importable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

CHAT_TEXT = "Hello! This is a short, fixed answer from the benchmark upstream."


def _chat(model: str) -> bytes:
    doc = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": CHAT_TEXT},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 24, "completion_tokens": 14, "total_tokens": 38},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _text(model: str) -> bytes:
    doc = {
        "id": "cmpl-bench",
        "object": "text_completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "text": CHAT_TEXT, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 14, "total_tokens": 22},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _models(model: str) -> bytes:
    doc = {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "bench"}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def build_routes(model: str) -> dict[tuple[bytes, bytes], bytes]:
    return {
        (b"GET", b"/v1/models"): _response("200 OK", _models(model)),
        (b"POST", b"/v1/chat/completions"): _response("200 OK", _chat(model)),
        (b"POST", b"/chat/completions"): _response("200 OK", _chat(model)),
        (b"POST", b"/v1/completions"): _response("200 OK", _text(model)),
        (b"POST", b"/completions"): _response("200 OK", _text(model)),
    }


NOT_FOUND = _response(
    "404 Not Found",
    b'{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}',
)
LENGTH_REQUIRED = _response(
    "411 Length Required",
    b'{"error":{"message":"content-length required","type":"invalid_request_error",'
    b'"param":null,"code":null}}',
)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, routes: dict[tuple[bytes, bytes], bytes]) -> None:
        self.routes = routes
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            parts = request_line.split(b" ")
            method = parts[0]
            path = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
            length = 0
            close = False
            for header in head[line_end + 2 :].split(b"\r\n") if line_end >= 0 else ():
                name, _, value = header.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value.strip())
                elif lname == b"transfer-encoding":
                    self._finish([*out, LENGTH_REQUIRED])
                    return
                elif lname == b"connection" and value.strip().lower() == b"close":
                    close = True
            total = end + 4 + length
            if len(buf) < total:
                break
            buf = buf[total:]
            out.append(self.routes.get((method, path), NOT_FOUND))
            if close:
                self._finish(out)
                return
        self.buf = buf
        if out:
            assert self.transport is not None
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _finish(self, out: list[bytes]) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(out))
        self.transport.close()


async def serve(host: str, port: int, model: str) -> None:
    loop = asyncio.get_running_loop()
    routes = build_routes(model)
    server = await loop.create_server(
        lambda: UpstreamProtocol(routes), host, port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening on {bound}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="bench-model")
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, args.model))


if __name__ == "__main__":
    main()
