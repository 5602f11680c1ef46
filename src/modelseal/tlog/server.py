"""The log's HTTP API (FastAPI) and the ``python -m modelseal.tlog.server`` entry point.

Routes (errors are JSON ``{"error": "..."}`` with 400, 401 or 404; 503 when storage fails)::

    POST /v1/entries                 {"entry": b64} + X-Modelseal-Signature: b64(sig over entry)
                                     -> {"index", "checkpoint"} once the batch is durable
    GET  /v1/checkpoint              latest signed checkpoint + cosignatures (text/plain)
    GET  /v1/checkpoints/{size}      the checkpoint signed at that size (text/plain)
    GET  /v1/entries/{index}         {"index", "entry": b64}
    GET  /v1/proof/inclusion?leaf_hash=<hex>&tree_size=N  -> {"index", "tree_size", "hashes"}
    GET  /v1/proof/consistency?first=M&second=N           -> {"first", "second", "hashes"}
    POST /v1/cosignatures            {"tree_size": N, "cosignature": line} -> {"witness", ...}
    GET  /healthz                    {"status": "ok", "tree_size": N}

Submissions are signed by a submitter key (Ed25519 or ECDSA P-256) the server is configured
with; a sequencer task batches concurrent submissions (group commit: everything that arrives
while a batch commits goes into the next one) and answers each only after its batch committed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelseal.attest.signers import PublicKey, SignatureError, load_public_key, verify_signature
from modelseal.errors import Error, InputError, VerificationError
from modelseal.tlog.hashing import HASH_SIZE
from modelseal.tlog.log import Log
from modelseal.tlog.note import CosignatureVerifier, NoteSigner
from modelseal.tlog.store import NotFoundError, SequencerBusyError, open_store

SIGNATURE_HEADER = "X-Modelseal-Signature"
DEFAULT_MAX_ENTRY_BYTES = 4 << 20
_NOTE_TYPE = "text/plain; charset=utf-8"


class UnauthorizedError(InputError):
    """A submission without a valid submitter signature."""


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{what} is not valid base64") from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _int_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        raise InputError(f"missing query parameter {name}")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise InputError(f"query parameter {name} must be a non-negative integer")
    return int(raw)


_Pending = tuple[bytes, "asyncio.Future[tuple[int, str]]"]


class Sequencer:
    """Batches submissions into :meth:`Log.append` calls on one worker thread."""

    def __init__(self, log: Log, *, max_batch: int = 1000, max_delay: float = 0.002) -> None:
        self.log = log
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlog-sequencer")

    def _ensure_started(self) -> asyncio.Queue[_Pending]:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))
        return self._queue

    async def submit(self, entry: bytes) -> tuple[int, str]:
        """The index of ``entry`` and the checkpoint of the batch that made it durable."""
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        await self._ensure_started().put((entry, future))
        return await future

    def _append(self, entries: list[bytes]) -> tuple[list[int], str]:
        indices = self.log.append(entries)
        return indices, self.log.latest_note

    async def _run(
        self, queue: asyncio.Queue[tuple[bytes, asyncio.Future[tuple[int, str]]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_delay
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            live = [(e, f) for e, f in batch if not f.done()]
            if not live:
                continue
            try:
                indices, note = await loop.run_in_executor(
                    self._executor, self._append, [e for e, _ in live]
                )
            except Error as exc:
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request as an Error
                failure = Error(f"the log sequencer failed: {type(exc).__name__}: {exc}")
                for _, future in live:
                    if not future.done():
                        future.set_exception(failure)
                continue
            for (_, future), index in zip(live, indices, strict=True):
                if not future.done():
                    future.set_result((index, note))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(Error("the log server is shutting down"))
            self._queue = None
        self._executor.shutdown(wait=True)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    log: Log,
    submitters: Sequence[PublicKey],
    *,
    max_batch: int = 1000,
    max_delay: float = 0.002,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
) -> FastAPI:
    """The HTTP API of ``log``; only ``submitters`` may add entries.

    Witness cosignatures are accepted for the witness keys the :class:`Log` was built with.
    The app does not close ``log``: its owner does, after the server stopped.
    """
    keys = tuple(submitters)
    sequencer = Sequencer(log, max_batch=max_batch, max_delay=max_delay)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sequencer.stop()

    app = FastAPI(title="modelseal transparency log", lifespan=lifespan, openapi_url=None)
    app.state.log = log
    app.state.sequencer = sequencer

    @app.exception_handler(Error)
    async def _modelseal_error(_: Request, exc: Error) -> Response:
        if isinstance(exc, UnauthorizedError):
            return _error(401, exc.message)
        if isinstance(exc, NotFoundError):
            return _error(404, exc.message)
        if isinstance(exc, InputError | VerificationError):
            return _error(400, exc.message)
        return _error(503, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    async def _json_body(request: Request, limit: int) -> dict[str, Any]:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise InputError(f"request body exceeds {limit} bytes")
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InputError("request body is not JSON") from None
        if not isinstance(parsed, dict):
            raise InputError("request body must be a JSON object")
        return parsed

    @app.post("/v1/entries")
    async def submit(request: Request) -> dict[str, Any]:
        header = request.headers.get(SIGNATURE_HEADER)
        if header is None:
            raise UnauthorizedError(f"missing {SIGNATURE_HEADER} header")
        body = await _json_body(request, max_entry_bytes * 4 // 3 + 1024)
        value = body.get("entry")
        if not isinstance(value, str):
            raise InputError('request body needs "entry": base64 string')
        entry = _b64decode(value, "entry")
        if not entry:
            raise InputError("an entry must not be empty")
        if len(entry) > max_entry_bytes:
            raise InputError(f"entry of {len(entry)} bytes exceeds the limit of {max_entry_bytes}")
        try:
            signature = base64.b64decode(header, validate=True)
        except (binascii.Error, ValueError):
            raise UnauthorizedError(f"{SIGNATURE_HEADER} is not valid base64") from None
        for key in keys:
            try:
                verify_signature(key, entry, signature)
            except SignatureError:
                continue
            break
        else:
            raise UnauthorizedError("the entry is not signed by an authorised submitter key")
        index, note = await sequencer.submit(entry)
        return {"index": index, "checkpoint": note}

    @app.get("/v1/checkpoint")
    def checkpoint() -> Response:
        return PlainTextResponse(log.checkpoint(), media_type=_NOTE_TYPE)

    @app.get("/v1/checkpoints/{size}")
    def checkpoint_at(size: str) -> Response:
        if not size.isascii() or not size.isdigit() or len(size) > 20:
            raise InputError("tree size must be a non-negative integer")
        return PlainTextResponse(log.checkpoint_at(int(size)), media_type=_NOTE_TYPE)

    @app.get("/v1/entries/{index}")
    def entry(index: str) -> dict[str, Any]:
        if not index.isascii() or not index.isdigit() or len(index) > 20:
            raise InputError("entry index must be a non-negative integer")
        return {"index": int(index), "entry": _b64(log.entry(int(index)))}

    @app.get("/v1/proof/inclusion")
    def inclusion(request: Request) -> dict[str, Any]:
        raw = request.query_params.get("leaf_hash")
        if raw is None:
            raise InputError("missing query parameter leaf_hash")
        try:
            leaf = bytes.fromhex(raw)
        except ValueError:
            raise InputError("leaf_hash must be hex") from None
        if len(leaf) != HASH_SIZE:
            raise InputError(f"leaf_hash must be {HASH_SIZE} bytes of hex")
        size = log.check_tree_size(_int_param(request, "tree_size"))
        index = log.index_of(leaf)
        if index is None:
            raise NotFoundError("no entry with this leaf hash in the log")
        if index >= size:
            raise NotFoundError(f"the entry has index {index}, not within tree size {size}")
        hashes = log.inclusion_proof(index, size)
        return {"index": index, "tree_size": size, "hashes": [_b64(h) for h in hashes]}

    @app.get("/v1/proof/consistency")
    def consistency(request: Request) -> dict[str, Any]:
        first = _int_param(request, "first")
        second = _int_param(request, "second")
        hashes = log.consistency_proof(first, second)
        return {"first": first, "second": second, "hashes": [_b64(h) for h in hashes]}

    @app.post("/v1/cosignatures")
    async def cosign(request: Request) -> dict[str, Any]:
        body = await _json_body(request, 64 * 1024)
        size = body.get("tree_size")
        line = body.get("cosignature")
        if isinstance(size, bool) or not isinstance(size, int) or not isinstance(line, str):
            raise InputError('request body needs "tree_size": integer and "cosignature": line')
        witness = await asyncio.get_running_loop().run_in_executor(
            None, log.add_cosignature, size, line
        )
        return {"witness": witness, "tree_size": size}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "tree_size": log.size()}

    return app


# -- running it ----------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: any free port; read it from ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


def serve(app: FastAPI, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Run ``app`` with uvicorn on an already bound socket until SIGINT or SIGTERM."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if threading.current_thread() is not threading.main_thread():
        server.run(sockets=[sock])
        return
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    # that was installed before it: make that a no-op so the caller's clean-up (closing the
    # log) runs and the process exits normally.
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signal(signum: int, frame: FrameType | None) -> None:
    """Installed while uvicorn runs; uvicorn itself handles the signal."""


def load_log_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    """The log's Ed25519 private key from a PKCS#8 PEM file (encrypted when a passphrase is
    given). Errors name the file, never the key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the log key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        raise InputError(
            f"the log key {path} is encrypted: set its passphrase"
            if passphrase is None
            else f"the log key {path} is not encrypted but a passphrase was given"
        ) from None
    except ValueError:
        raise InputError(
            f"cannot load the log key {path} (wrong passphrase or not a PEM key)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"the log key {path} is not an Ed25519 key")
    return key


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modelseal.tlog.server", description="Run a modelseal transparency log."
    )
    p.add_argument("--db", required=True, help="sqlite:///path/log.db or postgresql://...")
    p.add_argument("--key-file", required=True, type=Path, help="the log's Ed25519 PEM key")
    p.add_argument(
        "--passphrase-env",
        default="MODELSEAL_PASSPHRASE",
        help="environment variable holding the key file's passphrase, if it is encrypted",
    )
    p.add_argument("--origin", required=True, help="the log's checkpoint origin")
    p.add_argument("--name", help="note key name (default: the origin)")
    p.add_argument(
        "--submitter-key",
        action="append",
        default=[],
        type=Path,
        help="PEM public key allowed to submit (repeatable)",
    )
    p.add_argument("--witness-vkey", action="append", default=[], help="witness vkey (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    p.add_argument("--max-batch", type=int, default=1000)
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for another sequencer of the same log to stop (default 10)",
    )
    return p


