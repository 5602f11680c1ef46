"""Storage for the transparency log: the interface and ``open_store(url)``.

A store keeps three append-only things, and nothing else that matters:

- **entries**: ``(index, leaf_hash, data)``, unique on ``leaf_hash`` so a resubmitted entry
  keeps its first index;
- **nodes**: the hash of every *complete* subtree at level >= 1, keyed ``(level, index)``: the
  node covering leaves ``[index * 2**level, (index + 1) * 2**level)``. A node is written in the
  batch that completes it and never changes (level 0 is the leaf hash, kept in ``entries``);
- **checkpoints**: ``(size, root, note, created)``, one signed note per committed batch, plus the
  witness cosignature lines posted for them.

Any past root and any inclusion or consistency proof for sizes up to the latest checkpoint is a
function of O(log n) stored nodes, which a store returns in one query (:meth:`LogStore.nodes`).

One process appends (the *sequencer*, which holds :meth:`LogStore.acquire_sequencer`); any
number read. :meth:`LogStore.commit` is all-or-nothing and durable when it returns.

Exceptions::

    InputError
    ├── SequencerBusyError      another sequencer holds this log
    └── NotFoundError           no such entry, size or checkpoint
    Error (exit 3)
    └── StoreError              the database failed (I/O, corruption, lost connection)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from modelseal.errors import Error, InputError

NodeKey = tuple[int, int]
"""``(level, index)`` of a complete subtree; level 0 is a leaf."""


class StoreError(Error):
    """The storage backend failed (I/O error, corruption, lost connection)."""


class SequencerBusyError(InputError):
    """Another process or object is already the sequencer of this log."""


class NotFoundError(InputError):
    """The requested entry, tree size or checkpoint does not exist (yet)."""


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as stored: ``note`` is the signed note (log signature only)."""

    size: int
    root: bytes
    note: str
    created: float


@dataclass(frozen=True)
class Batch:
    """What one :meth:`LogStore.commit` writes: leaves ``start .. start+len(leaves)-1``, the
    nodes they complete, and the checkpoint of the new size."""

    start: int
    leaves: Sequence[tuple[int, bytes, bytes]]  # (index, leaf_hash, data)
    nodes: Sequence[tuple[int, int, bytes]]  # (level >= 1, index, hash)
    checkpoint: StoredCheckpoint


class LogStore(Protocol):
    """The storage interface; :mod:`modelseal.tlog.sqlite` and :mod:`modelseal.tlog.postgres`
    implement it."""

    @property
    def description(self) -> str:
        """Where the log lives, without credentials (for messages)."""
        ...

    def acquire_sequencer(self) -> None:
        """Become the only writer, or raise :class:`SequencerBusyError` at once."""
        ...

    def release_sequencer(self) -> None: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None:
        """Record ``key`` once; only the sequencer calls this."""
        ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None: ...

    def entry_count(self) -> int: ...

    def entry(self, index: int) -> bytes | None: ...

    def index_of(self, leaf_hash: bytes) -> int | None: ...

    def indices_of(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        """The stored index of each of ``leaf_hashes`` that is present."""
        ...

    def nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        """The hashes of the complete subtrees ``keys`` (level 0 = leaf hash), in one query."""
        ...

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` atomically and durably; refuse (:class:`StoreError`) when the stored
        log does not end at ``batch.start`` or does not end with a checkpoint there."""
        ...

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Store (or replace) ``witness``'s cosignature line for the checkpoint of ``size``."""
        ...

    def cosignatures(self, size: int) -> list[str]: ...

    def close(self) -> None: ...


def open_store(url: str) -> LogStore:
    """Open (creating tables as needed) the store named by ``url``.

    ``sqlite:///abs/path/log.db`` (everything after ``sqlite://`` is the file path, so
    ``sqlite://rel/log.db`` is relative; a bare path without a scheme is SQLite too) or
    ``postgresql://user@host:port/db?prefix=t1_`` (``prefix`` namespaces the table names).
    """
    if url.startswith("sqlite://"):
        from modelseal.tlog.sqlite import SqliteStore

        return SqliteStore(url[len("sqlite://") :])
    if url.startswith(("postgresql://", "postgres://")):
        from modelseal.tlog.postgres import PostgresStore

        return PostgresStore(url)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise InputError(
            f"unsupported log database scheme {scheme!r}",
            hint="use sqlite:///path/to/log.db or postgresql://user@host:port/db",
        )
    if not url:
        raise InputError("empty log database URL")
    from modelseal.tlog.sqlite import SqliteStore

    return SqliteStore(url)
