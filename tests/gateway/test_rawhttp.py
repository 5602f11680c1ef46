"""RawUpstream, the gateway's own HTTP/1.1 client, over real sockets on 127.0.0.1.

Most tests run a raw asyncio server in the test's own event loop, scripted per test, so edge
cases (stalls, early ends, stale connections, odd framing) are exact; a few run the uvicorn fake
upstream (tests/gateway/fakes.py) to check the client against a real ASGI server.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import ConfigError, UpstreamError
from modelseal.gateway._http import MAX_HEAD_BYTES, RawUpstream, ResponseReader
from modelseal.gateway.sse import SseParser
from modelseal.gateway.upstream import AiohttpUpstream, UpstreamStream, open_upstream
from tests.gateway.fakes import FakeUpstream
from tests.tlog.test_server import serving

pytestmark = pytest.mark.anyio

PATH = "/v1/chat/completions"
Handler = Callable[["Conn"], Awaitable[None]]


# -- a scriptable raw server --------------------------------------------------------------------


@dataclass
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def request(self) -> bytes | None:
        """The next request (head and Content-Length body), or None at the end of the stream."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head + await self.reader.readexactly(length)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def disconnected(self) -> bool:
        """True when the client closed its end (read returns EOF or the socket resets)."""
        try:
            return await self.reader.read(1 << 16) == b""
        except ConnectionError:
            return True


@dataclass
class Server:
    url: str
    connections: int = 0
    open_now: int = 0
    max_open: int = 0
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[Server]:
    state = Server("")

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        state.open_now += 1
        state.max_open = max(state.max_open, state.open_now)
        try:
            await handler(Conn(reader, writer))
        except ConnectionError:
            pass
        finally:
            state.open_now -= 1
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        server.close()


def response(body: bytes, *, status: str = "200 OK", extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def chunked(pieces: list[bytes], *, extra: str = "") -> bytes:
    out = [f"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{extra}\r\n".encode()]
    for piece in pieces:
        if piece:
            out.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def echo_server(reply: Callable[[bytes], bytes]) -> Handler:
    """Answers every request on the connection with ``reply(request)``."""

    async def handle(conn: Conn) -> None:
        while (request := await conn.request()) is not None:
            await conn.send(reply(request))

    return handle


async def drain(stream: UpstreamStream, into: list[bytes]) -> None:
    async for chunk in stream.chunks():
        into.append(chunk)


ANSWER = b'{"ok": true}'


# -- whole answers ------------------------------------------------------------------------------


async def test_content_length_answer_and_the_request_it_sends() -> None:
    seen: list[bytes] = []

    def reply(request: bytes) -> bytes:
        seen.append(request)
        return response(ANSWER)

    async with raw_server(echo_server(reply)) as server:
        client = RawUpstream(server.url + "/v1", api_key="sk-test")
        try:
            assert await client.post(PATH, b'{"a": 1}') == (200, ANSWER)
        finally:
            await client.close()
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    assert headers[b"host"] == server.url.removeprefix("http://").encode()
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == b"8"
    assert headers[b"authorization"] == b"Bearer sk-test"
    assert b"accept-encoding" not in headers
    assert body == b'{"a": 1}'


async def test_chunked_answer_is_decoded() -> None:
    pieces = [b'{"choices"', b": [", b"]}"]
    async with raw_server(echo_server(lambda _: chunked(pieces))) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.post(PATH, b"{}") == (200, b"".join(pieces))
            assert await client.post(PATH, b"{}") == (200, b"".join(pieces))
        finally:
            await client.close()
    assert server.connections == 1  # a chunked answer read to the end keeps the connection


async def test_close_delimited_answer() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + ANSWER)

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.post(PATH, b"{}") == (200, ANSWER)
            assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()
    assert server.connections == 2  # the end of the connection ended the answer


async def test_error_status_is_returned_with_its_body() -> None:
    doc = b'{"error": {"message": "bad"}}'
    async with raw_server(echo_server(lambda _: response(doc, status="400 Bad"))) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.post(PATH, b"{}") == (400, doc)
            stream = await client.open_stream(PATH, b"{}")
            assert stream.status == 400
            assert await stream.read() == doc
            await stream.close()
        finally:
            await client.close()
    assert server.connections == 1


async def test_interim_1xx_answer_is_skipped() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n"
    async with raw_server(echo_server(lambda _: early + response(ANSWER))) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()


async def test_large_answers_survive_flow_control() -> None:
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB, above the pause threshold
    async with raw_server(echo_server(lambda _: response(big))) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.post(PATH, b"{}") == (200, big)
            stream = await client.open_stream(PATH, b"{}")
            got = bytearray()
            async for chunk in stream.chunks():
                got += chunk
                await asyncio.sleep(0)
            assert bytes(got) == big
            await stream.close()
        finally:
            await client.close()
    assert server.connections == 1


