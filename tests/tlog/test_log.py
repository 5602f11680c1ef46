"""The sequencer and its stores (SQLite and PostgreSQL): proofs, idempotency, one writer."""

from __future__ import annotations

import itertools
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.tlog import merkle
from modelseal.tlog.hashing import EMPTY_ROOT, leaf_hash
from modelseal.tlog.log import Log, LogReader, consistency_ranges, inclusion_ranges, subtrees
from modelseal.tlog.note import (
    Checkpoint,
    Cosigner,
    NoteError,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    verify_cosignatures,
)
from modelseal.tlog.postgres import _split_url
from modelseal.tlog.sqlite import SqliteStore
from modelseal.tlog.store import (
    Batch,
    NotFoundError,
    SequencerBusyError,
    StoredCheckpoint,
    StoreError,
    open_store,
)

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
ORIGIN = "log.example/test"


def _pg_reason() -> str | None:
    try:
        psycopg.connect(PG_BASE, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_BASE} is unreachable: {exc}"
    return None


PG_UNREACHABLE = _pg_reason()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty log database of each kind (PostgreSQL tables under a unique prefix)."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'log.db'}"
        return
    if PG_UNREACHABLE:
        pytest.skip(PG_UNREACHABLE)
    url = f"{PG_BASE}?prefix=t{uuid.uuid4().hex[:12]}_"
    yield url
    store = open_store(url)
    store.drop_tables()  # type: ignore[attr-defined]
    store.close()


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def _entries(n: int, tag: str = "e") -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(n)]


def test_every_inclusion_and_consistency_proof_up_to_300_leaves(
    store_url: str, signer: NoteSigner
) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    verifier = signer.verifier()
    data = _entries(300)
    leaves = [leaf_hash(d) for d in data]
    served: dict[int, bytes] = {}
    batches = [1, 2, 1, 5, 3, 8, 13, 1, 21, 34, 2, 55, 7, 64, 43, 40]
    assert sum(batches) == 300
    start = 0
    for n in batches:
        assert log.append(data[start : start + n]) == list(range(start, start + n))
        start += n
        cp = open_checkpoint(log.checkpoint(), verifier, origin=ORIGIN)
        assert cp.size == start
        served[cp.size] = cp.root_hash

    roots = [merkle.root(leaves[:size]) for size in range(301)]
    # every (index, size) inclusion pair on both stores; every consistency pair on SQLite, and
    # on PostgreSQL (same proof code, slower round trips) every first size for every fifth
    # second size and every served one
    stride = 1 if store_url.startswith("sqlite") else 5
    for size, root in served.items():
        assert root == roots[size], f"served checkpoint {size} has a wrong root"
    for size in range(1, 301):
        root = roots[size]
        assert log.root(size) == root
        for index in range(size):
            merkle.verify_inclusion(
                index, size, leaves[index], log.inclusion_proof(index, size), root
            )
        if size % stride and size not in served:
            continue
        for first in range(1, size + 1):
            merkle.verify_consistency(
                first, size, log.consistency_proof(first, size), roots[first], root
            )
    # and against the served (signed) roots only, from a reader without the lock
    reader = LogReader(open_store(store_url))
    sizes = sorted(served)
    for a, b in itertools.pairwise(sizes):
        merkle.verify_consistency(a, b, reader.consistency_proof(a, b), served[a], served[b])
    for index in range(300):
        merkle.verify_inclusion(
            index, 300, leaves[index], reader.inclusion_proof(index, 300), served[300]
        )
    reader.store.close()
    log.close()


def test_resubmission_returns_the_existing_index(store_url: str, signer: NoteSigner) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    assert log.append([b"a", b"b"]) == [0, 1]
    first = log.checkpoint()
    assert log.append([b"b", b"a"]) == [1, 0]
    assert log.checkpoint() == first, "a batch of known entries must not sign a new checkpoint"
    assert log.append([b"c", b"a", b"c", b"d"]) == [2, 0, 2, 3]
    assert log.size() == 4
    assert [log.entry(i) for i in range(4)] == [b"a", b"b", b"c", b"d"]
    assert log.index_of(leaf_hash(b"c")) == 2
    assert log.index_of(leaf_hash(b"zzz")) is None
    assert log.append([]) == []
    log.close()


def test_a_second_sequencer_is_refused(store_url: str, signer: NoteSigner) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    log.append([b"x"])
    other = open_store(store_url)
    with pytest.raises(SequencerBusyError, match="another sequencer"):
        Log(other, ORIGIN, signer)
    # readers need no lock
    assert LogReader(other).size() == 1
    other.close()
    log.close()
    again = Log(open_store(store_url), ORIGIN, signer)  # the lock was released
    assert again.size() == 1
    again.close()


