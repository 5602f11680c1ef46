"""Monitor and witness against real log servers: growth, forks, cosignatures."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelseal.attest.signers import Ed25519Signer
from modelseal.errors import InputError
from modelseal.tlog import merkle
from modelseal.tlog.client import LogClient
from modelseal.tlog.hashing import leaf_hash
from modelseal.tlog.log import Log
from modelseal.tlog.monitor import ForkError, Monitor
from modelseal.tlog.note import (
    Cosigner,
    NoteError,
    NoteSigner,
    open_checkpoint,
    verify_cosignatures,
)
from modelseal.tlog.server import create_app
from modelseal.tlog.store import open_store
from modelseal.tlog.witness import Witness, witness_once
from tests.tlog.test_server import serving

ORIGIN = "log.example/monitored"


class Net:
    """Two logs with the same key and origin (a fork), each behind a real server."""

    def __init__(self, tmp_path: Path, stack: ExitStack) -> None:
        self.tmp_path = tmp_path
        self.key = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        self.verifier = self.key.verifier()
        self.cosigner = Cosigner("witness.example/w1", Ed25519PrivateKey.generate())
        self.submitter = Ed25519Signer.generate()
        self.logs: dict[str, Log] = {}
        self.clients: dict[str, LogClient] = {}
        for name in ("a", "b"):
            log = Log(
                open_store(f"sqlite://{tmp_path / name}.db"),
                ORIGIN,
                self.key,
                witnesses=[self.cosigner.verifier()],
            )
            stack.callback(log.close)
            url = stack.enter_context(serving(create_app(log, [self.submitter.public_key])))
            self.logs[name] = log
            self.clients[name] = stack.enter_context(LogClient(url))

    def submit(self, name: str, entries: Sequence[bytes]) -> None:
        for entry in entries:
            self.clients[name].submit(entry, self.submitter)

    def monitor(self, name: str, state: str = "monitor.json") -> Monitor:
        return Monitor(self.clients[name], self.verifier, self.tmp_path / state, origin=ORIGIN)

    def witness(self, state: str = "witness.json") -> Witness:
        return Witness(self.cosigner, self.verifier, self.tmp_path / state, origin=ORIGIN)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    with ExitStack() as stack:
        yield Net(tmp_path, stack)


def _entries(tag: str, n: int) -> list[bytes]:
    return [f"{tag} {i}".encode() for i in range(n)]


def test_monitor_and_witness_follow_a_growing_log(net: Net) -> None:
    monitor, witness = net.monitor("a"), net.witness()
    assert monitor.last() is None
    assert monitor.poll().size == 0  # trust on first use: the empty tree
    sizes = []
    for step, n in enumerate([1, 4, 0, 7, 16, 3]):
        net.submit("a", _entries(f"step {step}", n))
        cp = monitor.poll()
        sizes.append(cp.size)
        assert cp == monitor.last()
        line = witness_once(net.clients["a"], witness)
        served = net.clients["a"].checkpoint()
        assert served.endswith(line)
        assert open_checkpoint(served, net.verifier) == cp
        stamps = verify_cosignatures(served, [net.cosigner.verifier()], 1)
        assert list(stamps) == ["witness.example/w1"]
    assert sizes == [1, 5, 5, 12, 28, 31]
    # the state survives a restart of the monitor
    again = net.monitor("a")
    assert again.last() == monitor.last()
    assert again.poll().size == 31
    state = json.loads((net.tmp_path / "monitor.json").read_text())
    assert state["size"] == 31
    assert state["origin"] == ORIGIN


def test_a_forked_log_with_a_larger_tree_fails_the_consistency_check(net: Net) -> None:
    net.submit("a", _entries("shared", 3) + _entries("a only", 5))
    net.submit("b", _entries("shared", 3) + _entries("b only", 9))
    monitor = net.monitor("a")
    seen = monitor.poll()
    assert seen.size == 8
    forked = net.monitor("b")  # same state file: the same monitor, now shown log b
    with pytest.raises(ForkError, match="does not extend the verified tree size 8") as info:
        forked.poll()
    assert info.value.previous == seen
    assert info.value.current.size == 12
    assert info.value.evidence[0].startswith(f"{ORIGIN}\n8\n")
    assert "fork detected in log" in info.value.diagnostics()
    assert monitor.last() == seen, "a fork must not move the verified state"


def test_same_size_different_root_is_a_fork(net: Net) -> None:
    net.submit("a", _entries("a", 6))
    net.submit("b", _entries("b", 6))
    net.monitor("a").poll()
    with pytest.raises(ForkError, match="two different roots signed for the same tree size 6"):
        net.monitor("b").poll()


def test_a_smaller_tree_is_a_fork(net: Net) -> None:
    net.submit("a", _entries("a", 6))
    net.submit("b", _entries("a", 4))  # even a true prefix: the log may never shrink
    net.monitor("a").poll()
    with pytest.raises(ForkError, match="tree size 4, smaller than the size 6"):
        net.monitor("b").poll()


def test_the_witness_refuses_to_cosign_an_inconsistent_checkpoint(net: Net) -> None:
    net.submit("a", _entries("shared", 2) + _entries("a", 2))
    net.submit("b", _entries("shared", 2) + _entries("b", 5))
    witness = net.witness()
    line = witness_once(net.clients["a"], witness)
    before = net.clients["b"].checkpoint()
    with pytest.raises(ForkError, match="does not extend"):
        witness_once(net.clients["b"], witness)
    assert net.clients["b"].checkpoint() == before, "nothing was cosigned on log b"
    assert witness.follower.last() is not None
    assert witness.follower.last().checkpoint.size == 4  # type: ignore[union-attr]
    # the witness keeps cosigning log a as it grows
    net.submit("a", _entries("a later", 3))
    later = witness_once(net.clients["a"], witness)
    assert later != line
    verify_cosignatures(net.clients["a"].checkpoint(), [net.cosigner.verifier()], 1)
    # a log whose witness key is not configured refuses the cosignature
    stranger = Witness(
        Cosigner("witness.example/w1", Ed25519PrivateKey.generate()),
        net.verifier,
        net.tmp_path / "stranger.json",
    )
    with pytest.raises(InputError, match="does not verify"):
        witness_once(net.clients["a"], stranger)


class LyingClient:
    """Serves log a's real checkpoints but a tampered consistency proof."""

    def __init__(self, client: LogClient) -> None:
        self.client = client

    def checkpoint(self) -> str:
        return self.client.checkpoint()

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        proof = self.client.consistency_proof(first, second)
        return [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]


