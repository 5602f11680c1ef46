"""``$MODELSEAL_HOME``: the embedded CA, the log key and the trust store of one machine::

    $MODELSEAL_HOME/                 (default ~/.modelseal; see modelseal.release.modelseal_home)
      ca/root.key      0600  root CA private key, encrypted PKCS#8
      ca/root.pem            root CA certificate
      ca/issuing.key   0600  issuing private key (signs seals and revocation lists), encrypted
      ca/issuing.pem         issuing certificate, signed by the root
      ca/ca.db         0600  SQLite registry: issued seals and revocations, CRL numbers
      log/log.key      0600  transparency-log signing key, Ed25519 (C2SP signed notes), encrypted
      log/origin             the log's origin line, e.g. "modelseal.local/log/3f2a9c0d1e2b4a5c"
      log/log.db             the SQLite log itself (created by the log store, not here)
      trust/                 trust store: roots/, log/, witnesses/, policy.json

:func:`init_home` builds all of it in a staging directory and moves it into place; it never
overwrites anything (:class:`AlreadyInitialised`). :func:`open_home` loads what signing needs:
the issuing key (never the root key), the chain, the log key and the registry.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from modelseal.attest.signers import PrivateKey, algorithm_of, signer_for
from modelseal.ca.authority import (
    certificates_from_pem,
    certificates_to_pem,
    create_issuing,
    create_root,
    fingerprint,
)
from modelseal.ca.keys import generate_key, load_private_key, save_private_key
from modelseal.ca.revocation import build_crl, reason_flag
from modelseal.ca.truststore import TrustStore, load_trust, save_trust
from modelseal.errors import InputError, VerificationError

if TYPE_CHECKING:
    from modelseal.attest.signers import EcdsaP256Signer, Ed25519Signer
    from modelseal.tlog.note import NoteSigner

ORIGIN_PREFIX = "modelseal.local/log/"

__all__ = [
    "AlreadyInitialised",
    "Home",
    "HomeInfo",
    "HomePaths",
    "IssuedSeal",
    "Registry",
    "home_paths",
    "init_home",
    "note_vkey",
    "open_home",
]


class AlreadyInitialised(InputError):
    """``init`` found an existing CA, log key or trust store: nothing was changed."""


@dataclass(frozen=True)
class HomePaths:
    """Where everything of a modelseal home lives."""

    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def root_key(self) -> Path:
        return self.ca_dir / "root.key"

    @property
    def root_cert(self) -> Path:
        return self.ca_dir / "root.pem"

    @property
    def issuing_key(self) -> Path:
        return self.ca_dir / "issuing.key"

    @property
    def issuing_cert(self) -> Path:
        return self.ca_dir / "issuing.pem"

    @property
    def ca_db(self) -> Path:
        return self.ca_dir / "ca.db"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def log_key(self) -> Path:
        return self.log_dir / "log.key"

    @property
    def origin_file(self) -> Path:
        return self.log_dir / "origin"

    @property
    def log_db(self) -> Path:
        return self.log_dir / "log.db"

    @property
    def trust_dir(self) -> Path:
        return self.root / "trust"


def home_paths(home: str | os.PathLike[str] | None = None) -> HomePaths:
    """The layout of ``home`` (default ``$MODELSEAL_HOME`` or ``~/.modelseal``)."""
    if home is None:
        from modelseal.release.cache import modelseal_home

        return HomePaths(modelseal_home())
    return HomePaths(Path(home))


@dataclass(frozen=True)
class HomeInfo:
    """What :func:`init_home` created (nothing secret)."""

    paths: HomePaths
    algorithm: str
    root_fingerprint: str
    issuing_fingerprint: str
    origin: str
    log_vkey: str

    @property
    def root_pem_path(self) -> Path:
        return self.paths.root_cert

    @property
    def trust_dir(self) -> Path:
        return self.paths.trust_dir

    @property
    def log_db(self) -> Path:
        return self.paths.log_db


def note_vkey(name: str, public_key: ed25519.Ed25519PublicKey) -> str:
    """The C2SP signed-note verifier key ``name+hex(id)+base64(0x01 || key)`` of an Ed25519 key.

    The key id is the first 4 bytes of SHA-256(name || "\\n" || 0x01 || key).
    """
    raw = b"\x01" + public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    key_id = hashlib.sha256(name.encode("utf-8") + b"\n" + raw).digest()[:4]
    return f"{name}+{key_id.hex()}+{base64.b64encode(raw).decode('ascii')}"


def _write_new(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def init_home(
    home: str | os.PathLike[str] | None,
    passphrase: bytes | str,
    algorithm: str = "ecdsa-p256",
    *,
    root_days: int = 3650,
    issuing_days: int = 825,
    root_name: str = "modelseal root CA",
    issuing_name: str = "modelseal issuing CA",
    now: dt.datetime | None = None,
) -> HomeInfo:
    """Create the CA, the log key and the trust store under ``home``.

    Raises :class:`AlreadyInitialised` (changing nothing) if any of ``ca/``, ``log/`` or
    ``trust/`` exists. The issuing certificate's validity is clamped to the root's.
    """
    paths = home_paths(home)
    _refuse_existing(paths)
    if not (passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase):
        raise InputError("the passphrase must not be empty")
    root_key = generate_key(algorithm)  # validates the algorithm name before any file exists
    issuing_key = generate_key(algorithm)
    log_key = ed25519.Ed25519PrivateKey.generate()
    try:
        paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = Path(tempfile.mkdtemp(prefix=".init-", dir=paths.root))
    except OSError as exc:
        raise InputError(f"cannot create {paths.root}: {exc.strerror}") from None
    try:
        stage = HomePaths(staging)
        stage.ca_dir.mkdir(mode=0o700)
        stage.log_dir.mkdir(mode=0o700)
        root_cert = create_root(root_key, root_name, root_days, not_before=now)
        issuing_cert = create_issuing(
            root_key,
            root_cert,
            issuing_key.public_key(),
            issuing_name,
            issuing_days,
            not_before=now,
        )
        save_private_key(stage.root_key, root_key, passphrase)
        save_private_key(stage.issuing_key, issuing_key, passphrase)
        save_private_key(stage.log_key, log_key, passphrase)
        _write_new(stage.root_cert, certificates_to_pem([root_cert]).encode("ascii"))
        _write_new(stage.issuing_cert, certificates_to_pem([issuing_cert]).encode("ascii"))
        origin = ORIGIN_PREFIX + secrets.token_hex(8)
        _write_new(stage.origin_file, (origin + "\n").encode("ascii"))
        vkey = note_vkey(origin, log_key.public_key())
        Registry.create(stage.ca_db).close()
        save_trust(stage.trust_dir, TrustStore(roots=[root_cert], log_vkeys=[vkey]))
        _refuse_existing(paths)
        for name in ("ca", "log", "trust"):
            target = paths.root / name
            if target.exists():
                raise AlreadyInitialised(f"modelseal home {paths.root} is already initialised")
            os.rename(staging / name, target)
    except OSError as exc:
        raise InputError(f"cannot initialise {paths.root}: {exc.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return HomeInfo(
        paths=paths,
        algorithm=algorithm,
        root_fingerprint=fingerprint(root_cert),
        issuing_fingerprint=fingerprint(issuing_cert),
        origin=origin,
        log_vkey=vkey,
    )


def _refuse_existing(paths: HomePaths) -> None:
    for directory in (paths.ca_dir, paths.log_dir, paths.trust_dir):
        if directory.exists():
            raise AlreadyInitialised(
                f"modelseal home {paths.root} is already initialised ({directory.name}/ exists)",
                hint="nothing was changed; use another MODELSEAL_HOME for a new CA",
            )


# -- the registry of issued seals ----------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seals (
    serial TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    revoked_at TEXT,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class IssuedSeal:
    serial: int
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    issued_at: dt.datetime
    revoked_at: dt.datetime | None
    reason: str | None


def _iso(t: dt.datetime | str) -> str:
    """UTC ISO 8601 text of a datetime or of an RFC 3339 / ISO 8601 string."""
    if isinstance(t, str):
        try:
            t = dt.datetime.fromisoformat(t)
        except ValueError:
            raise InputError(f"not an RFC 3339 time: {t!r}") from None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    return t.isoformat()


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _check_serial(serial: int) -> str:
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
        raise InputError(f"a seal serial is a positive integer, got {serial!r}")
    return str(serial)


class Registry:
    """``ca/ca.db``: every seal this CA issued, and which are revoked."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"CA registry not found: {self.path}")
        self._db = self._connect(self.path)

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Registry:
        target = Path(path)
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = cls._connect(target)
        db.executescript(_SCHEMA)
        db.close()
        return cls(target)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the CA registry {path}: {exc}") from None
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def new_serial(self) -> int:
        """A fresh random 63-bit serial not yet used by this CA."""
        while True:
            serial = secrets.randbelow(1 << 62) + (1 << 62)
            if self.issued(serial) is None:
                return serial

    def record_issued(
        self,
        serial: int,
        subject: str,
        not_before: dt.datetime | str,
        not_after: dt.datetime | str,
    ) -> None:
        """Record an issued seal (times as datetimes or RFC 3339 strings)."""
        key = _check_serial(serial)
        now = _iso(dt.datetime.now(dt.UTC))
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO seals (serial, subject, not_before, not_after, issued_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, subject, _iso(not_before), _iso(not_after), now),
                )
        except sqlite3.IntegrityError:
            raise InputError(f"seal serial {serial} was already issued") from None

    def issued(self, serial: int) -> IssuedSeal | None:
        row = self._db.execute(
            "SELECT serial, subject, not_before, not_after, issued_at, revoked_at, reason "
            "FROM seals WHERE serial = ?",
            (_check_serial(serial),),
        ).fetchone()
        return None if row is None else _row(row)

    def all_issued(self) -> list[IssuedSeal]:
        rows = self._db.execute(
            "SELECT serial, subject, not_before, not_after, issued_at, revoked_at, reason "
            "FROM seals ORDER BY issued_at, serial"
        ).fetchall()
        return [_row(r) for r in rows]

    def revoke(
        self, serial: int, reason: str = "unspecified", when: dt.datetime | None = None
    ) -> dt.datetime:
        """Mark ``serial`` revoked; returns the revocation time (InputError if unknown/revoked)."""
        key = _check_serial(serial)
        flag = reason_flag(reason)
        at = when if when is not None else dt.datetime.now(dt.UTC).replace(microsecond=0)
        with self._write() as db:
            row = db.execute("SELECT revoked_at FROM seals WHERE serial = ?", (key,)).fetchone()
            if row is None:
                raise InputError(f"no seal with serial {serial} was issued by this CA")
            if row[0] is not None:
                raise InputError(f"seal {serial} is already revoked (since {row[0]})")
            db.execute(
                "UPDATE seals SET revoked_at = ?, reason = ? WHERE serial = ?",
                (_iso(at), flag.name, key),
            )
        return _parse(_iso(at))

    def revoked(self) -> list[tuple[int, dt.datetime, str]]:
        """``(serial, revoked_at, reason)`` of every revoked seal, ready for ``build_crl``."""
        rows = self._db.execute(
            "SELECT serial, revoked_at, reason FROM seals WHERE revoked_at IS NOT NULL "
            "ORDER BY revoked_at, serial"
        ).fetchall()
        return [(int(s), _parse(t), r) for s, t, r in rows]

    def next_crl_number(self) -> int:
        with self._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'crl_number'").fetchone()
            number = int(row[0]) + 1 if row else 1
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('crl_number', ?)", (str(number),)
            )
        return number

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"Registry({os.fspath(self.path)!r})"


