"""The gateway's audit log: append-only, hash-chained, in SQLite.

Each decision is one row ``(seq, time, prev, hash, event)``: ``event`` is the canonical JSON of
the event (sorted keys, no spaces, UTF-8), ``prev`` the hex hash of the row before (32 zero bytes
for the first) and ``hash = sha256(prev bytes || event JSON bytes)``. The log stamps each event
with ``"time"`` (RFC 3339, UTC) unless it has one, so the time is covered by the hash; the
``time`` column is a copy for queries. Triggers make UPDATE and DELETE fail, and
:func:`verify_audit` recomputes the chain, so an altered, removed, inserted or reordered row is
found. A hash chain cannot show that rows were cut from the end, nor stop someone who can write
the file from rebuilding the whole chain: compare :attr:`AuditCheck.head` with a head recorded
elsewhere (``expect_head``) for that.

:meth:`AuditLog.record` only puts the event on a queue (a microsecond or so on the caller's
thread); one writer thread takes what is queued and commits it in one transaction (WAL mode).
The writer reads the chain head inside each write transaction, so a reopened log, or several
processes sharing one file, continue one chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelseal.errors import AuditChainError, ConfigError, GatewayError, InputError

__all__ = ["GENESIS", "AuditCheck", "AuditLog", "event_hash", "verify_audit"]

GENESIS = "00" * 32
SCHEMA_VERSION = 1
BATCH_MAX = 1000
LINGER_S = 0.005  # how long the writer waits to gather a batch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq   INTEGER PRIMARY KEY,
    time  TEXT NOT NULL,
    prev  TEXT NOT NULL,
    hash  TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
"""


