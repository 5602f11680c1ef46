"""The PostgreSQL log store (psycopg 3), for logs shared by many readers and replicas.

URL: ``postgresql://user@host:port/db?prefix=t1_``; ``prefix`` (letters, digits, ``_``)
namespaces the table names so several logs (or tests) share a database. The sequencer holds a
session-level ``pg_try_advisory_lock`` derived from the prefix on its own connection: it is
released when that connection closes, also when the process is killed. Readers use one
connection per thread in autocommit mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from modelseal.errors import InputError
from modelseal.tlog.store import (
    Batch,
    NodeKey,
    SequencerBusyError,
    StoredCheckpoint,
    StoreError,
)

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}entries (
    idx BIGINT PRIMARY KEY,
    leaf_hash BYTEA NOT NULL UNIQUE,
    data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}nodes (
    level SMALLINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS {p}checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    note TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}cosignatures (
    size BIGINT NOT NULL REFERENCES {p}checkpoints (size),
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, witness)
);
CREATE TABLE IF NOT EXISTS {p}meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE OR REPLACE FUNCTION {p}append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the log is append-only'; END $$;
CREATE OR REPLACE TRIGGER {p}entries_append_only BEFORE UPDATE OR DELETE ON {p}entries
    FOR EACH ROW EXECUTE FUNCTION {p}append_only();
CREATE OR REPLACE TRIGGER {p}nodes_append_only BEFORE UPDATE OR DELETE ON {p}nodes
    FOR EACH ROW EXECUTE FUNCTION {p}append_only();
CREATE OR REPLACE TRIGGER {p}checkpoints_append_only BEFORE UPDATE OR DELETE ON {p}checkpoints
    FOR EACH ROW EXECUTE FUNCTION {p}append_only();
"""

_TABLES = ("cosignatures", "checkpoints", "nodes", "entries", "meta")


