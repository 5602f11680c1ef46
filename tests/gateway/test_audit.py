"""The audit log: append-only SQLite, hash chain, writer thread, tamper detection."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import AuditChainError, ConfigError, GatewayError, InputError
from modelseal.gateway.audit import GENESIS, AuditLog, verify_audit


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def filled(log_path: Path) -> Path:
    with AuditLog(log_path) as log:
        for i in range(6):
            log.record({"event": "request", "n": i, "key": "alice", "status": "ok"})
    return log_path


def rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT seq, time, prev, hash, event FROM audit ORDER BY seq").fetchall()
    finally:
        db.close()


def tamper(path: Path, *statements: str) -> None:
    """Run ``statements`` with the append-only triggers dropped (as an attacker would)."""
    db = sqlite3.connect(path)
    try:
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("DROP TRIGGER audit_no_delete")
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def test_chain_layout(filled: Path) -> None:
    stored = rows(filled)
    assert [r[0] for r in stored] == [1, 2, 3, 4, 5, 6]
    prev = GENESIS
    for seq, time_column, row_prev, row_hash, event in stored:
        assert row_prev == prev
        expected = hashlib.sha256(bytes.fromhex(prev) + event.encode()).hexdigest()
        assert row_hash == expected
        decoded = json.loads(event)
        assert event == json.dumps(decoded, sort_keys=True, separators=(",", ":"))
        assert decoded["n"] == seq - 1
        assert decoded["time"] == time_column
        assert time_column.endswith("Z")
        prev = row_hash
    check = verify_audit(filled)
    assert check.ok
    assert (check.entries, check.first_bad, check.reason) == (6, None, None)
    assert check.head == stored[-1][3]
    check.raise_for_failure()


def test_wal_and_append_only_triggers(filled: Path) -> None:
    db = sqlite3.connect(filled)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit SET event = '{}' WHERE seq = 2")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit WHERE seq = 6")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit")
    finally:
        db.close()
    assert verify_audit(filled).ok


def test_altered_event_is_found(filled: Path) -> None:
    tamper(
        filled, """UPDATE audit SET event = replace(event, '"alice"', '"mallory"') WHERE seq = 3"""
    )
    check = verify_audit(filled)
    assert not check.ok
    assert check.first_bad == 3
    assert check.entries == 2
    assert "hash" in (check.reason or "")
    with pytest.raises(AuditChainError, match="row 3"):
        check.raise_for_failure()


def test_altered_time_column_is_found(filled: Path) -> None:
    tamper(filled, "UPDATE audit SET time = '2000-01-01T00:00:00.000000Z' WHERE seq = 4")
    check = verify_audit(filled)
    assert (check.ok, check.first_bad) == (False, 4)
    assert "time" in (check.reason or "")


def test_removed_row_is_found(filled: Path) -> None:
    tamper(filled, "DELETE FROM audit WHERE seq = 4")
    check = verify_audit(filled)
    assert (check.ok, check.first_bad) == (False, 5)
    assert "row 4 is missing" in (check.reason or "")


def test_removed_first_row_is_found(filled: Path) -> None:
    tamper(filled, "DELETE FROM audit WHERE seq = 1")
    assert verify_audit(filled).first_bad == 2


def test_reordered_rows_are_found(filled: Path) -> None:
    tamper(
        filled,
        "UPDATE audit SET seq = 100 WHERE seq = 3",
        "UPDATE audit SET seq = 3 WHERE seq = 4",
        "UPDATE audit SET seq = 4 WHERE seq = 100",
    )
    check = verify_audit(filled)
    assert (check.ok, check.first_bad) == (False, 3)
    assert "prev" in (check.reason or "")


def test_broken_prev_link_is_found(filled: Path) -> None:
    tamper(filled, f"UPDATE audit SET prev = '{'11' * 32}' WHERE seq = 5")
    check = verify_audit(filled)
    assert (check.ok, check.first_bad) == (False, 5)


def test_rehashed_row_still_breaks_the_next_link(filled: Path) -> None:
    stored = rows(filled)
    event = stored[1][4].replace("alice", "mallory")
    new_hash = hashlib.sha256(bytes.fromhex(stored[1][2]) + event.encode()).hexdigest()
    tamper(
        filled,
        f"UPDATE audit SET event = '{event}', hash = '{new_hash}' WHERE seq = 2",
    )
    check = verify_audit(filled)
    assert (check.ok, check.first_bad) == (False, 3)


def test_inserted_row_is_found(filled: Path) -> None:
    tamper(
        filled,
        "UPDATE audit SET seq = seq + 10 WHERE seq >= 4",
        f"INSERT INTO audit VALUES (4, 't', '{'00' * 32}', '{'00' * 32}', '{{}}')",
    )
    assert verify_audit(filled).first_bad == 4


def test_truncation_is_found_with_an_expected_head(filled: Path) -> None:
    head = verify_audit(filled).head
    assert verify_audit(filled, expect_head=head).ok
    tamper(filled, "DELETE FROM audit WHERE seq >= 5")
    assert verify_audit(filled).ok  # a chain alone cannot see a cut end
    check = verify_audit(filled, expect_head=head)
    assert not check.ok
    assert "truncated" in (check.reason or "")


def test_reopening_continues_the_chain(filled: Path) -> None:
    head = verify_audit(filled).head
    with AuditLog(filled) as log:
        log.record({"event": "second run"})
    stored = rows(filled)
    assert len(stored) == 7
    assert stored[6][2] == head
    assert verify_audit(filled, expect_head=head).ok


def test_two_logs_on_one_file_keep_one_chain(log_path: Path) -> None:
    first = AuditLog(log_path)
    second = AuditLog(log_path)
    try:
        for i in range(50):
            (first if i % 2 else second).record({"i": i})
            if i % 7 == 0:
                first.flush()
                second.flush()
    finally:
        first.close()
        second.close()
    check = verify_audit(log_path)
    assert check.ok
    assert check.entries == 50


def test_record_does_not_wait_for_the_database(log_path: Path) -> None:
    log = AuditLog(log_path)
    blocker = sqlite3.connect(log_path, timeout=30, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer cannot commit while this is held
    try:
        for i in range(2000):
            log.record({"i": i})  # returns although nothing can be written yet
        assert len(rows(log_path)) == 0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    log.flush()
    assert len(rows(log_path)) == 2000
    log.close()
    assert verify_audit(log_path).entries == 2000


def test_events_are_batched(log_path: Path) -> None:
    log = AuditLog(log_path)
    blocker = sqlite3.connect(log_path, timeout=30, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        for i in range(300):
            log.record({"i": i})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    log.close()
    # what queued up while the database was busy went in with one or two commits, not 300
    assert log.recorded == 300
    assert log.batches <= 3
    assert verify_audit(log_path).entries == 300


def test_event_is_copied_at_record_time(log_path: Path) -> None:
    event = {"status": "ok"}
    with AuditLog(log_path) as log:
        log.record(event)
        event["status"] = "changed"
    assert json.loads(rows(log_path)[0][4])["status"] == "ok"


def test_event_time_given_by_the_caller_is_kept(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        log.record({"time": "2025-01-02T03:04:05Z", "x": 1})
        log.record({"time": 12345, "x": 2})
    stored = rows(log_path)
    assert stored[0][1] == "2025-01-02T03:04:05Z"
    assert json.loads(stored[1][4])["time"] == 12345
    assert verify_audit(log_path).ok


def test_unserialisable_event_is_recorded_as_an_error_and_chain_holds(log_path: Path) -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    with AuditLog(log_path) as log:
        log.record({"obj": Thing(), "raw": b"\x01\x02", "tags": {"b", "a"}})
        log.record({"bad": float("nan")})
        log.record({"text": "\udcff"})
        log.record({1: "int key", "s": 2})
        log.record({"ok": True})
    stored = [json.loads(r[4]) for r in rows(log_path)]
    assert stored[0]["obj"] == "thing"
    assert stored[0]["raw"] == "0102"
    assert stored[0]["tags"] == ["a", "b"]
    assert "audit_error" in stored[1]
    assert "audit_error" in stored[2]
    assert "audit_error" in stored[3]
    assert stored[4]["ok"] is True
    assert verify_audit(log_path).entries == 5


def test_closed_log_refuses_records_and_close_is_idempotent(log_path: Path) -> None:
    log = AuditLog(log_path)
    log.close()
    log.close()
    log.flush()
    with pytest.raises(GatewayError, match="closed"):
        log.record({"x": 1})


def test_writer_failure_makes_the_log_refuse(log_path: Path) -> None:
    log = AuditLog(log_path)
    db = sqlite3.connect(log_path)
    db.execute("DROP TABLE audit")  # the writer's next insert fails
    db.commit()
    db.close()
    log.record({"x": 1})
    with pytest.raises(GatewayError, match="failed"):
        log.flush()
    with pytest.raises(GatewayError, match="failed"):
        log.record({"x": 2})
    log.close()


def test_concurrent_recorders(log_path: Path) -> None:
    log = AuditLog(log_path)

    def work(n: int) -> None:
        for i in range(200):
            log.record({"thread": n, "i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    check = verify_audit(log_path)
    assert check.ok
    assert check.entries == 800


def test_not_an_audit_log(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="not an audit log"):
        AuditLog(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError):
        AuditLog(junk)
    with pytest.raises(ConfigError):
        AuditLog(tmp_path / "missing-dir" / "audit.db")
    with pytest.raises(InputError, match="no audit log"):
        verify_audit(tmp_path / "absent.db")
    with pytest.raises(InputError, match="not a modelseal audit log"):
        verify_audit(other)


def test_empty_log_verifies(log_path: Path) -> None:
    AuditLog(log_path).close()
    check = verify_audit(log_path)
    assert check.ok
    assert check.entries == 0
    assert check.head == GENESIS
    assert check.to_dict()["ok"] is True


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
events = st.dictionaries(st.text(max_size=6).filter(lambda k: k != "time"), json_values, max_size=5)


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuditLog, Path]]:
    path = tmp_path_factory.mktemp("audit") / "audit.db"
    log = AuditLog(path)
    yield log, path
    log.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(events, min_size=1, max_size=5))
def test_any_json_events_round_trip_and_verify(
    shared_log: tuple[AuditLog, Path], batch: list[dict[str, Any]]
) -> None:
    log, path = shared_log
    before = len(rows(path))
    for event in batch:
        log.record(event)
    log.flush()
    stored = rows(path)[before:]
    assert len(stored) == len(batch)
    for event, row in zip(batch, stored, strict=True):
        decoded = json.loads(row[4])
        assert decoded.pop("time") == row[1]
        assert decoded == json.loads(json.dumps(event))
    assert verify_audit(path).ok