def event_hash(prev: str, event_json: bytes) -> str:
    """Hex ``sha256(bytes.fromhex(prev) || event_json)``."""
    return hashlib.sha256(bytes.fromhex(prev) + event_json).hexdigest()


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jsonable(value: Any) -> Any:
    """Fallback for json.dumps: sets and tuples as lists, bytes as hex, the rest as text."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def _canonical(event: Mapping[str, Any]) -> bytes:
    return json.dumps(
        event,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_jsonable,
    ).encode("utf-8", "surrogatepass")


def _serialise(stamp: float, event: dict[str, Any]) -> tuple[str, bytes]:
    """(time column, event JSON) for one recorded event; never raises."""
    if "time" not in event:
        event["time"] = _timestamp(stamp)
    try:
        data = _canonical(event)
        data.decode("utf-8")  # lone surrogates were let through above: refuse them here
    except (TypeError, ValueError, RecursionError) as exc:
        event = {
            "time": _timestamp(stamp),
            "audit_error": f"event could not be written as JSON: {type(exc).__name__}",
            "keys": sorted(ascii(k) for k in event),
        }
        data = _canonical(event)
    shown = event["time"] if isinstance(event.get("time"), str) else _timestamp(stamp)
    return shown, data


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class AuditLog:
    """An append-only, hash-chained event log in the SQLite file ``path`` (created if absent)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the audit log {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise ConfigError(
                    f"{self.path} is an audit log of format {version}, not {SCHEMA_VERSION}"
                )
            tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if version == 0 and tables - {"audit"}:
                raise ConfigError(f"{self.path} is an SQLite database, but not an audit log")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigError(f"cannot use the audit log {self.path}: {exc}") from None
        except ConfigError:
            self._db.close()
            raise
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._failure: str | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.recorded = 0  # rows committed by this instance
        self.batches = 0  # write transactions committed by this instance
        self._thread = threading.Thread(target=self._writer, name="modelseal-audit", daemon=True)
        self._thread.start()

    # -- caller side -------------------------------------------------------------------------

    def record(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` (a JSON-like mapping, not changed afterwards) for the log.

        Raises GatewayError once the log is closed or its writer has failed (the gateway then
        refuses to serve rather than serve unaudited).
        """
        if self._closed or self._failure is not None:
            self._raise_unusable()
        self._queue.put((time.time(), dict(event)))

    def flush(self, timeout_s: float | None = 30.0) -> None:
        """Block until everything recorded before this call is committed."""
        if self._closed:
            return
        marker = _Flush()
        self._queue.put(marker)
        if not marker.done.wait(timeout_s):
            raise GatewayError(f"the audit log {self.path} did not commit within {timeout_s} s")
        if self._failure is not None:
            self._raise_unusable()

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self._db.close()

    def _raise_unusable(self) -> None:
        if self._failure is not None:
            raise GatewayError(f"the audit log {self.path} failed: {self._failure}")
        raise GatewayError(f"the audit log {self.path} is closed")

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer thread -----------------------------------------------------------------------

    def _writer(self) -> None:
        stop = False
        while not stop:
            batch: list[tuple[float, dict[str, Any]]] = []
            flushes: list[_Flush] = []
            item = self._queue.get()
            deadline: float | None = None
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    flushes.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= BATCH_MAX:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    # linger a moment (unless someone waits on a flush): one transaction for a
                    # burst instead of one per event
                    if flushes:
                        break
                    if deadline is None:
                        deadline = time.monotonic() + LINGER_S
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
            if batch and self._failure is None:
                self._write(batch)
            for marker in flushes:
                marker.done.set()

    def _write(self, batch: list[tuple[float, dict[str, Any]]]) -> None:
        rows = [_serialise(stamp, event) for stamp, event in batch]
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                head = db.execute(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
                values = []
                for shown, data in rows:
                    seq += 1
                    digest = event_hash(prev, data)
                    values.append((seq, shown, prev, digest, data.decode("utf-8")))
                    prev = digest
                db.executemany(
                    "INSERT INTO audit (seq, time, prev, hash, event) VALUES (?, ?, ?, ?, ?)",
                    values,
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, ValueError) as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            return
        self.recorded += len(rows)
        self.batches += 1


@dataclass(frozen=True)
class AuditCheck:
    """The result of :func:`verify_audit`: ``ok``, rows checked, the first bad ``seq`` and why,
    and ``head`` (the last row's hash) for comparison with a copy kept elsewhere."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None
    head: str = GENESIS

    def raise_for_failure(self) -> None:
        """Raise AuditChainError if the check failed."""
        if not self.ok:
            raise AuditChainError(f"audit log chain broken at row {self.first_bad}: {self.reason}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "first_bad": self.first_bad,
            "reason": self.reason,
            "head": self.head,
        }


def _hex32(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def verify_audit(path: str | os.PathLike[str], *, expect_head: str | None = None) -> AuditCheck:
    """Recompute the chain of the audit log at ``path``.

    ``expect_head``: a row hash recorded elsewhere earlier; the check fails unless some row has
    it (so a log cut back to before that row is found). InputError if ``path`` is not an audit
    log at all.
    """
    target = Path(path)
    if not target.is_file():
        raise InputError(f"no audit log at {target}")
    try:
        db = sqlite3.connect(f"{target.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the audit log {target}: {exc}") from None
    try:
        try:
            cursor = db.execute("SELECT seq, time, prev, hash, event FROM audit ORDER BY seq")
        except sqlite3.Error as exc:
            raise InputError(f"{target} is not a modelseal audit log: {exc}") from None
        expected_seq = 1
        prev = GENESIS
        seen_expected = expect_head is None
        count = 0
        try:
            for seq, shown, row_prev, row_hash, event in cursor:
                count += 1
                if seq != expected_seq:
                    return AuditCheck(
                        False,
                        count - 1,
                        seq,
                        f"row {expected_seq} is missing (next is {seq})",
                        prev,
                    )
                if row_prev != prev:
                    return AuditCheck(
                        False, count - 1, seq, "prev does not link to the row before", prev
                    )
                data = event.encode("utf-8", "surrogatepass") if isinstance(event, str) else None
                if data is None or not _hex32(row_hash) or event_hash(prev, data) != row_hash:
                    return AuditCheck(
                        False, count - 1, seq, "the event does not match its hash", prev
                    )
                try:
                    stamped = json.loads(event).get("time")
                except (ValueError, AttributeError):
                    stamped = None
                if isinstance(stamped, str) and stamped != shown:
                    return AuditCheck(
                        False, count - 1, seq, "the time column differs from the event", prev
                    )
                prev = row_hash
                expected_seq += 1
                if row_hash == expect_head:
                    seen_expected = True
        except sqlite3.Error as exc:
            raise InputError(f"cannot read the audit log {target}: {exc}") from None
        if not seen_expected:
            return AuditCheck(
                False,
                count,
                expected_seq,
                "the expected head is not in the log (truncated?)",
                prev,
            )
        return AuditCheck(True, count, None, None, prev)
    finally:
        db.close()
