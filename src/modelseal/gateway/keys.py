"""API keys: generated here, stored and configured only as hashes.

A key is ``msk-`` followed by 32 URL-safe random characters (192 bits). The gateway keeps
``sha256:<hex>`` of each key, never the key: :meth:`KeyStore.lookup` hashes the presented secret
and looks the hash up, and :meth:`KeyStore.is_admin` compares hashes with
:func:`hmac.compare_digest`. A configured hash that is not ``sha256:`` and 64 hex digits
(stored in lower case) is refused (ConfigError), so a pasted secret never ends up in a
configuration that works.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelseal.errors import ConfigError
from modelseal.gateway.policy import ParamPolicy

__all__ = ["KEY_PREFIX", "ApiKey", "KeyStore", "hash_key", "new_key"]

KEY_PREFIX = "msk-"
_HASH = re.compile(r"\Asha256:[0-9a-fA-F]{64}\Z")
_KEY_ID = re.compile(r"\A[A-Za-z0-9._:@-]{1,64}\Z")


def new_key() -> str:
    """A fresh API key: ``msk-`` + 32 URL-safe characters from :mod:`secrets`."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def hash_key(secret: str) -> str:
    """``sha256:<hex>`` of the UTF-8 bytes of ``secret`` (the form stored and configured)."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _check_hash(what: str, value: object) -> str:
    if not isinstance(value, str) or not _HASH.match(value):
        raise ConfigError(
            f"{what}: expected a key hash 'sha256:' + 64 hex digits",
            hint="store hashes, never keys: modelseal prints the hash when it makes a key "
            "(hash_key(secret))",
        )
    return value.lower()


def _rate(what: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{what}: expected a positive number per minute, got {value!r}")
    if value == float("inf"):
        raise ConfigError(f"{what}: expected a finite number per minute")
    return float(value)


@dataclass(frozen=True)
class ApiKey:
    """One client key: its id (shown in metrics, receipts, audit), hash, limits and policy."""

    id: str
    key_hash: str
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    policy: ParamPolicy = field(default_factory=ParamPolicy)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _KEY_ID.match(self.id):
            raise ConfigError(
                f"key id {self.id!r}: use 1-64 characters from letters, digits and ._:@-"
            )
        object.__setattr__(self, "key_hash", _check_hash(f"key {self.id}: key_hash", self.key_hash))
        object.__setattr__(
            self,
            "requests_per_minute",
            _rate(f"key {self.id}: requests_per_minute", self.requests_per_minute),
        )
        object.__setattr__(
            self,
            "tokens_per_minute",
            _rate(f"key {self.id}: tokens_per_minute", self.tokens_per_minute),
        )
        if not isinstance(self.policy, ParamPolicy):
            raise ConfigError(f"key {self.id}: policy must be a ParamPolicy")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApiKey:
        """From configuration: ``{id, key_hash, requests_per_minute?, tokens_per_minute?,
        policy?}`` (ConfigError naming an unknown or bad key)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"api key: expected a mapping, got {type(data).__name__}")
        known = {"id", "key_hash", "requests_per_minute", "tokens_per_minute", "policy"}
        unknown = sorted(str(k) for k in data if k not in known)
        name = data.get("id", "?")
        if unknown:
            raise ConfigError(f"key {name}: unknown field(s) {', '.join(unknown)}")
        for required in ("id", "key_hash"):
            if required not in data:
                raise ConfigError(f"key {name}: missing {required}")
        policy = data.get("policy")
        return cls(
            id=data["id"],
            key_hash=data["key_hash"],
            requests_per_minute=data.get("requests_per_minute"),
            tokens_per_minute=data.get("tokens_per_minute"),
            policy=ParamPolicy() if policy is None else ParamPolicy.from_dict(policy),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key_hash": self.key_hash,
            "requests_per_minute": self.requests_per_minute,
            "tokens_per_minute": self.tokens_per_minute,
            "policy": self.policy.to_dict(),
        }


class KeyStore:
    """The configured keys, indexed by hash; the admin token's hash (or None: no admin)."""

    def __init__(self, keys: Sequence[ApiKey], admin_token_hash: str | None) -> None:
        self.keys: tuple[ApiKey, ...] = tuple(keys)
        by_hash: dict[str, ApiKey] = {}
        ids: set[str] = set()
        for key in self.keys:
            if key.id in ids:
                raise ConfigError(f"duplicate key id {key.id!r}")
            if key.key_hash in by_hash:
                raise ConfigError(
                    f"keys {by_hash[key.key_hash].id!r} and {key.id!r} have the same hash"
                )
            ids.add(key.id)
            by_hash[key.key_hash] = key
        self._by_hash = by_hash
        self._by_id = {key.id: key for key in self.keys}
        if admin_token_hash is not None:
            admin_token_hash = _check_hash("admin_token_hash", admin_token_hash)
            if admin_token_hash in by_hash:
                raise ConfigError(
                    f"the admin token has the same hash as key {by_hash[admin_token_hash].id!r}"
                )
        self._admin = admin_token_hash.encode("ascii") if admin_token_hash else None

    def lookup(self, secret: str) -> ApiKey | None:
        """The key whose hash is the hash of ``secret``, or None."""
        if not secret:
            return None
        return self._by_hash.get(hash_key(secret))

    def get(self, key_id: str) -> ApiKey | None:
        """The key with id ``key_id``, or None."""
        return self._by_id.get(key_id)

    def is_admin(self, secret: str) -> bool:
        """True when ``secret`` is the admin token (constant-time compare of the hashes)."""
        if self._admin is None or not secret:
            return False
        return hmac.compare_digest(hash_key(secret).encode("ascii"), self._admin)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"KeyStore({len(self.keys)} keys, admin={'yes' if self._admin else 'no'})"