def _lock_key(prefix: str, purpose: str) -> int:
    digest = hashlib.sha256(f"modelseal-tlog/{purpose}/{prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _split_url(url: str) -> tuple[str, str, str]:
    """(conninfo for psycopg, table prefix, description without password)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [v for k, v in query if k == "prefix"]
    prefix = prefixes[-1] if prefixes else ""
    if prefix and not _PREFIX.fullmatch(prefix):
        raise InputError(
            f"invalid table prefix {prefix!r}",
            hint="use lowercase letters, digits and '_' (not starting with a digit)",
        )
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    host = parts.hostname or "localhost"
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    shown = f"postgresql://{user}{host}{port}{parts.path}" + (f"?prefix={prefix}" if prefix else "")
    return conninfo, prefix, shown


class PostgresStore:
    """:class:`~modelseal.tlog.store.LogStore` over PostgreSQL tables ``<prefix>entries`` etc."""

    def __init__(self, url: str) -> None:
        self._conninfo, self.prefix, self._description = _split_url(url)
        self._local = threading.local()
        self._readers: list[psycopg.Connection[Any]] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._sequencer = False
        self._writer = self._connect()
        p = self.prefix
        self._sql = {
            "latest": f"SELECT size, root, note, created FROM {p}checkpoints"
            " ORDER BY size DESC LIMIT 1",
            "at": f"SELECT size, root, note, created FROM {p}checkpoints WHERE size = %s",
            "count": f"SELECT max(idx) FROM {p}entries",
            "entry": f"SELECT data FROM {p}entries WHERE idx = %s",
            "index": f"SELECT idx FROM {p}entries WHERE leaf_hash = %s",
            "indices": f"SELECT leaf_hash, idx FROM {p}entries WHERE leaf_hash = ANY(%s)",
            "nodes": f"SELECT n.level, n.idx, n.hash FROM {p}nodes AS n"
            " JOIN unnest(%s::smallint[], %s::bigint[]) AS q (l, i)"
            " ON n.level = q.l AND n.idx = q.i"
            f" UNION ALL SELECT 0, idx, leaf_hash FROM {p}entries WHERE idx = ANY(%s::bigint[])",
            "cosigs": f"SELECT line FROM {p}cosignatures WHERE size = %s ORDER BY witness",
            "meta": f"SELECT value FROM {p}meta WHERE key = %s",
        }
        with self._errors("configure the writer"):
            row = self._writer.execute("SHOW synchronous_commit").fetchone()
            if row is not None and row[0] in ("off", "local"):
                # acknowledged means durable: never inherit an asynchronous-commit setting
                self._writer.execute("SET synchronous_commit = on")
        with self._errors("create the log tables"), self._writer.transaction():
            self._writer.execute(
                "SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.prefix, "schema"),)
            )
            self._writer.execute(_SCHEMA.format(p=p).encode())

    @property
    def description(self) -> str:
        return self._description

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the log database {self._description}: {exc}"
            ) from exc

    def _reader(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"the log database {self._description} is closed")
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(f"log database {self._description}: cannot {doing}: {exc}") from exc

    def _one(self, sql: str, params: Sequence[object]) -> tuple[Any, ...] | None:
        with self._errors("read the log"):
            return self._reader().execute(sql, params).fetchone()

    # -- sequencer lock ----------------------------------------------------------------------

    def acquire_sequencer(self) -> None:
        # the lock is held by the writer connection itself: if that session dies, the lock
        # goes with it and no commit can follow on it
        if self._sequencer:
            raise SequencerBusyError(f"this store already has a sequencer: {self._description}")
        with self._write_lock, self._errors("take the sequencer lock"):
            row = self._writer.execute(
                "SELECT pg_try_advisory_lock(%s)", (_lock_key(self.prefix, "sequencer"),)
            ).fetchone()
        if not row or not row[0]:
            raise SequencerBusyError(
                f"another sequencer is already appending to {self._description}",
                hint="a log has exactly one writer; stop the other `modelseal log serve` first",
            )
        self._sequencer = True

    def release_sequencer(self) -> None:
        if self._sequencer:
            self._sequencer = False
            with self._write_lock, self._errors("release the sequencer lock"):
                if not self._writer.closed:
                    self._writer.execute(
                        "SELECT pg_advisory_unlock(%s)", (_lock_key(self.prefix, "sequencer"),)
                    )

    # -- reads -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._one(self._sql["meta"], (key,))
        return None if row is None else str(row[0])

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._one(self._sql["latest"], ())
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), row[2], row[3])

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        row = self._one(self._sql["at"], (size,))
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), row[2], row[3])

    def entry_count(self) -> int:
        row = self._one(self._sql["count"], ())
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def entry(self, index: int) -> bytes | None:
        row = self._one(self._sql["entry"], (index,))
        return None if row is None else bytes(row[0])

    def index_of(self, leaf_hash: bytes) -> int | None:
        row = self._one(self._sql["index"], (leaf_hash,))
        return None if row is None else int(row[0])

    def indices_of(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        if not leaf_hashes:
            return {}
        with self._errors("look up leaf hashes"):
            rows = self._reader().execute(self._sql["indices"], (list(leaf_hashes),)).fetchall()
        return {bytes(h): int(i) for h, i in rows}

    def nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        inner = [k for k in keys if k[0] > 0]
        leaves = [k[1] for k in keys if k[0] == 0]
        params = ([k[0] for k in inner], [k[1] for k in inner], leaves)
        with self._errors("read tree nodes"):
            rows = self._reader().execute(self._sql["nodes"], params, prepare=True).fetchall()
        return {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}

    def cosignatures(self, size: int) -> list[str]:
        with self._errors("read cosignatures"):
            rows = self._reader().execute(self._sql["cosigs"], (size,)).fetchall()
        return [str(r[0]) for r in rows]

    def _require_sequencer(self) -> None:
        if not self._sequencer:
            raise StoreError(
                f"refusing to write to {self.description}: this store is not the sequencer"
            )

    # -- writes ------------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        self._require_sequencer()
        with self._write_lock, self._errors("write metadata"):
            self._writer.execute(
                f"INSERT INTO {self.prefix}meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO NOTHING",
                (key, value),
            )

    def commit(self, batch: Batch) -> None:
        self._require_sequencer()
        p = self.prefix
        conn = self._writer
        with self._write_lock, self._errors("append a batch"), conn.transaction():
            row = conn.execute(f"SELECT max(size) FROM {p}checkpoints").fetchone()
            stored = -1 if row is None or row[0] is None else int(row[0])
            row = conn.execute(self._sql["count"]).fetchone()
            count = 0 if row is None or row[0] is None else int(row[0]) + 1
            fresh = stored == -1 and batch.start == 0
            if count != batch.start or (stored != batch.start and not fresh):
                raise StoreError(
                    f"log database {self._description} changed under the sequencer: it holds "
                    f"{count} entries and its latest checkpoint has size {stored}, but the "
                    f"batch starts at {batch.start}"
                )
            with conn.cursor() as cur:
                if batch.leaves:
                    with cur.copy(f"COPY {p}entries (idx, leaf_hash, data) FROM STDIN") as copy:
                        for leaf in batch.leaves:
                            copy.write_row(leaf)
                if batch.nodes:
                    with cur.copy(f"COPY {p}nodes (level, idx, hash) FROM STDIN") as copy:
                        for node in batch.nodes:
                            copy.write_row(node)
                cp = batch.checkpoint
                cur.execute(
                    f"INSERT INTO {p}checkpoints (size, root, note, created)"
                    " VALUES (%s, %s, %s, %s)",
                    (cp.size, cp.root, cp.note, cp.created),
                )

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        self._require_sequencer()
        with self._write_lock, self._errors("store a cosignature"):
            self._writer.execute(
                f"INSERT INTO {self.prefix}cosignatures (size, witness, line)"
                " VALUES (%s, %s, %s)"
                " ON CONFLICT (size, witness) DO UPDATE SET line = excluded.line",
                (size, witness, line),
            )

    def drop_tables(self) -> None:
        """Remove this log's tables (tests and tear-down only)."""
        p = self.prefix
        with self._write_lock, self._errors("drop the log tables"), self._writer.transaction():
            for table in _TABLES:
                self._writer.execute(f"DROP TABLE IF EXISTS {p}{table} CASCADE".encode())
            self._writer.execute(f"DROP FUNCTION IF EXISTS {p}append_only()".encode())

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(StoreError):
            self.release_sequencer()  # closing the session releases it anyway
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()
