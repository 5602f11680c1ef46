"""A digest cache: skip re-hashing files whose identity on disk is unchanged.

A cached digest is reused only when the file's device, inode, size, ``mtime_ns`` *and*
``ctime_ns`` all match what they were when it was hashed. ``mtime`` can be set back by anyone
who can write the file (``touch -d``); ``ctime`` cannot, so an in-place edit that restores the
modification time still invalidates the entry. The cache lives in SQLite under
``$MODELSEAL_HOME/cache/``; it is disposable: a damaged one is moved aside and rebuilt.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from modelseal.errors import InputError
from modelseal.release.walk import WalkedFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (dev, ino, algorithm)
) WITHOUT ROWID
"""


def modelseal_home() -> Path:
    """``$MODELSEAL_HOME``, by default ``~/.modelseal``."""
    env = os.environ.get("MODELSEAL_HOME")
    return Path(env) if env else Path.home() / ".modelseal"


def _i64(value: int) -> int:
    """SQLite integers are signed 64-bit; inode and device numbers may not be."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


class DigestCache:
    """Digests by (device, inode, algorithm), valid while size, mtime and ctime are unchanged."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.recovered: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise InputError(f"cannot create the digest cache at {self.path}: {exc}") from exc
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            self.recovered = f"digest cache {self.path} was unreadable ({exc}); moved to {aside}"
            self._db = self._open()

    @classmethod
    def default(cls) -> DigestCache:
        return cls(modelseal_home() / "cache" / "digests.sqlite3")

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM digests LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def lookup(self, files: Sequence[WalkedFile], algorithm: str) -> dict[int, str]:
        """Indices into ``files`` whose cached digest is still valid, with that digest."""
        found: dict[int, str] = {}
        query = (
            "SELECT size, mtime_ns, ctime_ns, digest FROM digests "
            "WHERE dev = ? AND ino = ? AND algorithm = ?"
        )
        for i, f in enumerate(files):
            row = self._db.execute(query, (_i64(f.dev), _i64(f.ino), algorithm)).fetchone()
            if row is not None and tuple(row[:3]) == (f.size, f.mtime_ns, f.ctime_ns):
                found[i] = str(row[3])
        return found

    def store(self, files: Sequence[WalkedFile], digests: Sequence[str], algorithm: str) -> None:
        rows = [
            (_i64(f.dev), _i64(f.ino), algorithm, f.size, f.mtime_ns, f.ctime_ns, d)
            for f, d in zip(files, digests, strict=True)
        ]
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DigestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
