"""The SQLite log store (the embedded default): WAL journal, ``synchronous=FULL``.

One writer connection (used by the sequencer under a lock) and one reader connection per thread;
in WAL mode readers never block the writer nor each other. The sequencer lock is an exclusive
``flock`` on ``<db>.lock``, released by the kernel when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from modelseal.errors import InputError
from modelseal.tlog.store import (
    Batch,
    NodeKey,
    SequencerBusyError,
    StoredCheckpoint,
    StoreError,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cosignatures (
    size INTEGER NOT NULL REFERENCES checkpoints (size),
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, witness)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS entries_append_only_u BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_append_only_d BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS nodes_append_only_u BEFORE UPDATE ON nodes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS nodes_append_only_d BEFORE DELETE ON nodes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_u BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only_d BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
"""

_IN_CHUNK = 500  # bound parameters per IN (...) lookup
_WRITER_CACHE_KIB = 256 * 1024
_MMAP_BYTES = 1 << 30
_WAL_CHECKPOINT_PAGES = 10_000


class SqliteStore:
    """:class:`~modelseal.tlog.store.LogStore` over one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if str(path) in ("", ":memory:"):
            raise InputError("the SQLite log needs a file path, not an in-memory database")
        if not self.path.parent.is_dir():
            raise InputError(f"directory of the log database does not exist: {self.path.parent}")
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        # the writer's cache holds the leaf-hash index (random inserts) of large logs
        self._writer = self._connect(cache_kib=_WRITER_CACHE_KIB)
        with self._errors("configure the writer"):
            # fewer, larger WAL checkpoints: a batch dirties many random index pages
            self._writer.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        with self._errors("create the log tables"):
            self._writer.executescript(_SCHEMA)

    @property
    def description(self) -> str:
        return f"sqlite://{self.path}"

    # -- connections -------------------------------------------------------------------------

    def _connect(self, cache_kib: int = 8192) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the log database {self.path}: {exc}") from exc
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the log database {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"log database {self.path}: cannot {doing}: {exc}") from exc

    # -- sequencer lock ----------------------------------------------------------------------

    def acquire_sequencer(self) -> None:
        if self._lock_fd is not None:
            raise SequencerBusyError(f"this store already has a sequencer: {self.description}")
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the sequencer lock {self._lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise SequencerBusyError(
                f"another sequencer is already appending to {self.description}",
                hint="a log has exactly one writer; stop the other `modelseal log serve` first",
            ) from exc
        self._lock_fd = fd

    def release_sequencer(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- reads -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._errors("read metadata"):
            row = self._reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._errors("read the latest checkpoint"):
            row = (
                self._reader()
                .execute(
                    "SELECT size, root, note, created FROM checkpoints ORDER BY size DESC LIMIT 1"
                )
                .fetchone()
            )
        return None if row is None else StoredCheckpoint(*row)

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        with self._errors("read a checkpoint"):
            row = (
                self._reader()
                .execute(
                    "SELECT size, root, note, created FROM checkpoints WHERE size = ?", (size,)
                )
                .fetchone()
            )
        return None if row is None else StoredCheckpoint(*row)

    def entry_count(self) -> int:
        with self._errors("count entries"):
            row = self._reader().execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def entry(self, index: int) -> bytes | None:
        with self._errors("read an entry"):
            row = (
                self._reader()
                .execute("SELECT data FROM entries WHERE idx = ?", (index,))
                .fetchone()
            )
        return None if row is None else bytes(row[0])

    def index_of(self, leaf_hash: bytes) -> int | None:
        with self._errors("look up a leaf hash"):
            row = (
                self._reader()
                .execute("SELECT idx FROM entries WHERE leaf_hash = ?", (leaf_hash,))
                .fetchone()
            )
        return None if row is None else int(row[0])

    def indices_of(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        # the sequencer's de-duplication: on the writer connection, whose cache holds the index
        found: dict[bytes, int] = {}
        conn = self._writer
        with self._write_lock, self._errors("look up leaf hashes"):
            for start in range(0, len(leaf_hashes), _IN_CHUNK):
                chunk = leaf_hashes[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT leaf_hash, idx FROM entries WHERE leaf_hash IN ({marks})", chunk
                )
                found.update((bytes(h), int(i)) for h, i in rows)
        return found

    def nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        inner = [k for k in keys if k[0] > 0]
        leaves = [k[1] for k in keys if k[0] == 0]
        parts: list[str] = []
        params: list[int] = []
        if inner:
            values = ",".join(["(?,?)"] * len(inner))
            parts.append(
                f"SELECT n.level, n.idx, n.hash FROM (VALUES {values}) AS q CROSS JOIN nodes AS n"
                " ON n.level = q.column1 AND n.idx = q.column2"
            )
            for level, index in inner:
                params += (level, index)
        if leaves:
            marks = ",".join("?" * len(leaves))
            parts.append(f"SELECT 0, idx, leaf_hash FROM entries WHERE idx IN ({marks})")
            params += leaves
        if not parts:
            return {}
        with self._errors("read tree nodes"):
            rows = self._reader().execute(" UNION ALL ".join(parts), params).fetchall()
        return {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}

    def cosignatures(self, size: int) -> list[str]:
        with self._errors("read cosignatures"):
            rows = self._reader().execute(
                "SELECT line FROM cosignatures WHERE size = ? ORDER BY witness", (size,)
            )
            return [str(r[0]) for r in rows]

    def _require_sequencer(self) -> None:
        if self._lock_fd is None:
            raise StoreError(
                f"refusing to write to {self.description}: this store is not the sequencer"
            )

    # -- writes ------------------------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        self._require_sequencer()
        with self._write_lock, self._errors("write metadata"):
            self._writer.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, value),
            )

    def commit(self, batch: Batch) -> None:
        self._require_sequencer()
        conn = self._writer
        with self._write_lock, self._errors("append a batch"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT max(size) FROM checkpoints").fetchone()
                stored = -1 if row is None or row[0] is None else int(row[0])
                count = self.entry_count_in(conn)
                fresh = stored == -1 and batch.start == 0
                if count != batch.start or (stored != batch.start and not fresh):
                    raise StoreError(
                        f"log database {self.path} changed under the sequencer: it holds "
                        f"{count} entries and its latest checkpoint has size {stored}, but the "
                        f"batch starts at {batch.start}"
                    )
                conn.executemany(
                    "INSERT INTO entries (idx, leaf_hash, data) VALUES (?, ?, ?)", batch.leaves
                )
                conn.executemany(
                    "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", batch.nodes
                )
                cp = batch.checkpoint
                conn.execute(
                    "INSERT INTO checkpoints (size, root, note, created) VALUES (?, ?, ?, ?)",
                    (cp.size, cp.root, cp.note, cp.created),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def entry_count_in(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        self._require_sequencer()
        with self._write_lock, self._errors("store a cosignature"):
            self._writer.execute(
                "INSERT INTO cosignatures (size, witness, line) VALUES (?, ?, ?)"
                " ON CONFLICT (size, witness) DO UPDATE SET line = excluded.line",
                (size, witness, line),
            )

    def close(self) -> None:
        self._closed = True
        self.release_sequencer()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()