def _row(row: tuple[Any, ...]) -> IssuedSeal:
    serial, subject, nb, na, issued_at, revoked_at, reason = row
    return IssuedSeal(
        serial=int(serial),
        subject=subject,
        not_before=_parse(nb),
        not_after=_parse(na),
        issued_at=_parse(issued_at),
        revoked_at=_parse(revoked_at) if revoked_at else None,
        reason=reason,
    )


# -- an opened home ------------------------------------------------------------------------------


class Home:
    """An opened modelseal home: what ``certify``, ``revoke`` and ``crl`` need.

    ``chain`` holds the PEM texts (issuing certificate, then root), ``chain_certs`` the parsed
    certificates. The private keys are held privately; the repr shows the path and key ids only.
    """

    def __init__(
        self,
        paths: HomePaths,
        issuing_key: PrivateKey,
        chain: tuple[x509.Certificate, x509.Certificate],
        log_key: ed25519.Ed25519PrivateKey,
        origin: str,
        trust: TrustStore,
        registry: Registry,
    ) -> None:
        self.paths = paths
        self.path = paths.root
        self._issuing_key = issuing_key
        self.issuing_signer: Ed25519Signer | EcdsaP256Signer = signer_for(issuing_key)
        self.chain_certs = chain
        self.chain: tuple[str, ...] = tuple(certificates_to_pem([c]) for c in chain)
        self._log_key = log_key
        self.origin = origin
        self.trust = trust
        self.registry = registry
        self._log_signer: NoteSigner | None = None

    @property
    def algorithm(self) -> str:
        return algorithm_of(self._issuing_key)

    @property
    def issuing_key(self) -> PrivateKey:
        """The issuing private key (for signing revocation lists); never log or print it."""
        return self._issuing_key

    @property
    def issuing_cert(self) -> x509.Certificate:
        return self.chain_certs[0]

    @property
    def root_cert(self) -> x509.Certificate:
        return self.chain_certs[1]

    @property
    def log_db(self) -> Path:
        return self.paths.log_db

    def chain_pem(self) -> list[str]:
        """The chain as PEM strings, issuing certificate first (same as ``chain``)."""
        return list(self.chain)

    @property
    def log_signer(self) -> NoteSigner:
        """The signed-note signer of the log (key name = the origin)."""
        if self._log_signer is None:
            from modelseal.tlog.note import NoteSigner

            self._log_signer = NoteSigner(self.origin, self._log_key)
        return self._log_signer

    @property
    def log_vkey(self) -> str:
        return note_vkey(self.origin, self._log_key.public_key())

    def crl(
        self, at: dt.datetime | None = None, validity: dt.timedelta = dt.timedelta(days=7)
    ) -> x509.CertificateRevocationList:
        """A fresh revocation list of every revoked seal, valid from ``at`` for ``validity``."""
        start = at if at is not None else dt.datetime.now(dt.UTC)
        return build_crl(
            self._issuing_key,
            self.issuing_cert,
            self.registry.revoked(),
            start,
            start + validity,
            self.registry.next_crl_number(),
        )

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> Home:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Home({os.fspath(self.paths.root)!r}, issuing_key_id="
            f"{self.issuing_signer.key_id!r}, origin={self.origin!r})"
        )