def test_a_bad_consistency_proof_is_reported_as_a_fork(net: Net) -> None:
    net.submit("a", _entries("a", 5))
    net.monitor("a").poll()
    net.submit("a", _entries("more", 5))
    lying = LyingClient(net.clients["a"])
    liar = Monitor(lying, net.verifier, net.tmp_path / "monitor.json")  # type: ignore[arg-type]
    with pytest.raises(ForkError, match="does not extend the verified tree size 5"):
        liar.poll()
    assert net.monitor("a").poll().size == 10  # the honest proof verifies


def test_a_checkpoint_by_another_key_is_rejected(net: Net) -> None:
    net.submit("a", _entries("a", 2))
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier()
    monitor = Monitor(net.clients["a"], other, net.tmp_path / "m.json")
    with pytest.raises(NoteError, match="no valid signature by a known key"):
        monitor.poll()
    assert monitor.last() is None
    wrong_origin = Monitor(net.clients["a"], net.verifier, net.tmp_path / "m.json", origin="x/y")
    with pytest.raises(NoteError, match="not 'x/y'"):
        wrong_origin.poll()


def test_a_damaged_state_file_is_an_input_error(net: Net) -> None:
    path = net.tmp_path / "monitor.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="is damaged"):
        net.monitor("a").poll()
    path.write_text(json.dumps({"note": "forged\n1\nAAAA\n\n— x AAAA\n"}))
    with pytest.raises(InputError, match="no longer verifies"):
        net.monitor("a").poll()


def test_proofs_served_to_the_monitor_match_the_reference(net: Net) -> None:
    data = _entries("ref", 40)
    net.submit("a", data)
    cp = net.monitor("a").poll()
    leaves = [leaf_hash(d) for d in data]
    assert cp.root_hash == merkle.root(leaves)
    for first in range(1, 40):
        assert net.clients["a"].consistency_proof(first, 40) == merkle.consistency_proof(
            first, leaves
        )
