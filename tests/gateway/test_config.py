"""gateway.yaml: defaults, every section, and clear errors naming the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelseal.errors import ConfigError
from modelseal.gateway.config import GatewayConfig, load_config, parse_config

HASH = "sha256:" + "ab" * 32


def test_no_file_gives_safe_defaults() -> None:
    config = load_config(None)
    assert config == GatewayConfig()
    assert config.check_seal == config.check_revocation == config.check_upstream == "closed"
    assert config.guard_mode == "buffer"
    assert config.allow_anonymous  # no keys: a local dev setup
    assert not config.record_prompts


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"""
model: {{id: gemma, upstream_id: gemma.gguf}}
checks: {{interval_s: 60, seal: closed, revocation: open, upstream: open, crl: revoked.crl}}
upstream: {{timeout_s: 30, connect_timeout_s: 2, max_connections: 64}}
guards:
  mode: stream
  input: [{{type: size, max_input_chars: 1000}}]
  output: [{{type: secrets}}]
auth:
  admin_token_hash: "{HASH}"
  keys:
    - {{id: alice, hash: "{HASH}", requests_per_minute: 60, tokens_per_minute: 1000,
        policy: {{max_tokens: 256}}}}
limits: {{redis: "redis://127.0.0.1:6379/0"}}
audit: {{path: audit.db, record_prompts: true}}
receipts: {{key: keys/receipt.key}}
"""
    )
    config = load_config(path)
    assert config.model_id == "gemma"
    assert config.upstream_id == "gemma.gguf"
    assert config.check_revocation == "open"
    assert config.check_interval_s == 60
    assert config.crl == tmp_path / "revoked.crl"  # relative to the config file
    assert config.guard_mode == "stream"
    assert config.input_guards == ({"type": "size", "max_input_chars": 1000},)
    assert config.keys[0].id == "alice"
    assert config.keys[0].requests_per_minute == 60
    assert config.keys[0].policy == {"max_tokens": 256}
    assert not config.allow_anonymous  # keys exist
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.audit_path == tmp_path / "audit.db"
    assert config.record_prompts
    assert config.receipt_key == tmp_path / "keys" / "receipt.key"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"modle": {}}, "unknown section 'modle'"),
        ({"checks": {"seal": "maybe"}}, "checks.seal: expected 'closed' or 'open'"),
        ({"checks": {"sael": "open"}}, "unknown key checks.sael"),
        ({"guards": {"mode": "later"}}, "guards.mode"),
        ({"guards": {"input": {"type": "size"}}}, "guards.input: expected a list"),
        ({"upstream": {"timeout_s": -1}}, "upstream.timeout_s: must be at least"),
        ({"upstream": {"timeout_s": "fast"}}, "upstream.timeout_s: expected a number"),
        ({"auth": {"admin_token_hash": "secret"}}, "auth.admin_token_hash: expected sha256"),
        ({"auth": {"keys": [{"id": "a"}]}}, "every key needs an id and a hash"),
        ({"auth": {"keys": [{"id": "a", "hash": HASH, "rpm": 3}]}}, "unknown key 'rpm'"),
        (
            {"auth": {"keys": [{"id": "a", "hash": HASH}, {"id": "a", "hash": HASH}]}},
            "duplicate key id 'a'",
        ),
        ({"auth": {"anonymous": "yes"}}, "auth.anonymous: expected true or false"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_config_names_the_key(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(doc)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_audit_off() -> None:
    config = parse_config({"audit": {"path": "off"}})
    assert config.audit_off
    assert config.audit_path is None