def open_home(home: str | os.PathLike[str] | None, passphrase: bytes | str) -> Home:
    """Load the issuing key, chain, log key, trust store and registry of ``home``."""
    paths = home_paths(home)
    if not paths.issuing_cert.exists():
        raise InputError(
            f"modelseal home {paths.root} is not initialised", hint="run `modelseal init`"
        )
    for needed in (paths.root_cert, paths.issuing_key, paths.log_key, paths.origin_file):
        if not needed.exists():
            raise InputError(f"modelseal home {paths.root} is incomplete: {needed} is missing")
    issuing_key = load_private_key(paths.issuing_key, passphrase)
    log_key = load_private_key(paths.log_key, passphrase)
    if not isinstance(log_key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{paths.log_key} must be an Ed25519 key")
    try:
        issuing_cert = certificates_from_pem(paths.issuing_cert.read_bytes())[0]
        root_cert = certificates_from_pem(paths.root_cert.read_bytes())[0]
    except (VerificationError, OSError) as exc:  # a damaged PEM file is an input problem here
        raise InputError(f"cannot read the CA certificates in {paths.ca_dir}: {exc}") from None
    if issuing_cert.public_key() != issuing_key.public_key():
        raise InputError(f"{paths.issuing_key} does not belong to {paths.issuing_cert}")
    origin = paths.origin_file.read_text(encoding="utf-8").strip()
    if not origin or any(c.isspace() or c == "+" for c in origin):
        raise InputError(f"{paths.origin_file} does not hold a valid log origin")
    trust = load_trust(paths.trust_dir)
    registry = Registry(paths.ca_db)
    return Home(paths, issuing_key, (issuing_cert, root_cert), log_key, origin, trust, registry)
