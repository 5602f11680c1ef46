"""C2SP signed notes, checkpoints and Ed25519 cosignatures.

- https://c2sp.org/signed-note: a text ending in a newline, a blank line, then signature lines
  ``"\u2014 <key name> base64(key ID || signature)"``; key ID =
  SHA-256(name || 0x0A || type || public key)[:4]; verifier keys ("vkeys") are
  ``name+hex(key ID)+base64(type || public key)``. Signatures by unknown keys are ignored, a
  signature by a known key that fails rejects the note, and a note without any verified
  signature is rejected.
- https://c2sp.org/tlog-checkpoint: the note text ``origin\\nsize\\nbase64(root)\\n`` plus
  optional non-empty extension lines.
- https://c2sp.org/tlog-cosignature (v1, Ed25519, type 0x04): a witness signs
  ``"cosignature/v1\\ntime <t>\\n" + checkpoint text``; the signature is
  ``8-byte big-endian t || Ed25519 signature``.

Parsing is strict (canonical base64, no leading zeros, no control characters, valid UTF-8) and
every way a note, checkpoint or signature line can be wrong raises :class:`NoteError` with a
one-line reason. Bad *arguments* of our own (an invalid key name for a new signer, text that
cannot be signed, a malformed vkey in configuration) raise :class:`~modelseal.errors.InputError`.

A "signature line" returned by :meth:`NoteSigner.sign` and :meth:`Cosigner.cosign` ends with
``"\\n"``, as in a note; functions that take lines accept them with or without it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from modelseal.errors import InputError, VerificationError
from modelseal.tlog.hashing import HASH_SIZE

__all__ = [
    "COSIGNATURE_TYPE",
    "ED25519_TYPE",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CosignatureVerifier",
    "Cosigner",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Verifier",
    "add_signatures",
    "generate_vkey_pair",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_note",
    "sign_note",
    "verifier_from_vkey",
    "verify_cosignatures",
]

ED25519_TYPE = 0x01
COSIGNATURE_TYPE = 0x04
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1 << 20  # characters; a checkpoint with 100 signatures is under 20 kB
MAX_TIMESTAMP = (1 << 63) - 1
MAX_TREE_SIZE = (1 << 64) - 1

DASH = "\u2014"  # EM DASH, the first character of every signature line
_SIG_PREFIX = DASH + " "
_COSIGNATURE_HEADER = "cosignature/v1\n"
_ED25519_SIG_SIZE = 64
_ED25519_KEY_SIZE = 32
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # re.fullmatch; at most 20 digits
_HEX_ID = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(VerificationError):
    """A signed note, checkpoint or cosignature is malformed or does not verify."""


# --------------------------------------------------------------------------------------------
# Shared checks


def _text_problem(text: str, what: str) -> str | None:
    """Why ``text`` is not an acceptable note text (or note), or None."""
    if not isinstance(text, str):
        return f"{what} must be a str, got {type(text).__name__}"
    if len(text) > MAX_NOTE_SIZE:
        return f"{what} is longer than {MAX_NOTE_SIZE} characters"
    if not text.endswith("\n"):
        return f"{what} must end with a newline"
    match = _CONTROL.search(text)
    if match is not None:
        return f"{what} contains the control character U+{ord(match.group()):04X}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{what} is not valid UTF-8 (it contains a lone surrogate)"
    return None


def _name_problem(name: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "a key name must be a non-empty string"
    if "+" in name or any(c.isspace() for c in name):
        return f"key name {name!r} contains a space or '+'"
    if _CONTROL.search(name) or "\n" in name:
        return f"key name {name!r} contains a control character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"key name {name!r} is not valid UTF-8"
    return None


def _b64decode(value: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 section 4, padded, canonical), or None."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != value:
        return None  # non-canonical: stray bits in the last character
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || signature type || public key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _vkey(name: str, kid: bytes, signature_type: int, public_key: bytes) -> str:
    return f"{name}+{kid.hex()}+{_b64(bytes([signature_type]) + public_key)}"


def _parse_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """(name, key ID, signature type, public key) of a vkey; InputError when malformed."""
    if not isinstance(vkey, str):
        raise InputError("a verifier key must be a string")
    parts = vkey.strip().split("+", 2)  # the name has no "+"; the base64 key may
    if len(parts) != 3:
        raise InputError("a verifier key has the form name+hex(key id)+base64(type || key)")
    name, hex_id, key_b64 = parts
    problem = _name_problem(name)
    if problem is not None:
        raise InputError(f"verifier key: {problem}")
    if not _HEX_ID.fullmatch(hex_id):
        raise InputError(f"verifier key {name}: key id {hex_id!r} is not 8 hex digits")
    raw = _b64decode(key_b64)
    if raw is None or len(raw) < 2:
        raise InputError(f"verifier key {name}: the key is not valid base64")
    signature_type, public_key = raw[0], raw[1:]
    kid = bytes.fromhex(hex_id)
    if key_id(name, signature_type, public_key) != kid:
        raise InputError(f"verifier key {name}: key id {hex_id} does not match the key")
    return name, kid, signature_type, public_key


def _load_ed25519(name: str, public_key: bytes) -> Ed25519PublicKey:
    if len(public_key) != _ED25519_KEY_SIZE:
        raise InputError(f"verifier key {name}: an Ed25519 key has 32 bytes, not {len(public_key)}")
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise InputError(f"verifier key {name}: not an Ed25519 public key") from exc


def _ed25519_ok(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    if len(signature) != _ED25519_SIG_SIZE:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Signature lines and notes


@dataclass(frozen=True)
class NoteSignature:
    """One parsed signature line: the key name, the 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    @property
    def line(self) -> str:
        """The signature line, with its final newline."""
        return f"{_SIG_PREFIX}{self.name} {_b64(self.key_id + self.signature)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line (with or without its final newline)."""
        if not isinstance(line, str):
            raise NoteError("a signature line must be a str")
        body = line[:-1] if line.endswith("\n") else line
        if not body.startswith(_SIG_PREFIX):
            raise NoteError("a signature line must start with an em dash and a space")
        fields = body[len(_SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise NoteError("a signature line has the form '<em dash> <name> <base64 signature>'")
        name, encoded = fields
        problem = _name_problem(name)
        if problem is not None:
            raise NoteError(f"signature line: {problem}")
        if len(encoded) > 4 * MAX_NOTE_SIZE // 3 + 4:
            raise NoteError(f"signature line by {name}: the signature is too long")
        raw = _b64decode(encoded)
        if raw is None:
            raise NoteError(f"signature line by {name}: the signature is not canonical base64")
        if len(raw) < 5:
            raise NoteError(f"signature line by {name}: the signature is shorter than 5 bytes")
        return cls(name, raw[:4], raw[4:])


def parse_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines, verifying nothing.

    The text ends at the last blank line and includes its final newline. Joining the text,
    ``"\\n"`` and the lines of the signatures gives back ``note`` exactly.
    """
    problem = _text_problem(note, "a signed note")
    if problem is not None:
        raise NoteError(problem)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("a signed note needs a blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("a signed note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a signed note has more than {MAX_SIGNATURES} signatures")
    return text, [NoteSignature.from_line(line) for line in lines]


class Verifier(Protocol):
    """Anything that can check one note signature: NoteVerifier, CosignatureVerifier."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify_signature(self, text: str, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is valid over the note ``text``."""
        ...


class NoteSigner:
    """Signs note texts with an Ed25519 key under a key name (signature type 0x01)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        problem = _name_problem(name)
        if problem is not None:
            raise InputError(problem)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise InputError("a note signer needs an Ed25519 private key")
        self.name = name
        self._key = private_key
        self.public_key = _raw_public_key(private_key.public_key())
        self.key_id = key_id(name, ED25519_TYPE, self.public_key)
        self.vkey = _vkey(name, self.key_id, ED25519_TYPE, self.public_key)

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()})"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(self.vkey)

    def sign(self, text: str) -> str:
        """The signature line (ending in a newline) of this key over the note ``text``."""
        problem = _text_problem(text, "note text")
        if problem is not None:
            raise InputError(f"cannot sign: {problem}")
        signature = self._key.sign(text.encode("utf-8"))
        return NoteSignature(self.name, self.key_id, signature).line


class NoteVerifier:
    """Checks Ed25519 note signatures (type 0x01) of one key, built from its vkey."""

    signature_type = ED25519_TYPE

    def __init__(self, name: str, public_key: bytes) -> None:
        problem = _name_problem(name)
        if problem is not None:
            raise InputError(problem)
        self._key = _load_ed25519(name, public_key)
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, self.signature_type, self.public_key)
        self.vkey = _vkey(name, self.key_id, self.signature_type, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        name, _, signature_type, public_key = _parse_vkey(vkey)
        if signature_type != cls.signature_type:
            raise InputError(
                f"verifier key {name}: signature type 0x{signature_type:02x}, "
                f"expected 0x{cls.signature_type:02x}"
            )
        return cls(name, public_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, NoteVerifier)
            and type(other) is type(self)
            and other.vkey == self.vkey
        )

    def __hash__(self) -> int:
        return hash(self.vkey)

    def verify_signature(self, text: str, signature: bytes) -> bool:
        return _ed25519_ok(self._key, signature, text.encode("utf-8"))

    def verify_line(self, text: str, line: str) -> None:
        """Check one signature line over ``text``: it must be by this key and verify."""
        problem = _text_problem(text, "note text")
        if problem is not None:
            raise NoteError(problem)
        sig = NoteSignature.from_line(line)
        if sig.name != self.name or sig.key_id != self.key_id:
            raise NoteError(
                f"the signature is by {sig.name}+{sig.key_id.hex()}, "
                f"not {self.name}+{self.key_id.hex()}"
            )
        if not self.verify_signature(text, sig.signature):
            raise NoteError(f"the signature by {self.name} does not verify")


def generate_vkey_pair(name: str) -> tuple[Ed25519PrivateKey, str]:
    """A new Ed25519 key and its note vkey (signature type 0x01)."""
    key = Ed25519PrivateKey.generate()
    return key, NoteSigner(name, key).vkey


def _verifier_table(verifiers: Sequence[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    table: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, bytes(verifier.key_id))
        if slot in table and table[slot] != verifier:
            raise InputError(
                f"two different verifier keys share the name {verifier.name} "
                f"and key id {verifier.key_id.hex()}"
            )
        table[slot] = verifier
    return table


def open_note(note: str, verifiers: Sequence[Verifier]) -> tuple[str, list[str]]:
    """Verify a signed note: (its text, names of the verifiers whose signatures verified).

    Unknown signers are ignored; a known signer whose signature fails, or no verified
    signature at all, raises NoteError.
    """
    text, signatures = parse_note(note)
    table = _verifier_table(verifiers)
    verified: list[str] = []
    for sig in signatures:
        verifier = table.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify_signature(text, sig.signature):
            raise NoteError(f"the signature by {sig.name} ({sig.key_id.hex()}) does not verify")
        if sig.name not in verified:
            verified.append(sig.name)
    if not verified:
        known = ", ".join(sorted({v.name for v in verifiers})) or "none"
        raise NoteError(f"the note has no valid signature by a known key (known: {known})")
    return text, verified


def sign_note(text: str, signers: Sequence[NoteSigner | Cosigner]) -> str:
    """``text`` + a blank line + one signature line per signer."""
    if not signers:
        raise InputError("signing a note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise InputError(f"a note carries at most {MAX_SIGNATURES} signatures")
    lines = [s.sign(text) for s in signers]
    return text + "\n" + "".join(lines)


def add_signatures(note: str, lines: Sequence[str]) -> str:
    """Append signature lines to a signed note (verifying nothing; duplicates are skipped)."""
    text, existing = parse_note(note)
    result = [sig.line for sig in existing]
    for line in lines:
        new = NoteSignature.from_line(line).line
        if new not in result:
            result.append(new)
    if len(result) > MAX_SIGNATURES:
        raise NoteError(f"a signed note has more than {MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(result)


# --------------------------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint note text: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise InputError(problem)

    def _problem(self) -> str | None:
        if not isinstance(self.origin, str) or not self.origin:
            return "a checkpoint origin must be a non-empty string"
        if "\n" in self.origin or _CONTROL.search(self.origin):
            return "a checkpoint origin must be one line without control characters"
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            return "a checkpoint tree size must be an integer"
        if not 0 <= self.size <= MAX_TREE_SIZE:
            return f"checkpoint tree size {self.size} is not within 0..2^64-1"
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            return f"a checkpoint root hash has {HASH_SIZE} bytes"
        if not isinstance(self.extensions, tuple):
            return "checkpoint extensions must be a tuple of lines"
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line or _CONTROL.search(line):
                return "a checkpoint extension line must be one non-empty line"
        return _text_problem(self._render(), "checkpoint text")

    def _render(self) -> str:
        lines = [self.origin, str(self.size), _b64(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """The note text (ends with a newline)."""
        return self._render()

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text (not a signed note: see :func:`open_checkpoint`)."""
        problem = _text_problem(text, "checkpoint text")
        if problem is not None:
            raise NoteError(problem)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"a checkpoint has at least 3 lines, this one has {len(lines)}")
        origin, size_line, root_line, *extensions = lines
        if not origin:
            raise NoteError("the checkpoint origin line is empty")
        if not _SIZE.fullmatch(size_line):
            raise NoteError(
                f"checkpoint tree size {size_line[:40]!r} is not a decimal without leading zeros"
            )
        size = int(size_line)
        if size > MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {size} does not fit in 64 bits")
        root_hash = _b64decode(root_line)
        if root_hash is None:
            raise NoteError("the checkpoint root hash is not canonical base64")
        if len(root_hash) != HASH_SIZE:
            raise NoteError(f"the checkpoint root hash has {len(root_hash)} bytes, not {HASH_SIZE}")
        if any(not line for line in extensions):
            raise NoteError("a checkpoint extension line is empty")
        return cls(origin, size, root_hash, tuple(extensions))


def open_checkpoint(note: str, verifier: Verifier, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note by ``verifier`` (the log key) and parse it.

    With ``origin``, the checkpoint must name that log.
    """
    text, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.from_text(text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


# --------------------------------------------------------------------------------------------
# Cosignatures (tlog-cosignature v1, Ed25519)


def _cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{checkpoint_text}".encode()


class Cosigner:
    """A witness key: cosigns checkpoints (signature type 0x04, timestamped)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        problem = _name_problem(name)
        if problem is not None:
            raise InputError(problem)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise InputError("a cosigner needs an Ed25519 private key")
        self.name = name
        self._key = private_key
        self.public_key = _raw_public_key(private_key.public_key())
        self.key_id = key_id(name, COSIGNATURE_TYPE, self.public_key)
        self.vkey = _vkey(name, self.key_id, COSIGNATURE_TYPE, self.public_key)

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, key_id={self.key_id.hex()})"

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier.from_vkey(self.vkey)

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """The cosignature line (ending in a newline) over a checkpoint text at ``timestamp``
        (POSIX seconds). The text must be a valid checkpoint (NoteError otherwise)."""
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise InputError("a cosignature timestamp must be an integer")
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise InputError(f"cosignature timestamp {timestamp} is not within 0..2^63-1")
        Checkpoint.from_text(checkpoint_text)
        signature = self._key.sign(_cosigned_message(checkpoint_text, timestamp))
        payload = struct.pack(">Q", timestamp) + signature
        return NoteSignature(self.name, self.key_id, payload).line

    def sign(self, text: str) -> str:
        """Cosign at timestamp 0 (for :func:`sign_note`; witnesses use :meth:`cosign`)."""
        return self.cosign(text, 0)


class CosignatureVerifier(NoteVerifier):
    """Checks cosignatures (type 0x04) of one witness key, built from its vkey."""

    signature_type = COSIGNATURE_TYPE

    def timestamp_of(self, text: str, signature: bytes) -> int | None:
        """The timestamp of a valid cosignature payload over ``text``, or None."""
        if len(signature) != 8 + _ED25519_SIG_SIZE:
            return None
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return None
        if not _ed25519_ok(self._key, signature[8:], _cosigned_message(text, timestamp)):
            return None
        return int(timestamp)

    def verify_signature(self, text: str, signature: bytes) -> bool:
        return self.timestamp_of(text, signature) is not None

    def verify(self, checkpoint_text: str, line: str) -> int:
        """Check one cosignature line over a checkpoint text; returns its timestamp."""
        self.verify_line(checkpoint_text, line)
        timestamp = self.timestamp_of(checkpoint_text, NoteSignature.from_line(line).signature)
        if timestamp is None:  # pragma: no cover - verify_line has just checked it
            raise NoteError(f"the cosignature by {self.name} does not verify")
        return timestamp


def verifier_from_vkey(vkey: str) -> NoteVerifier:
    """A NoteVerifier (type 0x01) or CosignatureVerifier (type 0x04) for a vkey."""
    name, _, signature_type, public_key = _parse_vkey(vkey)
    if signature_type == ED25519_TYPE:
        return NoteVerifier(name, public_key)
    if signature_type == COSIGNATURE_TYPE:
        return CosignatureVerifier(name, public_key)
    raise InputError(f"verifier key {name}: unsupported signature type 0x{signature_type:02x}")


def verify_cosignatures(
    note: str, verifiers: Sequence[CosignatureVerifier], threshold: int
) -> dict[str, int]:
    """The witnesses (name -> timestamp) whose cosignatures in ``note`` verify.

    At least ``threshold`` of them must; a known witness whose cosignature fails also raises
    NoteError. This does not check the log's own signature: use :func:`open_checkpoint`.
    """
    text, signatures = parse_note(note)
    table = _verifier_table(verifiers)
    found: dict[str, int] = {}
    for sig in signatures:
        verifier = table.get((sig.name, sig.key_id))
        if not isinstance(verifier, CosignatureVerifier):
            continue
        timestamp = verifier.timestamp_of(text, sig.signature)
        if timestamp is None:
            raise NoteError(f"the cosignature by {sig.name} does not verify")
        found.setdefault(sig.name, timestamp)
    if len(found) < threshold:
        names = ", ".join(sorted(found)) or "none"
        raise NoteError(
            f"{threshold} witness cosignature(s) required, {len(found)} verified ({names})"
        )
    return found