async def test_get_json() -> None:
    models = json.dumps({"object": "list", "data": [{"id": "m"}]}).encode()
    seen: list[bytes] = []

    def reply(request: bytes) -> bytes:
        seen.append(request)
        return response(models)

    async with raw_server(echo_server(reply)) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.get_json("/v1/models") == json.loads(models)
            assert await client.get_json("/v1/models", timeout_s=5) == json.loads(models)
        finally:
            await client.close()
    assert seen[0].startswith(b"GET /v1/models HTTP/1.1\r\n")
    assert b"content-length" not in seen[0].lower()


async def test_get_json_total_timeout_is_504() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await asyncio.sleep(30)

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            with pytest.raises(UpstreamError) as err:
                await client.get_json("/v1/models", timeout_s=0.2)
        finally:
            await client.close()
    assert err.value.status == 504


# -- keep-alive and connection reuse ------------------------------------------------------------


async def test_keep_alive_reuses_one_connection() -> None:
    async with raw_server(echo_server(lambda _: response(ANSWER))) as server:
        client = RawUpstream(server.url)
        try:
            for _ in range(5):
                assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()
    assert server.connections == 1


async def test_connection_close_is_honoured() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(response(ANSWER, extra="connection: close\r\n"))
        await asyncio.sleep(30)  # keep it open: the client must close and not reuse it

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            for _ in range(3):
                assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()
    assert server.connections == 3


