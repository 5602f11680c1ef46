"""A trust store: what a verifier trusts, as a directory anyone can inspect and copy::

    trust/
      roots/*.pem          root CA certificates (seal issuers chain to one of these)
      log/*.vkey           transparency-log public keys (C2SP signed-note vkeys, one per file)
      witnesses/*.vkey     witness public keys (C2SP vkeys, one per file)
      policy.json          {"witness_threshold": k}: cosignatures required from the witnesses

A missing ``policy.json`` means a threshold of 0. Nothing in a trust store is secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from modelseal.ca.authority import fingerprint
from modelseal.errors import InputError

MAX_TRUST_FILE_BYTES = 1024 * 1024
_VKEY = re.compile(r"\A([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)\Z")

__all__ = ["TrustStore", "load_trust", "save_trust", "vkey_name"]


@dataclass(frozen=True)
class TrustStore:
    """Roots, log keys, witness keys and how many witness cosignatures a checkpoint needs."""

    roots: Sequence[x509.Certificate] = ()
    log_vkeys: Sequence[str] = ()
    witness_vkeys: Sequence[str] = ()
    witness_threshold: int = 0
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roots", tuple(self.roots))
        object.__setattr__(self, "log_vkeys", tuple(self.log_vkeys))
        object.__setattr__(self, "witness_vkeys", tuple(self.witness_vkeys))
        for vkey in (*self.log_vkeys, *self.witness_vkeys):
            _check_vkey(vkey, "trust store")
        t = self.witness_threshold
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise InputError(f"witness_threshold must be a non-negative integer, got {t!r}")
        if t > len(self.witness_vkeys):
            raise InputError(
                f"the trust store requires {t} witness cosignature(s) but lists "
                f"{len(self.witness_vkeys)} witness key(s)"
            )


def vkey_name(vkey: str) -> str:
    """The key name of a C2SP vkey (``name+hexid+base64``)."""
    return vkey.split("+", 1)[0]


def _check_vkey(vkey: str, where: str) -> None:
    m = _VKEY.match(vkey) if isinstance(vkey, str) else None
    if m is None:
        raise InputError(f"{where}: not a signed-note verifier key (name+hex id+base64 key)")
    try:
        raw = base64.b64decode(m.group(3), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: verifier key {m.group(1)!r} has bad base64") from None
    if not raw:
        raise InputError(f"{where}: verifier key {m.group(1)!r} is empty")


def _read_small(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_TRUST_FILE_BYTES:
            raise InputError(f"{path} is too large for a trust-store file")
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def _files(directory: Path, suffix: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(suffix) and p.is_file())


def load_trust(directory: str | os.PathLike[str]) -> TrustStore:
    """Read a trust-store directory (InputError naming the file at fault)."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError(
            f"no trust store at {root}", hint="run `modelseal init`, or pass --trust DIR"
        )
    roots: list[x509.Certificate] = []
    for path in _files(root / "roots", ".pem"):
        try:
            certs = x509.load_pem_x509_certificates(_read_small(path))
        except ValueError:
            raise InputError(f"{path} is not a PEM certificate") from None
        roots.extend(certs)
    log_vkeys = [_read_vkey(p) for p in _files(root / "log", ".vkey")]
    witness_vkeys = [_read_vkey(p) for p in _files(root / "witnesses", ".vkey")]
    threshold = 0
    policy = root / "policy.json"
    if policy.exists():
        try:
            doc = json.loads(_read_small(policy))
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"{policy} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise InputError(f"{policy} must be a JSON object")
        raw = doc.get("witness_threshold", 0)
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise InputError(f"{policy}: witness_threshold must be a non-negative integer")
        threshold = raw
    try:
        return TrustStore(roots, log_vkeys, witness_vkeys, threshold, source=root)
    except InputError as exc:
        raise InputError(f"{root}: {exc.message}") from None


def _read_vkey(path: Path) -> str:
    try:
        text = _read_small(path).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    _check_vkey(text, str(path))
    return text


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "key"


def _write(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_trust(directory: str | os.PathLike[str], trust: TrustStore) -> Path:
    """Write ``trust`` into ``directory`` (created if needed); returns the directory.

    Files are named by content (a root by its SHA-256 fingerprint, a vkey by its name and key
    id), so saving adds what is new and rewrites nothing else; ``policy.json`` is replaced.
    """
    root = Path(directory)
    for sub in ("roots", "log", "witnesses"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for cert in trust.roots:
        _write(
            root / "roots" / f"{fingerprint(cert)[:16]}.pem",
            cert.public_bytes(serialization.Encoding.PEM),
        )
    for sub, vkeys in (("log", trust.log_vkeys), ("witnesses", trust.witness_vkeys)):
        for vkey in vkeys:
            name, key_id = vkey.split("+")[:2]
            _write(root / sub / f"{_safe_name(name)}-{key_id}.vkey", (vkey + "\n").encode())
    policy = {"witness_threshold": trust.witness_threshold}
    _write(root / "policy.json", (json.dumps(policy, indent=2) + "\n").encode())
    return root
