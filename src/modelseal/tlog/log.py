"""The log: the sequencer (:class:`Log`) and read access with proofs (:class:`LogReader`).

Proofs follow RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency). Every hash a proof needs is
the Merkle tree hash of a range ``[a, b)`` whose start is aligned to a power of two at least as
large as the range, so it is the right fold of the complete subtrees ``[a, b)`` splits into
(one per set bit of ``b - a``). Those subtrees are stored nodes: a proof at any size up to the
current one reads O(log n) nodes in one query and hashes O(log n) times.

:meth:`Log.append` assigns indices, computes the nodes the new leaves complete from the right
edge of the tree (the "frontier": the complete subtrees of the current size), signs the new
checkpoint and commits all of it in one transaction before it returns.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Self

from modelseal.errors import InputError
from modelseal.tlog.hashing import EMPTY_ROOT, leaf_hash, node_hash, split_point
from modelseal.tlog.note import (
    Checkpoint,
    CosignatureVerifier,
    NoteError,
    NoteSigner,
    add_signatures,
    sign_note,
)
from modelseal.tlog.store import (
    Batch,
    LogStore,
    NodeKey,
    NotFoundError,
    StoredCheckpoint,
    StoreError,
)

Range = tuple[int, int]


# -- tree arithmetic ---------------------------------------------------------------------------


def subtrees(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees ``(level, index)`` covering ``[start, end)``, left to right.

    For the ranges proofs use (``start`` a multiple of a power of two >= ``end - start``) these
    are exactly the subtrees whose right fold is ``MTH(D[start:end])``.
    """
    out: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of subtree hashes: ``node(h0, node(h1, ... node(h[-2], h[-1])))``."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose MTH make up ``PATH(index, D[0:size])``, leaf to root."""
    lo, hi = 0, size
    top_down: list[Range] = []
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def consistency_ranges(size1: int, size2: int) -> list[Range]:
    """The ranges whose MTH make up ``PROOF(size1, D[0:size2])`` (RFC 9162 §2.1.4.1)."""
    lo, hi, whole = 0, size2, True
    top_down: list[Range] = []
    while True:
        if size1 - lo == hi - lo:
            if not whole:
                top_down.append((lo, hi))
            break
        k = split_point(hi - lo)
        if size1 - lo <= k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo += k
            whole = False
    top_down.reverse()
    return top_down


def _checked_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be an integer, got {type(value).__name__}")
    return value


def note_text(note: str) -> str:
    """The signed text of a note (everything before the blank line), with its final newline."""
    text, sep, _ = note.partition("\n\n")
    if not sep:
        raise StoreError("stored checkpoint note has no signature block")
    return text + "\n"


# -- reading -------------------------------------------------------------------------------------


