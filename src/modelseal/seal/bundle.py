"""The seal bundle: the file users pass around, like a ``.pem`` (envelope, chain, log proof).

    {"mediaType": "application/vnd.modelseal.seal-bundle.v1+json",
     "envelope": {DSSE envelope of the seal statement},
     "chain": [issuing certificate PEM, root certificate PEM],
     "tlog": {"origin": "...", "index": 41, "treeSize": 42,
              "hashes": [base64 inclusion-path hashes], "checkpoint": "signed note text"}}

Parsing is strict: anything else is an :class:`~modelseal.errors.InputError` that says what is
wrong, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from modelseal.errors import InputError

MEDIA_TYPE = "application/vnd.modelseal.seal-bundle.v1+json"
MAX_BUNDLE_BYTES = 64 << 20


@dataclass(frozen=True)
class LogProof:
    """Where the seal is in the transparency log, and the proof of it."""

    origin: str
    index: int
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str  # the signed note the proof verifies against

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "index": self.index,
            "treeSize": self.tree_size,
            "hashes": [base64.b64encode(h).decode() for h in self.hashes],
            "checkpoint": self.checkpoint,
        }


@dataclass(frozen=True)
class SealBundle:
    envelope: dict[str, Any]  # the DSSE envelope as JSON (attest.dsse.Envelope.to_dict())
    chain: tuple[str, ...]  # PEM certificates: issuing first, root last
    tlog: LogProof

    def to_dict(self) -> dict[str, Any]:
        return {
            "mediaType": MEDIA_TYPE,
            "envelope": self.envelope,
            "chain": list(self.chain),
            "tlog": self.tlog.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: str | bytes, source: str = "bundle") -> SealBundle:
        if len(data) > MAX_BUNDLE_BYTES:
            raise InputError(f"{source}: {len(data)} bytes is too large for a seal bundle")
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{source} is not JSON: {exc}") from None
        return cls.from_dict(doc, source)

    @classmethod
    def from_dict(cls, doc: object, source: str = "bundle") -> SealBundle:
        problems: list[str] = []
        if not isinstance(doc, dict):
            raise InputError(f"{source} is not a seal bundle (a JSON object is expected)")
        if doc.get("mediaType") != MEDIA_TYPE:
            problems.append(f"mediaType must be {MEDIA_TYPE!r}, got {doc.get('mediaType')!r}")
        envelope = doc.get("envelope")
        if not isinstance(envelope, dict):
            problems.append("envelope must be a DSSE envelope object")
        chain = doc.get("chain")
        if not (isinstance(chain, list) and chain and all(isinstance(c, str) for c in chain)):
            problems.append("chain must be a non-empty list of PEM certificates")
        tlog = doc.get("tlog")
        proof = None
        if not isinstance(tlog, dict):
            problems.append(
                "tlog must be an object with origin, index, treeSize, hashes, checkpoint"
            )
        else:
            proof = _log_proof(tlog, problems)
        if problems or proof is None:
            raise InputError(f"{source} is not a valid seal bundle:\n  " + "\n  ".join(problems))
        assert isinstance(envelope, dict)
        assert isinstance(chain, list)
        return cls(envelope, tuple(chain), proof)


def _log_proof(tlog: dict[str, Any], problems: list[str]) -> LogProof | None:
    origin, index, size = tlog.get("origin"), tlog.get("index"), tlog.get("treeSize")
    hashes, checkpoint = tlog.get("hashes"), tlog.get("checkpoint")
    ok = True
    if not isinstance(origin, str) or not origin:
        problems.append("tlog.origin must be a non-empty string")
        ok = False
    for name, value in (("index", index), ("treeSize", size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"tlog.{name} must be a non-negative integer")
            ok = False
    if ok and isinstance(index, int) and isinstance(size, int) and index >= size:
        problems.append(f"tlog.index {index} is not below tlog.treeSize {size}")
        ok = False
    decoded: list[bytes] = []
    if not isinstance(hashes, list) or len(hashes) > 64:
        problems.append("tlog.hashes must be a list of at most 64 base64 hashes")
        ok = False
    else:
        for i, h in enumerate(hashes):
            try:
                raw = base64.b64decode(h, validate=True) if isinstance(h, str) else b""
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                problems.append(f"tlog.hashes[{i}] is not a base64 32-byte hash")
                ok = False
            decoded.append(raw)
    if not isinstance(checkpoint, str) or not checkpoint.endswith("\n"):
        problems.append("tlog.checkpoint must be a signed note (text ending in a newline)")
        ok = False
    if not ok:
        return None
    assert isinstance(origin, str)
    assert isinstance(index, int)
    assert isinstance(size, int)
    assert isinstance(checkpoint, str)
    return LogProof(origin, index, size, tuple(decoded), checkpoint)