def test_reopening_gives_the_same_root_and_continues(store_url: str, signer: NoteSigner) -> None:
    data = _entries(77, "r")
    log = Log(open_store(store_url), ORIGIN, signer)
    log.append(data[:40])
    log.append(data[40:])
    note, root = log.checkpoint(), log.root(77)
    log.close()

    log = Log(open_store(store_url), ORIGIN, signer)
    assert log.checkpoint() == note
    assert log.root(77) == root == merkle.root([leaf_hash(d) for d in data])
    assert log.append([b"more"]) == [77]
    cp = open_checkpoint(log.checkpoint(), signer.verifier())
    merkle.verify_consistency(77, 78, log.consistency_proof(77, 78), root, cp.root_hash)
    log.close()


def test_a_new_log_signs_the_empty_tree(store_url: str, signer: NoteSigner) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    cp = open_checkpoint(log.checkpoint(), signer.verifier(), origin=ORIGIN)
    assert (cp.size, cp.root_hash) == (0, EMPTY_ROOT)
    assert log.root(0) == EMPTY_ROOT
    log.close()


def test_the_log_keeps_its_origin_and_key(store_url: str, signer: NoteSigner) -> None:
    Log(open_store(store_url), ORIGIN, signer).close()
    with pytest.raises(InputError, match="belongs to origin"):
        Log(open_store(store_url), "other.example/log", signer)
    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(InputError, match="belongs to log_vkey"):
        Log(open_store(store_url), ORIGIN, stranger)
    # the refused sequencers released their lock
    Log(open_store(store_url), ORIGIN, signer).close()


@pytest.mark.parametrize(
    ("call", "args", "message"),
    [
        ("inclusion_proof", (0, 0), "at least 1"),
        ("inclusion_proof", (0, 11), "exceeds the log's current size 10"),
        ("inclusion_proof", (10, 10), "outside a tree of size 10"),
        ("inclusion_proof", (-1, 10), "outside a tree of size 10"),
        ("inclusion_proof", (0, 2**70), "exceeds"),
        ("inclusion_proof", (0, "3"), "must be an integer"),
        ("inclusion_proof", (True, 3), "must be an integer"),
        ("consistency_proof", (0, 5), "between 1 and"),
        ("consistency_proof", (6, 5), "between 1 and"),
        ("consistency_proof", (1, 11), "exceeds"),
        ("consistency_proof", (1, 0), "at least 1"),
        ("root", (11,), "exceeds"),
        ("root", (-1,), "at least 1"),
    ],
)
def test_hostile_proof_requests_are_clean_errors(
    store_url: str, signer: NoteSigner, call: str, args: tuple[object, ...], message: str
) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    log.append(_entries(10))
    with pytest.raises(InputError, match=message):
        getattr(log, call)(*args)
    log.close()


def test_missing_entries_and_checkpoints_are_not_found(store_url: str, signer: NoteSigner) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    log.append(_entries(3))
    for index in (-1, 3, 2**64, 10**30):
        with pytest.raises(NotFoundError, match=f"no entry at index {index}"):
            log.entry(index)
    with pytest.raises(NotFoundError, match="no checkpoint of size 2"):
        log.checkpoint_at(2)
    assert open_checkpoint(log.checkpoint_at(3), signer.verifier()).size == 3
    with pytest.raises(InputError, match="32 bytes"):
        log.index_of(b"short")
    with pytest.raises(InputError, match="entries are bytes"):
        log.append(["text"])  # type: ignore[list-item]
    log.close()


def test_the_store_refuses_a_batch_that_would_fork(store_url: str, signer: NoteSigner) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    log.append(_entries(4))
    stale = Batch(
        start=2,
        leaves=[(2, leaf_hash(b"fork"), b"fork")],
        nodes=[],
        checkpoint=StoredCheckpoint(3, b"\0" * 32, "x\n\n— x AAAA\n", 0.0),
    )
    other = open_store(store_url)
    with pytest.raises(StoreError, match="not the sequencer"):
        other.commit(stale)
    with pytest.raises(StoreError, match="not the sequencer"):
        other.add_cosignature(4, "w", "— w AAAA")
    log.close()
    other.acquire_sequencer()  # e.g. a sequencer that kept a stale view of the log
    with pytest.raises(StoreError, match="changed under the sequencer"):
        other.commit(stale)
    other.close()
    reader = LogReader(open_store(store_url))
    assert reader.size() == 4
    assert reader.entry(2) == b"e-2"
    reader.store.close()


