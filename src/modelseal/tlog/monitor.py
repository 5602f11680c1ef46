"""Follow a log's checkpoints and detect forks.

A :class:`Monitor` remembers the last checkpoint it verified (a small JSON state file). Each
:meth:`Monitor.poll` fetches the latest checkpoint, checks the log's signature, and checks that
the new tree extends the remembered one: same size and same root, or a larger size with a
consistency proof that verifies. Anything else is a :class:`ForkError`: the log has shown two
trees that cannot both be true (or refuses to prove that they can).

The first poll trusts what it sees (trust on first use); start a monitor from a checkpoint
obtained elsewhere by writing its state with :meth:`CheckpointFollower.trust`.

Exceptions::

    VerificationError
    ├── ForkError               two checkpoints of one log that cannot both be true
    ├── NoteError               (tlog.note) a checkpoint not signed by the log key
    └── ProofError              (tlog.merkle)
    InputError                  unreadable or inconsistent state file
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelseal.errors import InputError, VerificationError
from modelseal.tlog.client import LogClient
from modelseal.tlog.hashing import EMPTY_ROOT
from modelseal.tlog.merkle import ProofError, verify_consistency
from modelseal.tlog.note import Checkpoint, NoteError, NoteVerifier, open_note

ProofFetcher = Callable[[int, int], Sequence[bytes]]


class ForkError(VerificationError):
    """The log showed two checkpoints that cannot both be true.

    ``previous`` and ``current`` are the two checkpoints; ``evidence`` holds both signed notes
    (previous first), which together prove the misbehaviour to anyone holding the log key.
    """

    def __init__(
        self,
        message: str,
        *,
        previous: Checkpoint,
        current: Checkpoint,
        evidence: tuple[str, str],
    ) -> None:
        super().__init__(
            message,
            hint="keep both signed checkpoints as evidence and stop trusting this log",
        )
        self.previous = previous
        self.current = current
        self.evidence = evidence


@dataclass(frozen=True)
class FollowedCheckpoint:
    """A verified checkpoint and the signed note it came in."""

    checkpoint: Checkpoint
    note: str
    text: str


class CheckpointFollower:
    """The verification core shared by :class:`Monitor` and the witness: signature, origin,
    monotonic size, consistency with the last verified checkpoint, persisted state."""

    def __init__(
        self,
        verifiers: NoteVerifier | Sequence[NoteVerifier],
        state_path: str | os.PathLike[str],
        *,
        origin: str | None = None,
    ) -> None:
        self.verifiers: tuple[NoteVerifier, ...] = (
            (verifiers,) if isinstance(verifiers, NoteVerifier) else tuple(verifiers)
        )
        if not self.verifiers:
            raise InputError("following a log needs at least one log verifier key")
        self.state_path = Path(state_path)
        self.origin = origin

    # -- state ------------------------------------------------------------------------------

    def last(self) -> FollowedCheckpoint | None:
        """The last verified checkpoint, or None before the first."""
        try:
            raw = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(f"cannot read log state {self.state_path}: {exc.strerror}") from None
        try:
            state = json.loads(raw)
            note = state["note"]
            if not isinstance(note, str):
                raise TypeError("note")
        except (ValueError, KeyError, TypeError):
            raise InputError(f"log state {self.state_path} is damaged") from None
        try:
            return self._open(note)
        except VerificationError as exc:
            raise InputError(
                f"log state {self.state_path} holds a checkpoint that no longer verifies: "
                f"{exc.message}"
            ) from None

    def trust(self, note: str) -> Checkpoint:
        """Start from ``note`` (verified with the log key), replacing any state."""
        followed = self._open(note)
        self._save(followed)
        return followed.checkpoint

    def _save(self, followed: FollowedCheckpoint) -> None:
        cp = followed.checkpoint
        state = {
            "origin": cp.origin,
            "size": cp.size,
            "root_hash": base64.b64encode(cp.root_hash).decode("ascii"),
            "note": followed.note,
        }
        tmp = self.state_path.with_name(self.state_path.name + f".{os.getpid()}.tmp")
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(state, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.state_path)
        except OSError as exc:
            raise InputError(f"cannot write log state {self.state_path}: {exc.strerror}") from None

    # -- verification -----------------------------------------------------------------------

    def _open(self, note: str) -> FollowedCheckpoint:
        text, _ = open_note(note, self.verifiers)
        cp = Checkpoint.from_text(text)
        if self.origin is not None and cp.origin != self.origin:
            raise NoteError(f"the checkpoint is for log {cp.origin!r}, not {self.origin!r}")
        if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
            raise NoteError("the checkpoint of the empty tree has a non-empty root")
        return FollowedCheckpoint(cp, note, text)

    def check(self, note: str, fetch_proof: ProofFetcher) -> FollowedCheckpoint:
        """Verify ``note`` against the last verified checkpoint without saving it."""
        new = self._open(note)
        old = self.last()
        if old is None:
            return new
        a, b = old.checkpoint, new.checkpoint
        if a.origin != b.origin:
            raise VerificationError(
                f"the checkpoint is for log {b.origin!r}, but {self.state_path} follows "
                f"{a.origin!r}"
            )

        def fork(reason: str) -> ForkError:
            return ForkError(
                f"fork detected in log {a.origin}: {reason}",
                previous=a,
                current=b,
                evidence=(old.note, new.note),
            )

        if b.size < a.size:
            raise fork(
                f"the log now shows tree size {b.size}, smaller than the size {a.size} it "
                "signed before"
            )
        if b.size == a.size:
            if b.root_hash != a.root_hash:
                raise fork(f"two different roots signed for the same tree size {a.size}")
            return new
        if a.size == 0:
            return new
        try:
            proof = fetch_proof(a.size, b.size)
            verify_consistency(a.size, b.size, proof, a.root_hash, b.root_hash)
        except ProofError as exc:
            raise fork(
                f"tree size {b.size} does not extend the verified tree size {a.size}: {exc.message}"
            ) from None
        return new

    def record(self, followed: FollowedCheckpoint) -> None:
        """Remember a checkpoint :meth:`check` has verified as the last verified one."""
        self._save(followed)

    def advance(self, note: str, fetch_proof: ProofFetcher) -> FollowedCheckpoint:
        """:meth:`check` ``note``, then remember it as the last verified checkpoint."""
        new = self.check(note, fetch_proof)
        self._save(new)
        return new


class Monitor:
    """Follows one log through a :class:`~modelseal.tlog.client.LogClient`."""

    def __init__(
        self,
        client: LogClient,
        verifiers: NoteVerifier | Sequence[NoteVerifier],
        state_path: str | os.PathLike[str],
        *,
        origin: str | None = None,
    ) -> None:
        self.client = client
        self.follower = CheckpointFollower(verifiers, state_path, origin=origin)

    def last(self) -> Checkpoint | None:
        followed = self.follower.last()
        return None if followed is None else followed.checkpoint

    def poll(self) -> Checkpoint:
        """Fetch, verify and remember the latest checkpoint; :class:`ForkError` on a fork."""
        note = self.client.checkpoint()
        return self.follower.advance(note, self.client.consistency_proof).checkpoint
