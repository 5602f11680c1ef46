from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from modelseal.ca.authority import create_root, fingerprint
from modelseal.ca.home import note_vkey
from modelseal.ca.keys import generate_key
from modelseal.ca.truststore import TrustStore, load_trust, save_trust, vkey_name
from modelseal.errors import InputError


def vkey(name: str) -> str:
    return note_vkey(name, ed25519.Ed25519PrivateKey.generate().public_key())


def same(a: TrustStore, b: TrustStore) -> bool:
    """Equal as sets (a directory has no order)."""
    return (
        {fingerprint(c) for c in a.roots} == {fingerprint(c) for c in b.roots}
        and set(a.log_vkeys) == set(b.log_vkeys)
        and set(a.witness_vkeys) == set(b.witness_vkeys)
        and a.witness_threshold == b.witness_threshold
    )


def test_round_trip(tmp_path: Path) -> None:
    roots = [create_root(generate_key(), "r1", 10), create_root(generate_key("ed25519"), "r2", 10)]
    log = [vkey("example.com/log")]
    witnesses = [vkey("w1.example"), vkey("w2.example"), vkey("w3.example")]
    trust = TrustStore(roots, log, witnesses, 2)
    d = save_trust(tmp_path / "trust", trust)
    assert sorted(p.name for p in d.iterdir()) == ["log", "policy.json", "roots", "witnesses"]
    assert json.loads((d / "policy.json").read_text()) == {"witness_threshold": 2}
    loaded = load_trust(d)
    assert same(loaded, trust)
    assert loaded.source == d
    assert sorted(c.subject.rfc4514_string() for c in loaded.roots) == ["CN=r1", "CN=r2"]
    # saving again changes nothing; saving more adds
    save_trust(d, trust)
    assert same(load_trust(d), trust)
    save_trust(d, TrustStore(witness_vkeys=[vkey("w4.example")], witness_threshold=1))
    merged = load_trust(d)
    assert len(merged.witness_vkeys) == 4
    assert merged.witness_threshold == 1


def test_vkey_name() -> None:
    assert vkey_name(vkey("example.com/log")) == "example.com/log"


def test_tlog_note_vkeys_are_accepted(tmp_path: Path) -> None:
    note = pytest.importorskip("modelseal.tlog.note")
    signer = note.NoteSigner("example.com/log", ed25519.Ed25519PrivateKey.generate())
    d = save_trust(tmp_path / "t", TrustStore(log_vkeys=[signer.vkey]))
    assert load_trust(d).log_vkeys == (signer.vkey,)


def test_threshold_above_witness_count() -> None:
    with pytest.raises(InputError, match="requires 2 witness cosignature"):
        TrustStore(witness_vkeys=[vkey("w")], witness_threshold=2)
    with pytest.raises(InputError, match="non-negative"):
        TrustStore(witness_threshold=-1)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no trust store at") as info:
        load_trust(tmp_path / "missing")
    assert "modelseal init" in info.value.diagnostics()

    d = save_trust(tmp_path / "t", TrustStore(log_vkeys=[vkey("log")]))
    (d / "log" / "bad.vkey").write_text("not a vkey\n")
    with pytest.raises(InputError, match=r"bad\.vkey: not a signed-note verifier key"):
        load_trust(d)
    (d / "log" / "bad.vkey").write_text("name+0011aabb+!!!\n")
    with pytest.raises(InputError, match="not a signed-note verifier key"):
        load_trust(d)
    (d / "log" / "bad.vkey").unlink()

    (d / "roots" / "x.pem").write_text("garbage")
    with pytest.raises(InputError, match=r"x\.pem is not a PEM certificate"):
        load_trust(d)
    (d / "roots" / "x.pem").unlink()

    (d / "policy.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_trust(d)
    (d / "policy.json").write_text('{"witness_threshold": "2"}')
    with pytest.raises(InputError, match="non-negative integer"):
        load_trust(d)
    (d / "policy.json").write_text('{"witness_threshold": 1}')
    with pytest.raises(InputError, match="requires 1 witness"):
        load_trust(d)
    (d / "policy.json").unlink()
    assert load_trust(d).witness_threshold == 0
