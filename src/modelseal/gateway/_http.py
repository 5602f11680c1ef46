"""A minimal HTTP/1.1 keep-alive client for the upstream model server (plain ``http://`` only).

:class:`RawUpstream` implements :class:`~modelseal.gateway.upstream.Upstream` on asyncio
protocols (``loop.create_connection``) and httptools' response parser, without the layers a
general client needs (cookies, redirects, proxies, compression, multipart, tracing). aiohttp's
``ClientSession.post`` was about a fifth of the gateway's CPU per request; this client does the
same work for a fraction of that.

What it does:

- a pool of idle keep-alive connections, reused last-in first-out; at most ``max_connections``
  open at once; callers that find none free wait in a first-come first-served queue;
- bodies framed by ``Content-Length``, chunked transfer encoding (decoded by httptools) or the
  end of the connection; ``Connection: close`` and HTTP/1.0 answers are not reused, nor is a
  connection whose answer was not read to the end (closing a stream early closes its socket, which
  tells the upstream to stop generating);
- a connect timeout, and a read timeout that bounds the wait for each next piece of the answer
  (not the whole answer), for whole answers and streams alike: both raise
  :class:`~modelseal.errors.UpstreamError` with status 504;
- every other failure (refused, reset, end of connection mid-answer, malformed answer, an answer
  compressed although no ``Accept-Encoding`` was sent) raises ``UpstreamError`` with status 502;
- a pooled connection that the server closed while it sat idle is retried once on a fresh
  connection, when nothing of the answer had arrived yet.

The response parsing (:class:`ResponseReader`) is separate from the sockets, so it can be fed
arbitrary bytes (``fuzz/fuzz_rawhttp.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

from modelseal.errors import ConfigError, UpstreamError
from modelseal.gateway.upstream import _parse_json

MAX_HEAD_BYTES = 64 * 1024
"""The most bytes an answer's status line and headers may take."""

_HIGH_WATER = 1 << 20  # pause reading a socket when this much body waits unread
_TIMED_OUT = "the upstream model server timed out"


class ResponseReader:
    """One HTTP/1.1 answer, parsed as its bytes come (httptools callbacks).

    ``feed`` and ``feed_eof`` raise :class:`UpstreamError` (502) on anything that is not a
    well-formed answer; the decoded body collects in ``pieces`` (``size`` bytes) until taken.
    """

    __slots__ = (
        "_encoding",
        "_extra",
        "_framed",
        "_head",
        "_interim",
        "_parser",
        "done",
        "headers_done",
        "pieces",
        "received",
        "reusable",
        "size",
        "status",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers_done = False  # the final (non-1xx) answer's headers are in
        self.done = False  # the whole answer is in
        self.reusable = False  # the connection may carry another request afterwards
        self.received = False  # any byte arrived
        self.pieces: list[bytes] = []
        self.size = 0
        self._head = 0
        self._framed = False  # Content-Length or chunked: the end of the connection is an error
        self._encoding: bytes | None = None
        self._interim = False
        self._extra = False

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:
            self._extra = True
            return
        self._framed = False
        self._encoding = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.done:
            return
        key = name.lower()
        if key == b"content-length":
            self._framed = True
        elif key == b"transfer-encoding":
            self._framed = True
            if value.strip().lower() != b"chunked":
                self._encoding = value.strip()
        elif key == b"content-encoding":
            coding = value.strip().lower()
            if coding and coding != b"identity":
                self._encoding = coding

    def on_headers_complete(self) -> None:
        if self.done:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the answer follows
            self._interim = True
            return
        if self._encoding is not None:
            coding = self._encoding.decode("latin-1")
            raise UpstreamError(
                f"the upstream sent a {coding!r}-encoded answer although none was asked for"
            )
        self.status = status
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.done or not body:
            return
        self.pieces.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        if self.done:
            return
        if self._interim:
            self._interim = False
            return
        self.done = True
        self.reusable = self._parser.should_keep_alive()

    # -- input ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse the next bytes of the connection."""
        if not data:
            return
        self.received = True
        if not self.headers_done:
            self._head += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, UpstreamError):
                raise exc.__context__ from None
            raise UpstreamError(f"the upstream sent a malformed HTTP answer ({exc})") from None
        except httptools.HttpParserError as exc:
            if self.done:  # junk after a complete answer
                self.reusable = False
                return
            raise UpstreamError(f"the upstream sent a malformed HTTP answer ({exc})") from None
        except httptools.HttpParserUpgrade:
            if not self.done:
                raise UpstreamError("the upstream switched protocols") from None
        if self._extra:
            self.reusable = False
        if not self.headers_done and self._head > MAX_HEAD_BYTES:
            raise UpstreamError(f"the upstream's answer headers exceed {MAX_HEAD_BYTES} bytes")

    def feed_eof(self, reason: BaseException | None = None) -> None:
        """The connection ended: a body framed by the end of the connection is complete."""
        if self.done:
            return
        if self.headers_done and not self._framed:
            self.done = True
            self.reusable = False
            return
        why = f" ({_describe(reason)})" if reason is not None else ""
        if not self.received:
            raise UpstreamError(f"the upstream closed the connection without answering{why}")
        raise UpstreamError(f"the upstream closed the connection mid-answer{why}")

    def take(self) -> list[bytes]:
        """The body pieces received since the last call."""
        pieces = self.pieces
        self.pieces = []
        self.size = 0
        return pieces