class LogReader:
    """Read access to a log: checkpoints, entries, roots and proofs. Needs no lock."""

    def __init__(self, store: LogStore) -> None:
        self.store = store

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store (and, for a :class:`Log`, release the sequencer lock)."""
        self.store.close()

    def latest(self) -> StoredCheckpoint:
        cp = self.store.latest_checkpoint()
        if cp is None:
            raise NotFoundError(f"the log at {self.store.description} has no checkpoint yet")
        return cp

    def size(self) -> int:
        """The size of the latest signed checkpoint: what the log has committed to."""
        cp = self.store.latest_checkpoint()
        return 0 if cp is None else cp.size

    def checkpoint(self) -> str:
        """The latest signed checkpoint, with the witness cosignatures posted for it."""
        return self._with_cosignatures(self.latest())

    def checkpoint_at(self, size: int) -> str:
        """The checkpoint the log signed at exactly ``size`` (one exists per committed batch)."""
        size = _checked_int(size, "tree size")
        cp = self.store.checkpoint_at(size)
        if cp is None:
            raise NotFoundError(f"the log signed no checkpoint of size {size}")
        return self._with_cosignatures(cp)

    def _with_cosignatures(self, cp: StoredCheckpoint) -> str:
        lines = self.store.cosignatures(cp.size)
        return add_signatures(cp.note, lines) if lines else cp.note

    def entry(self, index: int) -> bytes:
        index = _checked_int(index, "entry index")
        size = self.size()
        data = self.store.entry(index) if 0 <= index < size else None
        if data is None:
            raise NotFoundError(f"no entry at index {index} (the log has {size} entries)")
        return data

    def index_of(self, leaf_hash: bytes) -> int | None:
        """The index of the entry with this RFC 9162 leaf hash, if the log has committed it."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != 32:
            raise InputError("a leaf hash is 32 bytes (SHA-256)")
        index = self.store.index_of(leaf_hash)
        if index is None or index >= self.size():
            return None
        return index

    def check_tree_size(self, size: object, what: str = "tree size") -> int:
        """``size`` if it is a tree size a proof can be asked for (1 .. current size)."""
        size = _checked_int(size, what)
        if size < 1:
            raise InputError(f"{what} must be at least 1, got {size}")
        current = self.size()
        if size > current:
            raise InputError(f"{what} {size} exceeds the log's current size {current}")
        return size

    def root(self, size: int) -> bytes:
        """``MTH(D[0:size])`` for any committed size (``EMPTY_ROOT`` for 0)."""
        size = _checked_int(size, "tree size")
        if size == 0:
            return EMPTY_ROOT
        size = self.check_tree_size(size)
        return self._range_hashes([(0, size)])[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """``PATH(index, D[0:size])``: verify with ``merkle.verify_inclusion``."""
        size = self.check_tree_size(size)
        index = _checked_int(index, "leaf index")
        if not 0 <= index < size:
            raise InputError(f"leaf index {index} is outside a tree of size {size}")
        return self._range_hashes(inclusion_ranges(index, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """``PROOF(size1, D[0:size2])`` for ``1 <= size1 <= size2 <= size()``."""
        size2 = self.check_tree_size(size2, "second tree size")
        size1 = _checked_int(size1, "first tree size")
        if not 1 <= size1 <= size2:
            raise InputError(
                f"first tree size must be between 1 and the second size {size2}, got {size1}"
            )
        if size1 == size2:
            return []
        return self._range_hashes(consistency_ranges(size1, size2))

    def _range_hashes(self, ranges: Sequence[Range]) -> list[bytes]:
        keyed = [subtrees(a, b) for a, b in ranges]
        wanted = sorted({k for keys in keyed for k in keys})
        found = self.store.nodes(wanted)
        missing = [k for k in wanted if k not in found]
        if missing:
            level, index = missing[0]
            raise StoreError(
                f"the log at {self.store.description} lacks {len(missing)} tree node(s), e.g. "
                f"level {level} index {index}: the database is damaged"
            )
        return [fold([found[k] for k in keys]) for keys in keyed]


# -- appending -----------------------------------------------------------------------------------


class Log(LogReader):
    """The sequencer: the one writer of a log. Constructing it takes the store's sequencer
    lock (:class:`~modelseal.tlog.store.SequencerBusyError` if another holds it); :meth:`close`
    releases it.

    The first sequencer of a store records ``origin`` and the signer's vkey; a later one with a
    different origin or key is refused, so a server pointed at the wrong database cannot sign
    someone else's history.
    """

    def __init__(
        self,
        store: LogStore,
        origin: str,
        signer: NoteSigner,
        *,
        witnesses: Sequence[CosignatureVerifier] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(store)
        self.origin = origin
        self.signer = signer
        self.witnesses = tuple(witnesses)
        self._clock = clock
        self._lock = threading.Lock()
        store.acquire_sequencer()
        try:
            self._check_identity()
            self._load()
        except BaseException:
            store.release_sequencer()
            raise

    def _check_identity(self) -> None:
        for key, mine in (("origin", self.origin), ("log_vkey", self.signer.vkey)):
            stored = self.store.get_meta(key)
            if stored is None:
                self.store.set_meta(key, mine)
            elif stored != mine:
                raise InputError(
                    f"the log at {self.store.description} belongs to {key} {stored!r}, "
                    f"not {mine!r}",
                    hint="a log keeps its origin and signing key for life",
                )

    def _load(self) -> None:
        cp = self.store.latest_checkpoint()
        if cp is None:
            if self.store.entry_count():
                raise StoreError(
                    f"the log at {self.store.description} has entries but no checkpoint"
                )
            self._size = 0
            self._frontier: list[tuple[int, int, bytes]] = []
            self._latest = self._commit([], [], 0, EMPTY_ROOT)
            return
        count = self.store.entry_count()
        if count != cp.size:
            raise StoreError(
                f"the log at {self.store.description} holds {count} entries but its latest "
                f"checkpoint has size {cp.size}: the database is damaged"
            )
        keys = subtrees(0, cp.size)
        found = self.store.nodes(keys)
        if any(k not in found for k in keys):
            raise StoreError(f"the log at {self.store.description} lacks right-edge tree nodes")
        self._frontier = [(level, index, found[(level, index)]) for level, index in keys]
        if fold([h for _, _, h in self._frontier]) != cp.root:
            raise StoreError(
                f"the log at {self.store.description}: stored nodes do not hash to the root of "
                f"checkpoint {cp.size}: the database is damaged"
            )
        self._size = cp.size
        self._latest = cp

    @property
    def latest_note(self) -> str:
        """The newest checkpoint note this sequencer signed (without cosignatures)."""
        return self._latest.note

    def size(self) -> int:
        return self._size

    def latest(self) -> StoredCheckpoint:
        return self._latest

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Add ``entries`` and return their indices; durable when it returns.

        An entry already in the log (same bytes, so same leaf hash), or repeated within the
        batch, gets its existing index and is not added again. One checkpoint is signed and
        committed with the new leaves; a batch of only known entries commits nothing.
        """
        datas: list[bytes] = []
        for e in entries:
            if not isinstance(e, (bytes, bytearray, memoryview)):
                raise InputError(f"log entries are bytes, got {type(e).__name__}")
            datas.append(bytes(e))
        if not datas:
            return []
        hashes = [leaf_hash(d) for d in datas]
        with self._lock:
            known = self.store.indices_of(list(dict.fromkeys(hashes)))
            result: list[int] = []
            leaves: list[tuple[int, bytes, bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            frontier = list(self._frontier)
            size = self._size
            for data, h in zip(datas, hashes, strict=True):
                index = known.get(h)
                if index is None:
                    index = size
                    known[h] = index
                    leaves.append((index, h, data))
                    frontier.append((0, index, h))
                    while len(frontier) > 1 and frontier[-1][0] == frontier[-2][0]:
                        right = frontier.pop()
                        left = frontier.pop()
                        parent = (left[0] + 1, left[1] >> 1, node_hash(left[2], right[2]))
                        nodes.append(parent)
                        frontier.append(parent)
                    size += 1
                result.append(index)
            if leaves:
                root = fold([h for _, _, h in frontier])
                try:
                    latest = self._commit(leaves, nodes, size, root)
                except StoreError:
                    # the batch may or may not be on disk (e.g. a connection lost during
                    # COMMIT): re-read the tree so the next batch starts where the store is
                    with contextlib.suppress(StoreError):
                        self._load()
                    raise
                # size first: a reader that sees the new checkpoint can get proofs for it
                self._frontier = frontier
                self._size = size
                self._latest = latest
            return result

    def _commit(
        self,
        leaves: Sequence[tuple[int, bytes, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        size: int,
        root: bytes,
    ) -> StoredCheckpoint:
        text = Checkpoint(origin=self.origin, size=size, root_hash=root).to_text()
        cp = StoredCheckpoint(
            size=size, root=root, note=sign_note(text, [self.signer]), created=self._clock()
        )
        self.store.commit(Batch(start=self._size, leaves=leaves, nodes=nodes, checkpoint=cp))
        return cp

    def add_cosignature(self, size: int, line: str) -> str:
        """Verify a witness's cosignature line over our checkpoint of ``size`` with the
        configured witness keys, store it, and return the witness name."""
        size = _checked_int(size, "tree size")
        cp = self.store.checkpoint_at(size)
        if cp is None:
            raise NotFoundError(f"the log signed no checkpoint of size {size}")
        if not isinstance(line, str) or "\n" in line.rstrip("\n"):
            raise InputError("a cosignature is one signature line")
        line = line.rstrip("\n")
        text = note_text(cp.note)
        for verifier in self.witnesses:
            try:
                verifier.verify(text, line)
            except NoteError:
                continue
            with self._lock:
                self.store.add_cosignature(size, verifier.name, line)
            return verifier.name
        raise InputError(
            f"the cosignature does not verify over checkpoint {size} with any of the "
            f"{len(self.witnesses)} configured witness key(s)"
        )
