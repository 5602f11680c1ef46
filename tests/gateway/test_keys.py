"""API keys: generated here, stored as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import re

import pytest

from modelseal.errors import ConfigError
from modelseal.gateway import keys as keys_module
from modelseal.gateway.keys import ApiKey, KeyStore, hash_key, new_key
from modelseal.gateway.policy import ParamPolicy


def test_new_key_format_and_randomness() -> None:
    made = {new_key() for _ in range(200)}
    assert len(made) == 200
    for key in made:
        assert re.fullmatch(r"msk-[A-Za-z0-9_-]{32}", key)


def test_hash_key_is_sha256_of_the_utf8_secret() -> None:
    assert hash_key("msk-abc") == "sha256:" + hashlib.sha256(b"msk-abc").hexdigest()
    assert hash_key("\udcff") == "sha256:" + hashlib.sha256(b"\xed\xb3\xbf").hexdigest()


def _store(admin: str | None = "admin-secret") -> tuple[KeyStore, dict[str, str]]:
    secrets = {"alice": new_key(), "bob": new_key()}
    keys = [
        ApiKey("alice", hash_key(secrets["alice"]), 60, 10_000, ParamPolicy(max_tokens=100)),
        ApiKey("bob", hash_key(secrets["bob"])),
    ]
    return KeyStore(keys, hash_key(admin) if admin else None), secrets


def test_lookup_by_hash_of_the_presented_secret() -> None:
    store, secrets = _store()
    alice = store.lookup(secrets["alice"])
    assert alice is not None
    assert alice.id == "alice"
    assert alice.requests_per_minute == 60.0
    assert alice.policy.max_tokens == 100
    assert store.lookup(secrets["bob"]) == store.get("bob")
    assert store.lookup(secrets["alice"] + "x") is None
    assert store.lookup("") is None
    assert store.lookup(hash_key(secrets["alice"])) is None  # the hash is not a credential
    assert len(store) == 2


def test_store_never_holds_the_secrets() -> None:
    store, secrets = _store()
    held = repr(store) + repr(store.keys) + repr([k.to_dict() for k in store.keys])
    held += repr(vars(store))
    for secret in secrets.values():
        assert secret not in held


def test_admin_token_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    store, secrets = _store()
    calls: list[tuple[bytes, bytes]] = []
    real = keys_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    assert store.is_admin("admin-secret")
    assert not store.is_admin("admin-secreT")
    assert not store.is_admin(secrets["alice"])
    assert len(calls) == 3
    # hashes are compared, never the raw token
    assert all(b"admin-secret" not in a + b for a, b in calls)
    assert not store.is_admin("")


def test_no_admin_token_means_nobody_is_admin() -> None:
    store, _ = _store(admin=None)
    assert not store.is_admin("admin-secret")
    assert not store.is_admin("")


@pytest.mark.parametrize(
    "bad", ["msk-plaintextsecret", "sha256:abc", "sha256:" + "g" * 64, "md5:" + "0" * 32, 5]
)
def test_a_secret_instead_of_a_hash_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="key_hash"):
        ApiKey("k", bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="admin_token_hash"):
        KeyStore([], bad)  # type: ignore[arg-type]


def test_upper_case_hex_is_normalised() -> None:
    upper = hash_key("s").upper().replace("SHA256:", "sha256:")
    store = KeyStore([ApiKey("k", upper)], hash_key("admin").upper().replace("SHA256", "sha256"))
    found = store.lookup("s")
    assert found is not None
    assert found.key_hash == hash_key("s")
    assert store.is_admin("admin")


def test_duplicate_ids_and_hashes_are_refused() -> None:
    h = hash_key("one")
    with pytest.raises(ConfigError, match="duplicate key id"):
        KeyStore([ApiKey("a", h), ApiKey("a", hash_key("two"))], None)
    with pytest.raises(ConfigError, match="same hash"):
        KeyStore([ApiKey("a", h), ApiKey("b", h)], None)
    with pytest.raises(ConfigError, match="admin token"):
        KeyStore([ApiKey("a", h)], h)


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "na\u00efve"])
def test_key_ids_are_label_safe(bad: str) -> None:
    with pytest.raises(ConfigError, match="key id"):
        ApiKey(bad, hash_key("s"))


@pytest.mark.parametrize("bad", [0, -1, True, "60", float("inf")])
def test_limits_must_be_positive_numbers(bad: object) -> None:
    with pytest.raises(ConfigError, match="per minute"):
        ApiKey("k", hash_key("s"), requests_per_minute=bad)  # type: ignore[arg-type]


def test_from_dict_round_trip_and_errors() -> None:
    data = {
        "id": "team-a",
        "key_hash": hash_key("s"),
        "requests_per_minute": 120,
        "tokens_per_minute": 50_000,
        "policy": {"max_tokens": 256, "logprobs": "refuse"},
    }
    key = ApiKey.from_dict(data)
    assert key.policy == ParamPolicy(max_tokens=256, logprobs="refuse")
    assert ApiKey.from_dict(key.to_dict()) == key
    assert ApiKey.from_dict({"id": "x", "key_hash": hash_key("t")}).policy == ParamPolicy()
    with pytest.raises(ConfigError, match="secret"):
        ApiKey.from_dict({**data, "secret": "msk-..."})
    with pytest.raises(ConfigError, match="key_hash"):
        ApiKey.from_dict({"id": "x"})
    with pytest.raises(ConfigError, match="policy"):
        ApiKey.from_dict({**data, "policy": {"max_tokenz": 1}})