class _Connection(asyncio.Protocol):
    """One socket to the upstream; carries one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: RawUpstream) -> None:
        self.loop = loop
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.reader: ResponseReader | None = None
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[bool] | None = None
        self.closed = False
        self.idle = False  # in the pool's idle list
        self.slot = True  # counts against max_connections
        self.paused = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None or reader.done:  # bytes nobody asked for
            if reader is not None:
                reader.reusable = False
            self.close()
            return
        try:
            reader.feed(data)
        except UpstreamError as exc:
            self.error = exc
            self.close()
        if reader.size > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake(True)

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)
        if self.idle:
            self.pool._forget(self)

    # -- use ------------------------------------------------------------------------------

    def _ended(self, exc: BaseException | None) -> None:
        reader = self.reader
        if reader is not None and not reader.done and self.error is None:
            try:
                reader.feed_eof(exc)
            except UpstreamError as error:
                self.error = error
        self._wake(True)

    def _wake(self, value: bool) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(value)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def start(self, request: bytes) -> ResponseReader:
        assert self.transport is not None
        self.error = None
        self.reader = reader = ResponseReader()
        self.transport.write(request)
        return reader

    async def wait(self, timeout_s: float) -> bool:
        """Wait for the next event on the connection; False after ``timeout_s`` without one."""
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self.waiter = waiter
        timer = self.loop.call_later(timeout_s, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            if self.waiter is waiter:
                self.waiter = None

    def take(self) -> list[bytes]:
        assert self.reader is not None
        pieces = self.reader.take()
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return pieces

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class RawUpstream:
    """The upstream client on raw asyncio connections (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 512,
        api_key: str | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base[: -len("/v1")] if base.endswith("/v1") else base
        try:
            parts = urlsplit(self.base_url)
            port = parts.port or 80
        except ValueError as exc:
            raise ConfigError(f"the upstream URL {base_url!r} is not valid: {exc}") from None
        if parts.scheme != "http":
            raise ConfigError(
                f"RawUpstream speaks plain http:// only, not {base_url!r}; "
                "use AiohttpUpstream (open_upstream picks it for https://)"
            )
        if not parts.hostname:
            raise ConfigError(f"the upstream URL {base_url!r} names no host")
        if parts.query or parts.fragment:
            raise ConfigError(f"the upstream URL {base_url!r} has a query or fragment")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, not {max_connections}")
        if api_key is not None and any(c in api_key for c in "\r\n\0"):
            raise ConfigError("the upstream API key contains a line break")
        self._host = parts.hostname
        self._port = port
        self._prefix = parts.path.rstrip("/").encode()
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max = max_connections
        host = parts.netloc.rpartition("@")[2]
        auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self._get_head = f"Host: {host}\r\nAccept: application/json\r\n{auth}\r\n".encode()
        self._post_head = (
            f"Host: {host}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
            f"{auth}Content-Length: "
        ).encode()
        self._idle: list[_Connection] = []
        self._conns: set[_Connection] = set()
        self._open = 0  # connections holding a slot (connecting, idle or in use)
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- Upstream -------------------------------------------------------------------------

    async def get_json(self, path: str, *, timeout_s: float | None = None) -> Any:
        request = b"GET " + self._target(path) + b" HTTP/1.1\r\n" + self._get_head
        try:
            if timeout_s is None:
                status, content = await self._exchange(request)
            else:
                async with asyncio.timeout(timeout_s):
                    status, content = await self._exchange(request)
        except TimeoutError:
            raise UpstreamError(
                f"the upstream did not answer GET {path} in time", status=504
            ) from None
        except UpstreamError as exc:
            if exc.status == 504:
                raise UpstreamError(
                    f"the upstream did not answer GET {path} in time", status=504
                ) from None
            raise UpstreamError(f"the upstream failed on GET {path}: {exc.message}") from None
        return _parse_json(path, status, content)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return await self._exchange(self._post(path, body))

    async def open_stream(self, path: str, body: bytes) -> _RawStream:
        conn = await self._send(self._post(path, body))
        return _RawStream(self, conn)

    async def close(self) -> None:
        """Close every connection; waiting callers fail. The client may be used again."""
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamError("the upstream client was closed"))
        self._idle.clear()
        for conn in list(self._conns):
            conn.idle = False
            self._discard(conn)

    # -- requests -------------------------------------------------------------------------

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        conn = await self._send(request)
        assert conn.reader is not None
        status = conn.reader.status
        return status, await self._collect(conn)

    def _target(self, path: str) -> bytes:
        target = self._prefix + path.encode("ascii", "strict")
        if not target.startswith(b"/") or any(c in target for c in b" \r\n\t\0"):
            raise UpstreamError(f"the upstream path {path!r} is not a valid request target")
        return target

    def _post(self, path: str, body: bytes) -> bytes:
        return b"".join(
            (
                b"POST ",
                self._target(path),
                b" HTTP/1.1\r\n",
                self._post_head,
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )

    async def _send(self, request: bytes) -> _Connection:
        """Send ``request`` and wait for the answer's headers; the connection is then the
        caller's, to be finished with :meth:`_collect`, :meth:`_finish` or :meth:`_discard`."""
        for attempt in range(2):
            conn, reused = await self._acquire()
            sent = False
            reader = conn.start(request)
            try:
                while not reader.headers_done:
                    if conn.error is not None:
                        raise conn.error
                    if not await conn.wait(self._timeout_s):
                        raise UpstreamError(_TIMED_OUT, status=504)
                sent = True
                return conn
            except UpstreamError as exc:
                stale = reused and not reader.received and exc.status == 502
                if stale and attempt == 0:
                    continue  # the server closed the idle connection as we reused it
                raise
            finally:
                if not sent:
                    self._discard(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _collect(self, conn: _Connection) -> bytes:
        """Read the rest of the answer on ``conn`` and finish with the connection."""
        reader = conn.reader
        assert reader is not None
        finished = False
        parts: list[bytes] = []
        try:
            while True:
                if reader.pieces:
                    parts.extend(conn.take())
                if reader.done:
                    break
                if conn.error is not None:
                    raise conn.error
                if not await conn.wait(self._timeout_s):
                    raise UpstreamError(_TIMED_OUT, status=504)
            finished = True
        finally:
            if finished:
                self._finish(conn)
            else:
                self._discard(conn)
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    # -- the pool -------------------------------------------------------------------------

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if conn.usable():
                return conn, True
            self._discard(conn)
        if self._open < self._max:
            self._open += 1
            return await self._connect(), False
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            got = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._finish(handed)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        if got is None:  # a slot was handed over: open a connection in it
            return await self._connect(), False
        if got.usable():
            return got, True
        self._discard(got)
        return await self._acquire()

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Used from another event loop than before: what belonged to the old one is dropped."""
        for conn in self._conns:
            conn.slot = conn.idle = False
            with contextlib.suppress(RuntimeError):  # the old loop may be closed
                conn.close()
        self._idle = []
        self._conns = set()
        self._open = 0
        self._waiters = deque()
        self._loop = loop

    async def _connect(self) -> _Connection:
        """Open a connection in a slot already counted in ``_open``."""
        loop = asyncio.get_running_loop()
        connected = False
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, self), self._host, self._port
                )
            connected = True
        except TimeoutError:
            raise UpstreamError(
                f"could not connect to the upstream model server at {self.base_url} in time",
                status=504,
            ) from None
        except OSError as exc:
            raise UpstreamError(
                f"could not connect to the upstream model server at {self.base_url}: "
                f"{_describe(exc)}"
            ) from None
        finally:
            if not connected:
                self._free_slot()
        self._conns.add(conn)
        return conn

    def _finish(self, conn: _Connection) -> None:
        """A connection whose answer was read to the end: back to the pool, or closed."""
        reader = conn.reader
        if reader is None or not reader.done or not reader.reusable or not conn.usable():
            self._discard(conn)
            return
        conn.reader = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        self._idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        """Close a connection and give up its slot."""
        conn.close()
        self._conns.discard(conn)
        if conn.slot:
            conn.slot = False
            self._free_slot()

    def _forget(self, conn: _Connection) -> None:
        """An idle connection that the server closed."""
        conn.idle = False
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        self._discard(conn)

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the first waiting caller
                return
        self._open -= 1


class _RawStream:
    """An answer whose headers are in; the body is read as it comes."""

    def __init__(self, pool: RawUpstream, conn: _Connection) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        assert conn.reader is not None
        self._status = conn.reader.status

    @property
    def status(self) -> int:
        return self._status

    async def read(self) -> bytes:
        conn = self._conn
        if conn is None:
            return b""
        self._conn = None
        return await self._pool._collect(conn)

    async def chunks(self) -> AsyncIterator[bytes]:
        pool = self._pool
        timeout_s = pool._timeout_s
        while True:
            conn = self._conn
            if conn is None:
                return
            reader = conn.reader
            assert reader is not None
            done = reader.done
            error = conn.error
            pieces = conn.take()
            for piece in pieces:
                yield piece
                if self._conn is None:  # closed while the caller held a piece
                    return
            if done:
                self._conn = None
                pool._finish(conn)
                return
            if error is not None:
                self._conn = None
                pool._discard(conn)
                raise UpstreamError(f"the upstream stream broke: {error.message}")
            if not pieces and not await conn.wait(timeout_s):
                self._conn = None
                pool._discard(conn)
                raise UpstreamError(
                    "the upstream model server stopped sending (timeout)", status=504
                )

    async def close(self) -> None:
        # a stream not read to the end drops its connection: the upstream stops generating
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._pool._discard(conn)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
