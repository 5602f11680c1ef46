"""A witness: cosigns (C2SP tlog-cosignature) only checkpoints it has verified.

Like a monitor, a :class:`Witness` remembers the last checkpoint it verified for the log it
follows and cosigns a new one only if the log's signature verifies and the new tree extends the
remembered one (:class:`~modelseal.tlog.monitor.ForkError` otherwise: it never signs both sides
of a fork). A verifier that requires k-of-n witness cosignatures therefore knows that k
independent parties saw the same history.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from modelseal.tlog.client import LogClient
from modelseal.tlog.monitor import CheckpointFollower, ProofFetcher
from modelseal.tlog.note import Checkpoint, Cosigner, NoteVerifier


class Witness:
    """Cosigns checkpoints of one log with ``cosigner`` after verifying them."""

    def __init__(
        self,
        cosigner: Cosigner,
        log_verifier: NoteVerifier | Sequence[NoteVerifier],
        state_path: str | os.PathLike[str],
        *,
        origin: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cosigner = cosigner
        self.follower = CheckpointFollower(log_verifier, state_path, origin=origin)
        self._clock = clock

    def __repr__(self) -> str:
        return f"Witness({self.cosigner!r}, state={str(self.follower.state_path)!r})"

    def cosign_checkpoint(self, note: str, fetch_proof: ProofFetcher) -> tuple[Checkpoint, str]:
        """Verify ``note`` against the last checkpoint this witness verified (fetching the
        consistency proof with ``fetch_proof(old_size, new_size)``), remember it, and return it
        with the cosignature line (ending in a newline) over its checkpoint text."""
        followed = self.follower.check(note, fetch_proof)
        line = self.cosigner.cosign(followed.text, int(self._clock()))
        self.follower.record(followed)
        return followed.checkpoint, line

    def cosign(self, note: str, fetch_proof: ProofFetcher) -> str:
        """:meth:`cosign_checkpoint`, returning only the cosignature line."""
        return self.cosign_checkpoint(note, fetch_proof)[1]


def witness_once(client: LogClient, witness: Witness) -> str:
    """Fetch the log's latest checkpoint, verify and cosign it, post the cosignature back to the
    log, and return the cosignature line."""
    checkpoint, line = witness.cosign_checkpoint(client.checkpoint(), client.consistency_proof)
    client.add_cosignature(checkpoint.size, line)
    return line