async def test_http_10_answers_are_not_reused() -> None:
    async def handle(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.send(b"HTTP/1.0 200 OK\r\ncontent-length: 12\r\n\r\n" + ANSWER)

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            for _ in range(3):
                assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()
    assert server.connections == 3


async def test_idle_connection_closed_by_the_server_is_dropped() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(response(ANSWER))  # keep-alive, then close while idle

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.post(PATH, b"{}") == (200, ANSWER)
            await asyncio.sleep(0.05)
            assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()
    assert server.connections == 2


async def test_stale_connection_is_retried_once_on_a_fresh_one() -> None:
    # the server takes the second request on the reused connection, then closes without a byte:
    # what a keep-alive timeout racing the request looks like
    async def handle(conn: Conn) -> None:
        first = server.connections == 1
        await conn.request()
        await conn.send(response(ANSWER))
        if first:
            await conn.request()

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            assert await client.post(PATH, b"{}") == (200, ANSWER)
            assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()
    assert server.connections == 2


async def test_fresh_connection_closed_without_answer_is_not_retried() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            with pytest.raises(UpstreamError, match="without answering") as err:
                await client.post(PATH, b"{}")
        finally:
            await client.close()
    assert err.value.status == 502
    assert server.connections == 1


async def test_max_connections_under_200_concurrent_requests() -> None:
    async def handle(conn: Conn) -> None:
        while await conn.request() is not None:
            await asyncio.sleep(0.002)
            await conn.send(response(ANSWER))

    async with raw_server(handle) as server:
        client = RawUpstream(server.url, max_connections=8)
        try:
            results = await asyncio.gather(*(client.post(PATH, b"{}") for _ in range(200)))
        finally:
            await client.close()
    assert results == [(200, ANSWER)] * 200
    assert server.max_open <= 8
    assert server.connections <= 8
    assert server.max_open >= 2  # they did overlap


async def test_cancelled_waiters_do_not_leak_slots() -> None:
    release = asyncio.Event()

    async def handle(conn: Conn) -> None:
        while await conn.request() is not None:
            await release.wait()
            await conn.send(response(ANSWER))

    async with raw_server(handle) as server:
        client = RawUpstream(server.url, max_connections=2)
        try:
            busy = [asyncio.create_task(client.post(PATH, b"{}")) for _ in range(2)]
            waiting = [asyncio.create_task(client.post(PATH, b"{}")) for _ in range(5)]
            await asyncio.sleep(0.05)
            for task in waiting:
                task.cancel()
            release.set()
            assert await asyncio.gather(*busy) == [(200, ANSWER)] * 2
            assert (
                await asyncio.gather(*(client.post(PATH, b"{}") for _ in range(6)))
                == [(200, ANSWER)] * 6
            )
        finally:
            await client.close()
    assert all(task.cancelled() for task in waiting)
    assert server.max_open <= 2


# -- streams ------------------------------------------------------------------------------------


async def test_stream_chunks_arrive_before_the_end() -> None:
    got_first = asyncio.Event()

    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await conn.send(b"d\r\ndata: first\n\n\r\n")
        await got_first.wait()  # the rest only once the client has the first event
        await conn.send(b"c\r\ndata: last\n\n\r\n0\r\n\r\n")

    async with raw_server(handle) as server:
        client = RawUpstream(server.url, timeout_s=10)
        try:
            stream = await client.open_stream(PATH, b"{}")
            assert stream.status == 200
            parser = SseParser()
            data: list[str] = []
            async with asyncio.timeout(10):
                async for chunk in stream.chunks():
                    data.extend(event.data for event in parser.feed(chunk))
                    if data == ["first"]:
                        got_first.set()
            await stream.close()
        finally:
            await client.close()
    assert data == ["first", "last"]


async def test_stream_against_the_uvicorn_fake() -> None:
    fake = FakeUpstream("m")
    fake.reply = "A streamed answer, in many small deltas."
    with serving(fake.app) as url:
        client = RawUpstream(url + "/v1")
        try:
            body = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
            for _ in range(2):
                stream = await client.open_stream(PATH, body)
                assert stream.status == 200
                parser = SseParser()
                text = ""
                async for chunk in stream.chunks():
                    for event in parser.feed(chunk):
                        if event.data != "[DONE]":
                            for choice in json.loads(event.data)["choices"]:
                                text += choice["delta"].get("content") or ""
                await stream.close()
                assert text == fake.reply
            whole = json.dumps({"model": "m", "messages": []}).encode()
            status, content = await client.post(PATH, whole)
            assert status == 200
            assert json.loads(content)["choices"][0]["message"]["content"] == fake.reply
            assert (await client.get_json("/v1/models"))["data"][0]["id"] == "m"
        finally:
            await client.close()
    assert fake.streams_completed == 2


async def test_read_timeout_on_a_stalled_stream_is_504() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(30)

    async with raw_server(handle) as server:
        client = RawUpstream(server.url, timeout_s=0.2)
        try:
            stream = await client.open_stream(PATH, b"{}")
            got: list[bytes] = []
            async with asyncio.timeout(10):
                with pytest.raises(UpstreamError) as err:
                    await drain(stream, got)
            await stream.close()
        finally:
            await client.close()
    assert got == [b"hello"]
    assert err.value.status == 504


async def test_read_timeout_on_a_stalled_whole_answer_is_504() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await asyncio.sleep(30)

    async with raw_server(handle) as server:
        client = RawUpstream(server.url, timeout_s=0.2)
        try:
            async with asyncio.timeout(10):
                with pytest.raises(UpstreamError) as err:
                    await client.post(PATH, b"{}")
        finally:
            await client.close()
    assert err.value.status == 504


async def test_read_timeout_bounds_the_gap_between_bytes_not_the_total() -> None:
    body = b"x" * 12

    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n")
        for i in range(12):  # 0.6 s in all, a byte every 0.05 s; the timeout is 0.4 s
            await asyncio.sleep(0.05)
            await conn.send(body[i : i + 1])

    async with raw_server(handle) as server:
        client = RawUpstream(server.url, timeout_s=0.4)
        try:
            assert await client.post(PATH, b"{}") == (200, body)
        finally:
            await client.close()


async def test_early_stream_close_closes_the_socket() -> None:
    disconnected = asyncio.Event()

    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        if await conn.disconnected():
            disconnected.set()

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            stream = await client.open_stream(PATH, b"{}")
            async for chunk in stream.chunks():
                assert chunk == b"hello"
                break
            await stream.close()
            async with asyncio.timeout(10):
                await disconnected.wait()
            assert client._open == 0
        finally:
            await client.close()


async def test_early_stream_close_stops_the_uvicorn_fake() -> None:
    fake = FakeUpstream("m")
    fake.reply = "x" * 400
    fake.chunk_delay_s = 0.01
    with serving(fake.app) as url:
        client = RawUpstream(url)
        try:
            body = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
            stream = await client.open_stream(PATH, body)
            async for _ in stream.chunks():
                break
            await stream.close()
            async with asyncio.timeout(10):
                while fake.streams_abandoned == 0:
                    await asyncio.sleep(0.02)
        finally:
            await client.close()
    assert fake.streams_completed == 0


# -- failures -----------------------------------------------------------------------------------


async def test_connection_refused_is_502() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = RawUpstream(f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamError, match="could not connect") as err:
        await client.post(PATH, b"{}")
    assert err.value.status == 502
    assert client._open == 0
    await client.close()


async def test_eof_mid_body_is_502() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            with pytest.raises(UpstreamError, match="mid-answer") as err:
                await client.post(PATH, b"{}")
        finally:
            await client.close()
    assert err.value.status == 502


async def test_eof_mid_chunked_stream_is_502_after_the_data() -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            stream = await client.open_stream(PATH, b"{}")
            got: list[bytes] = []
            with pytest.raises(UpstreamError, match="stream broke") as err:
                await drain(stream, got)
            await stream.close()
        finally:
            await client.close()
    assert got == [b"hello"]
    assert err.value.status == 502


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 2\r\n\r\nxx", "gzip"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "gzip"),
        (b"NOT HTTP AT ALL\r\n\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: zz\r\n\r\n", "malformed"),
        (b"HTTP/1.1 101 Switching\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n", "switched"),
        (b"HTTP/1.1 200 OK\r\nx: " + b"a" * MAX_HEAD_BYTES, "exceed"),
    ],
)
async def test_bad_answers_are_502(answer: bytes, message: str) -> None:
    async def handle(conn: Conn) -> None:
        await conn.request()
        await conn.send(answer)
        await asyncio.sleep(30)

    async with raw_server(handle) as server:
        client = RawUpstream(server.url)
        try:
            with pytest.raises(UpstreamError, match=message) as err:
                await client.post(PATH, b"{}")
        finally:
            await client.close()
    assert err.value.status == 502
    assert client._open == 0