def test_stored_history_cannot_be_rewritten(store_url: str, signer: NoteSigner) -> None:
    log = Log(open_store(store_url), ORIGIN, signer)
    log.append(_entries(4))
    if store_url.startswith("sqlite"):
        lite = sqlite3.connect(store_url[len("sqlite://") :])
        for sql in ("UPDATE entries SET data = x'00'", "DELETE FROM nodes"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                lite.execute(sql)
        lite.close()
    else:
        conninfo, prefix, _ = _split_url(store_url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for sql in (f"UPDATE {prefix}entries SET data = '\\x00'", f"DELETE FROM {prefix}nodes"):
                with pytest.raises(psycopg.Error, match="append-only"):
                    conn.execute(sql.encode())
    log.close()


def test_cosignatures_are_verified_stored_and_served(store_url: str, signer: NoteSigner) -> None:
    witness = Cosigner("witness.example/w1", Ed25519PrivateKey.generate())
    stranger = Cosigner("witness.example/w1", Ed25519PrivateKey.generate())
    log = Log(open_store(store_url), ORIGIN, signer, witnesses=[witness.verifier()])
    log.append(_entries(5))
    text = Checkpoint(ORIGIN, 5, log.root(5)).to_text()
    with pytest.raises(InputError, match="does not verify"):
        log.add_cosignature(5, stranger.cosign(text, 1_700_000_000))
    with pytest.raises(NotFoundError):
        log.add_cosignature(4, witness.cosign(text, 1_700_000_000))
    assert log.add_cosignature(5, witness.cosign(text, 1_700_000_000)) == "witness.example/w1"
    note = log.checkpoint()
    open_checkpoint(note, signer.verifier())
    assert verify_cosignatures(note, [witness.verifier()], 1) == {
        "witness.example/w1": 1_700_000_000
    }
    log.close()


def test_open_store_urls(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unsupported log database scheme"):
        open_store("mysql://x/y")
    with pytest.raises(InputError, match="invalid table prefix"):
        open_store(f"{PG_BASE}?prefix=x;drop table y")
    with pytest.raises(InputError, match="does not exist"):
        open_store(f"sqlite://{tmp_path}/missing/log.db")
    store = open_store(str(tmp_path / "plain.db"))
    assert store.description == f"sqlite://{tmp_path}/plain.db"
    store.close()


@given(
    user=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    password=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1),
    prefix=st.text(max_size=12),
)
def test_postgres_urls_never_show_the_password(user: str, password: str, prefix: str) -> None:
    query = urlencode({"prefix": prefix, "sslmode": "require"})
    url = f"postgresql://{user}:{password}@db.example:5433/logs?{query}"
    if prefix and not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", prefix):
        with pytest.raises(InputError, match="invalid table prefix") as caught:
            _split_url(url)
        assert f":{password}@" not in caught.value.message
        return
    conninfo, parsed_prefix, shown = _split_url(url)
    assert parsed_prefix == prefix
    assert "prefix=" not in conninfo
    assert "sslmode=require" in conninfo
    assert shown.startswith(f"postgresql://{user}@db.example:5433/logs")
    assert f":{password}@" not in shown


@settings(max_examples=200)
@given(size=st.integers(1, 5000), data=st.data())
def test_proof_ranges_are_rfc9162_shaped(size: int, data: st.DataObject) -> None:
    """Every range a proof uses is covered exactly by its complete subtrees, and the proof
    lengths are those RFC 9162 verifiers expect."""
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(1, size))
    for ranges in (inclusion_ranges(index, size), consistency_ranges(first, size)):
        for a, b in ranges:
            keys = subtrees(a, b)
            assert sum(1 << level for level, _ in keys) == b - a
            assert all((i << level) >= a and ((i + 1) << level) <= b for level, i in keys)
            assert len(keys) == (b - a).bit_count()
    inner = (index ^ (size - 1)).bit_length()
    assert len(inclusion_ranges(index, size)) == inner + (index >> inner).bit_count()


def test_a_reader_verifies_checkpoints_with_the_log_key(tmp_path: Path, signer: NoteSigner) -> None:
    url = f"sqlite://{tmp_path / 'log.db'}"
    log = Log(open_store(url), ORIGIN, signer)
    log.append([b"one"])
    other = NoteVerifier.from_vkey(NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).vkey)
    reader = LogReader(open_store(url))
    with pytest.raises(NoteError, match="no valid signature by a known key"):
        open_checkpoint(reader.checkpoint(), other)
    reader.store.close()
    log.close()


class FlakyStore(SqliteStore):
    """A SQLite store whose next commit fails before or after it reaches the disk."""

    fail: str | None = None

    def commit(self, batch: Batch) -> None:
        if self.fail == "before":
            self.fail = None
            raise StoreError("disk unplugged")
        super().commit(batch)
        if self.fail == "after":
            self.fail = None
            raise StoreError("connection lost after COMMIT")


def test_a_failed_commit_leaves_the_sequencer_in_step(tmp_path: Path, signer: NoteSigner) -> None:
    store = FlakyStore(tmp_path / "log.db")
    log = Log(store, ORIGIN, signer)
    log.append([b"a"])
    store.fail = "before"
    with pytest.raises(StoreError, match="unplugged"):
        log.append([b"b"])
    assert log.size() == 1
    store.fail = "after"
    with pytest.raises(StoreError, match="after COMMIT"):
        log.append([b"c"])
    assert log.size() == 2, "the sequencer re-read the batch that did reach the disk"
    assert log.append([b"c", b"d", b"b"]) == [1, 2, 3]
    leaves = [leaf_hash(x) for x in (b"a", b"c", b"d", b"b")]
    cp = open_checkpoint(log.checkpoint(), signer.verifier())
    assert cp.root_hash == merkle.root(leaves)
    log.close()