def _open_log(
    url: str,
    origin: str,
    signer: NoteSigner,
    witnesses: Sequence[CosignatureVerifier],
    lock_timeout: float,
) -> Log:
    """The sequencer, waiting up to ``lock_timeout`` seconds for a previous one to go away
    (after a crash, PostgreSQL may take a moment to end the dead session holding the lock)."""
    deadline = time.monotonic() + lock_timeout
    while True:
        store = open_store(url)
        try:
            return Log(store, origin, signer, witnesses=witnesses)
        except SequencerBusyError:
            store.close()
            if time.monotonic() >= deadline:
                raise
        except BaseException:
            store.close()
            raise
        time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        env = os.environ.get(args.passphrase_env)
        key = load_log_key(args.key_file, env.encode() if env else None)
        submitters = [load_public_key(path.read_bytes()) for path in args.submitter_key]
        witnesses = [CosignatureVerifier.from_vkey(v) for v in args.witness_vkey]
        signer = NoteSigner(args.name or args.origin, key)
        sock = bind(args.host, args.port)
        log = _open_log(args.db, args.origin, signer, witnesses, args.lock_timeout)
        try:
            if args.port_file is not None:
                tmp = args.port_file.with_name(args.port_file.name + f".{os.getpid()}.tmp")
                tmp.write_text(str(sock.getsockname()[1]))
                tmp.replace(args.port_file)
            serve(create_app(log, submitters, max_batch=args.max_batch), sock)
        finally:
            log.close()
    except OSError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except Error as exc:
        sys.stderr.write(f"error: {exc.diagnostics()}\n")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