async def test_bytes_after_the_answer_prevent_reuse() -> None:
    async with raw_server(echo_server(lambda _: response(ANSWER) + b"junk")) as server:
        client = RawUpstream(server.url)
        try:
            for _ in range(2):
                assert await client.post(PATH, b"{}") == (200, ANSWER)
        finally:
            await client.close()
    assert server.connections == 2


async def test_connect_timeout_is_504(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def never(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(loop, "create_connection", never)
    client = RawUpstream("http://127.0.0.1:9", connect_timeout_s=0.1)
    with pytest.raises(UpstreamError, match="in time") as err:
        await client.post(PATH, b"{}")
    assert err.value.status == 504
    assert client._open == 0


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://up.example", "ftp://up.example", "http://", "http://h:99999", "http://h/?q=1"]
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        RawUpstream(url)


def test_refused_options() -> None:
    with pytest.raises(ConfigError, match="max_connections"):
        RawUpstream("http://h", max_connections=0)
    with pytest.raises(ConfigError, match="line break"):
        RawUpstream("http://h", api_key="a\r\nx-evil: 1")


def test_base_url_and_prefix() -> None:
    assert RawUpstream("http://h:8000/v1/").base_url == "http://h:8000"
    client = RawUpstream("http://h:8000/api/v1")
    assert client._target(PATH) == b"/api/v1/chat/completions"
    with pytest.raises(UpstreamError):
        client._target("/v1/x y")


def test_open_upstream_picks_the_raw_client_for_http_only() -> None:
    assert isinstance(open_upstream("http://127.0.0.1:8000/v1"), RawUpstream)
    assert isinstance(open_upstream("https://up.example/v1"), AiohttpUpstream)


# -- parsing properties -------------------------------------------------------------------------


def _parse(pieces: list[bytes]) -> tuple[int, bytes, bool]:
    reader = ResponseReader()
    for piece in pieces:
        reader.feed(piece)
    reader.feed_eof()
    return reader.status, b"".join(reader.take()), reader.reusable


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


bodies = st.lists(st.binary(min_size=1, max_size=64), min_size=0, max_size=8)


@settings(max_examples=200, deadline=None)
@given(pieces=bodies, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_split_of_a_chunked_answer_parses_to_the_same_body(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = chunked(pieces)
    assert _parse(_split(data, cuts)) == (200, b"".join(pieces), True)
    assert _parse([data[i : i + 1] for i in range(len(data))]) == (200, b"".join(pieces), True)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pieces=bodies, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_any_split_into_tcp_writes_reads_the_same_body(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = chunked(pieces)
    writes = _split(data, cuts)

    async def handle(conn: Conn) -> None:
        while await conn.request() is not None:
            for write in writes:
                await conn.send(write)
                await asyncio.sleep(0)

    async def main() -> tuple[tuple[int, bytes], bytes, int]:
        async with raw_server(handle) as server:
            client = RawUpstream(server.url)
            try:
                whole = await client.post(PATH, b"{}")
                stream = await client.open_stream(PATH, b"{}")
                streamed = b"".join([chunk async for chunk in stream.chunks()])
                await stream.close()
            finally:
                await client.close()
        return whole, streamed, server.connections

    whole, streamed, connections = asyncio.run(main())
    assert whole == (200, b"".join(pieces))
    assert streamed == b"".join(pieces)
    assert connections == 1


def test_a_client_moves_to_a_new_event_loop() -> None:
    async def use(client: RawUpstream) -> tuple[int, bytes]:
        async with raw_server(echo_server(lambda _: response(ANSWER))) as server:
            client.base_url = server.url
            client._port = int(server.url.rsplit(":", 1)[1])
            return await client.post(PATH, b"{}")

    client = RawUpstream("http://127.0.0.1:9")
    assert asyncio.run(use(client)) == (200, ANSWER)  # leaves an idle connection behind
    assert asyncio.run(use(client)) == (200, ANSWER)
