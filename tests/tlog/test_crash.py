"""Crash safety: SIGKILL the log server at random moments during concurrent submissions.

After every crash the log must open again, keep every entry it acknowledged (at the index it
acknowledged, with a valid inclusion proof in the checkpoint it acknowledged with), and every
checkpoint served before and after the crashes must be consistent with every other.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelseal.attest.signers import Ed25519Signer, public_key_pem
from modelseal.errors import Error
from modelseal.tlog import merkle
from modelseal.tlog.client import LogClient
from modelseal.tlog.hashing import leaf_hash
from modelseal.tlog.log import LogReader
from modelseal.tlog.note import Checkpoint, NoteSigner, open_checkpoint
from modelseal.tlog.store import open_store

ORIGIN = "log.example/crash-test"
PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"
WORKERS = 12
ACKS_PER_ROUND = 400  # before the kill becomes possible; the moment itself is random


@dataclass
class Record:
    acked: dict[bytes, tuple[int, str]] = field(default_factory=dict)
    unacked: list[bytes] = field(default_factory=list)
    observed: list[tuple[int, str]] = field(default_factory=list)  # (round, note)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Server:
    def __init__(self, tmp_path: Path, db: str, key_file: Path, submitter: Path) -> None:
        self.tmp_path, self.db, self.key_file, self.submitter = tmp_path, db, key_file, submitter
        self.starts = 0

    def start(self) -> tuple[subprocess.Popen[bytes], str]:
        self.starts += 1
        port_file = self.tmp_path / f"port{self.starts}"
        env = {k: v for k, v in os.environ.items() if k != "MODELSEAL_PASSPHRASE"}
        with open(self.tmp_path / f"server{self.starts}.err", "wb") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelseal.tlog.server",
                    "--db",
                    self.db,
                    "--key-file",
                    str(self.key_file),
                    "--origin",
                    ORIGIN,
                    "--submitter-key",
                    str(self.submitter),
                    "--port",
                    "0",
                    "--port-file",
                    str(port_file),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log = (self.tmp_path / f"server{self.starts}.err").read_text()
                raise AssertionError(f"log server exited with {proc.returncode}:\n{log}")
            if port_file.exists():
                url = f"http://127.0.0.1:{port_file.read_text()}"
                try:
                    with LogClient(url, timeout=2) as client:
                        client.healthz()
                    return proc, url
                except Error:
                    pass
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("log server did not become ready in 30 s")
            time.sleep(0.02)


def _submitter(
    url: str, signer: Ed25519Signer, tag: str, record: Record, stop: threading.Event
) -> None:
    with LogClient(url, timeout=10) as client:
        n = 0
        while not stop.is_set():
            entry = f"{tag}-{n}".encode()
            n += 1
            try:
                index, note = client.submit(entry, signer)
            except Error:
                with record.lock:
                    record.unacked.append(entry)
                if stop.is_set():
                    return
                time.sleep(0.01)
                continue
            with record.lock:
                record.acked[entry] = (index, note)


def _observer(url: str, rnd: int, record: Record, stop: threading.Event) -> None:
    with LogClient(url, timeout=10) as client:
        while not stop.is_set():
            try:
                note = client.checkpoint()
            except Error:
                time.sleep(0.01)
                continue
            with record.lock:
                record.observed.append((rnd, note))
            time.sleep(0.02)


def _pg_reason() -> str | None:
    try:
        psycopg.connect(PG_BASE, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_BASE} is unreachable: {exc}"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(database URL, number of crash rounds) for a fresh log of each kind."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'log.db'}", 5
        return
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    url = f"{PG_BASE}?prefix=t{uuid.uuid4().hex[:12]}_"
    yield url, 3
    store = open_store(url)
    store.drop_tables()  # type: ignore[attr-defined]
    store.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_acknowledged(
    tmp_path: Path, db_url: tuple[str, int]
) -> None:
    db, rounds = db_url
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    context = f"(seed {seed})"

    log_key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "log-key.pem"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            log_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    signer = Ed25519Signer.generate()
    submitter = tmp_path / "submitter.pub.pem"
    submitter.write_text(public_key_pem(signer.public_key))
    verifier = NoteSigner(ORIGIN, log_key).verifier()
    server = Server(tmp_path, db, key_file, submitter)
    record = Record()
    started = time.monotonic()

    for rnd in range(rounds):
        proc, url = server.start()
        before = len(record.acked)
        stop = threading.Event()
        threads = [
            threading.Thread(target=_submitter, args=(url, signer, f"r{rnd}w{w}", record, stop))
            for w in range(WORKERS)
        ]
        threads.append(threading.Thread(target=_observer, args=(url, rnd, record, stop)))
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(record.acked) - before < ACKS_PER_ROUND and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))  # the kill lands at a random point of the stream
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join(30)
        assert len(record.acked) - before >= ACKS_PER_ROUND / 2, f"round {rnd} stalled {context}"

    # a last start: the log opens, and resubmitting what was never acknowledged is idempotent
    proc, url = server.start()
    with LogClient(url) as client:
        record.observed.append((rounds, client.checkpoint()))
        retried = {}
        for entry in rng.sample(record.unacked, min(50, len(record.unacked))):
            retried[entry] = client.submit(entry, signer)
        for entry, (index, _) in rng.sample(sorted(record.acked.items()), 50):
            assert client.submit(entry, signer)[0] == index, f"index changed {context}"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, (tmp_path / f"server{server.starts}.err").read_text()

    reader = LogReader(open_store(db))
    final = open_checkpoint(reader.checkpoint(), verifier, origin=ORIGIN)
    assert len(record.acked) >= rounds * ACKS_PER_ROUND / 2, (
        f"only {len(record.acked)} submissions acknowledged"
    )
    assert final.size >= len(record.acked) + len(retried)

    acked_checkpoints: dict[str, Checkpoint] = {}
    for entry, (index, note) in record.acked.items():
        cp = acked_checkpoints.get(note) or open_checkpoint(note, verifier, origin=ORIGIN)
        acked_checkpoints[note] = cp
        leaf = leaf_hash(entry)
        assert reader.index_of(leaf) == index, f"acknowledged entry lost or moved {context}"
        assert reader.entry(index) == entry
        merkle.verify_inclusion(
            index, final.size, leaf, reader.inclusion_proof(index, final.size), final.root_hash
        )
        merkle.verify_inclusion(
            index, cp.size, leaf, reader.inclusion_proof(index, cp.size), cp.root_hash
        )
    for entry, (index, _) in retried.items():
        assert reader.index_of(leaf_hash(entry)) == index

    # every checkpoint anyone saw, before or after any crash, is a prefix of every later one
    seen: dict[int, bytes] = {}
    rounds_max: dict[int, int] = {}
    notes = [note for _, note in record.observed] + list(acked_checkpoints)
    for rnd, note in record.observed:
        size = open_checkpoint(note, verifier).size
        rounds_max[rnd] = max(rounds_max.get(rnd, 0), size)
    for note in notes:
        cp = open_checkpoint(note, verifier, origin=ORIGIN)
        assert seen.setdefault(cp.size, cp.root_hash) == cp.root_hash, f"two roots {context}"
    sizes = sorted(seen)
    for a, b in zip(sizes, [*sizes[1:], final.size], strict=True):
        if a == 0 or a == b:
            continue
        root_b = seen.get(b, final.root_hash)
        merkle.verify_consistency(a, b, reader.consistency_proof(a, b), seen[a], root_b)
    for size in sizes:
        if size:
            proof = reader.consistency_proof(size, final.size)
            merkle.verify_consistency(size, final.size, proof, seen[size], final.root_hash)
    # a restart never rolls back: each round starts at or beyond where the last one was seen
    for rnd in range(1, rounds + 1):
        first_after = min(open_checkpoint(n, verifier).size for r, n in record.observed if r == rnd)
        assert first_after >= rounds_max[rnd - 1], f"log rolled back after crash {rnd} {context}"
    reader.store.close()
    assert time.monotonic() - started < 120
