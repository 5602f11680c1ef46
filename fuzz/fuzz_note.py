"""Coverage-guided fuzzing of the C2SP signed-note, checkpoint and cosignature parsers (atheris).

    python fuzz/fuzz_note.py CORPUS_DIR -atheris_runs=100000

The bytes are decoded leniently (invalid UTF-8 becomes lone surrogates, which the parsers must
refuse). Invariant: parse_note, open_note, Checkpoint.from_text and the cosignature check either
fail with NoteError or accept; whatever they accept re-serialises to exactly the same text, and
an opened note carries a signature that verifies. Any other exception is a bug.
"""

from __future__ import annotations

import contextlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelseal.tlog.note import (
    Checkpoint,
    Cosigner,
    NoteError,
    NoteSigner,
    open_note,
    parse_note,
)

# Fixed test keys (the seeds in fuzz/seeds/note/ are signed with them).
LOG = NoteSigner("example.com/log", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
WITNESS = Cosigner("witness.example/w1", Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64))))
VERIFIERS = [LOG.verifier(), WITNESS.verifier()]


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="surrogateescape")

    with contextlib.suppress(NoteError):
        body, signatures = parse_note(text)
        if body + "\n" + "".join(s.line for s in signatures) != text:
            raise AssertionError("a parsed note does not re-serialise to its text")

    with contextlib.suppress(NoteError):
        body, names = open_note(text, VERIFIERS)
        if not names or not text.startswith(body):
            raise AssertionError("an opened note has no verified signer or the wrong text")
        with contextlib.suppress(NoteError):
            Checkpoint.from_text(body)
            lines = [s.line for s in parse_note(text)[1] if s.name == WITNESS.name]
            if lines:
                WITNESS.verifier().verify(body, lines[0])

    with contextlib.suppress(NoteError):
        checkpoint = Checkpoint.from_text(text)
        if checkpoint.to_text() != text:
            raise AssertionError("a parsed checkpoint does not re-serialise to its text")
        if Checkpoint.from_text(checkpoint.to_text()) != checkpoint:
            raise AssertionError("a checkpoint does not round-trip")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
