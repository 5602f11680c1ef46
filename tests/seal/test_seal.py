"""init -> certify -> verify end to end through the CLI, and the negative matrix of `verify`.

Each way a seal can be wrong must fail `verify` (exit 1) in its own named check with its own
reason, while every other check still runs.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import modelseal.ca.keys
from tests.conftest import CliResult

PASS = "test passphrase"


@pytest.fixture(autouse=True)
def fast_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelseal.ca.keys, "KDF_ROUNDS", 1000)
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", PASS)


def make_release(root: Path, seed: int = 0) -> Path:
    root.mkdir(parents=True)
    save_file({"w": np.full((8, 8), seed, np.float32)}, str(root / "model.safetensors"))
    (root / "config.json").write_text(json.dumps({"architectures": ["Tiny"], "seed": seed}))
    (root / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n# tiny-{seed}\n")
    return root


class World:
    def __init__(self, tmp: Path, cli: Callable[..., CliResult]) -> None:
        self.tmp = tmp
        self.cli = cli
        self.home = tmp / "home"
        self.trust = self.home / "trust"
        assert cli("init", "--home", self.home).code == 0
        self.release = make_release(tmp / "release")
        self.bundle = tmp / "release.seal.json"
        result = cli("certify", self.release, "-o", self.bundle, "--home", self.home)
        assert result.code == 0, result.err

    def verify(
        self, *extra: object, release: Path | None = None, bundle: Path | None = None
    ) -> dict:
        result = self.cli(
            "verify",
            release or self.release,
            "--bundle",
            bundle or self.bundle,
            "--trust",
            self.trust,
            "--json",
            *extra,
        )
        doc = json.loads(result.out)
        assert result.code == (0 if doc["valid"] else 1)
        return doc

    def bundle_doc(self) -> dict:
        return json.loads(self.bundle.read_text())

    def write_bundle(self, doc: dict, name: str = "altered.seal.json") -> Path:
        path = self.tmp / name
        path.write_text(json.dumps(doc))
        return path


@pytest.fixture
def world(tmp_path: Path, cli: Callable[..., CliResult]) -> World:
    return World(tmp_path, cli)


def failed(doc: dict) -> dict[str, str]:
    return {c["check"]: c["reason"] for c in doc["checks"] if not c["ok"]}


def test_a_fresh_seal_verifies(world: World) -> None:
    doc = world.verify()
    assert doc["valid"]
    assert {c["check"] for c in doc["checks"]} == {
        "signature", "statement", "chain", "validity", "files", "log", "revocation",
    }  # fmt: skip
    assert doc["root"].startswith("sha256:")
    reports = sorted(p.name for p in world.tmp.glob("release.*.json"))
    assert reports == ["release.audit.json", "release.scan.json", "release.seal.json"]
    text = world.bundle.read_text()
    assert "PRIVATE KEY" not in text
    assert PASS not in text


def test_init_twice_never_overwrites(world: World) -> None:
    key = (world.home / "ca" / "issuing.key").read_bytes()
    again = world.cli("init", "--home", world.home)
    assert again.code == 2
    assert "already initialised" in again.err
    assert (world.home / "ca" / "issuing.key").read_bytes() == key
    assert (world.home / "ca" / "issuing.key").stat().st_mode & 0o777 == 0o600


def test_wrong_passphrase_is_a_clear_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "not it")
    result = world.cli("certify", world.release, "--home", world.home, "-o", world.tmp / "x.json")
    assert result.code == 2
    assert "wrong passphrase" in result.err
    assert "PRIVATE" not in result.err


# --- the negative matrix ---------------------------------------------------------------------


def test_flipped_byte(world: World) -> None:
    weights = world.release / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    problems = failed(world.verify())
    assert set(problems) == {"files"}
    assert "modified: model.safetensors" in problems["files"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("add", "added: extra.py"),
        ("remove", "removed: config.json"),
        ("rename", "renamed: config.json -> config2.json"),
    ],
)
def test_files_added_removed_renamed(world: World, change: str, expected: str) -> None:
    if change == "add":
        (world.release / "extra.py").write_text("print('hi')\n")
    elif change == "remove":
        (world.release / "config.json").unlink()
    else:
        (world.release / "config.json").rename(world.release / "config2.json")
    problems = failed(world.verify())
    assert set(problems) == {"files"}
    assert expected in problems["files"]


def test_tampered_statement(world: World) -> None:
    doc = world.bundle_doc()
    statement = json.loads(base64.b64decode(doc["envelope"]["payload"]))
    statement["predicate"]["notAfter"] = "2099-01-01T00:00:00Z"
    doc["envelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    problems = failed(world.verify(bundle=world.write_bundle(doc)))
    assert "signature" in problems
    assert "log" in problems  # the logged envelope was the original one


def test_signature_by_an_untrusted_key(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from modelseal.attest.dsse import pae

    doc = world.bundle_doc()
    payload = base64.b64decode(doc["envelope"]["payload"])
    stranger = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import hashes

    sig = stranger.sign(pae(doc["envelope"]["payloadType"], payload), ec.ECDSA(hashes.SHA256()))
    doc["envelope"]["signatures"] = [{"keyid": "", "sig": base64.b64encode(sig).decode()}]
    problems = failed(world.verify(bundle=world.write_bundle(doc)))
    assert "signature" in problems


def test_chain_to_another_root(world: World, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    assert world.cli("init", "--home", other).code == 0
    result = world.cli(
        "verify", world.release, "--bundle", world.bundle, "--trust", other / "trust", "--json"
    )
    problems = failed(json.loads(result.out))
    assert result.code == 1
    assert "chain" in problems
    assert "log" in problems  # the other trust store knows another log key too


def test_issuing_certificate_outside_its_validity(world: World) -> None:
    problems = failed(world.verify("--at", "2031-01-01T00:00:00Z"))
    assert "chain" in problems
    assert "validity" in problems  # the seal (365 days) has expired too


def test_expired_and_not_yet_valid_seal(world: World) -> None:
    expired = failed(world.verify("--at", "2028-06-01T00:00:00Z"))
    assert "expired" in expired["validity"]
    early = failed(world.verify("--at", "2020-01-01T00:00:00Z"))
    assert "not valid before" in early["validity"]


def test_revoked_serial(world: World) -> None:
    serial = world.verify()["serial"]
    result = world.cli(
        "revoke", serial, "--reason", "superseded", "--comment", "new weights", "--home", world.home
    )
    assert result.code == 0, result.err
    crl = world.tmp / "revoked.crl"
    assert world.cli("crl", "-o", crl, "--home", world.home).code == 0
    problems = failed(world.verify("--crl", crl))
    assert set(problems) == {"revocation"}
    assert f"seal {serial} was revoked" in problems["revocation"]
    # an unknown reason code changes nothing
    assert world.cli("revoke", serial, "--reason", "because", "--home", world.home).code == 2


def test_inclusion_proof_for_another_tree(world: World) -> None:
    second = make_release(world.tmp / "second", seed=1)
    other = world.tmp / "second.seal.json"
    assert world.cli("certify", second, "-o", other, "--home", world.home).code == 0
    doc = world.bundle_doc()
    doc["tlog"] = json.loads(other.read_text())["tlog"]  # a valid proof, for another entry
    problems = failed(world.verify(bundle=world.write_bundle(doc)))
    assert set(problems) == {"log"}


def test_checkpoint_signed_by_an_unknown_log_key(world: World, tmp_path: Path) -> None:
    from modelseal.ca.truststore import load_trust, save_trust

    other = tmp_path / "other-home"
    assert world.cli("init", "--home", other).code == 0
    mine = load_trust(world.trust)
    theirs = load_trust(other / "trust")
    mixed = tmp_path / "mixed-trust"
    save_trust(mixed, type(mine)(mine.roots, theirs.log_vkeys, (), 0))
    result = world.cli(
        "verify", world.release, "--bundle", world.bundle, "--trust", mixed, "--json"
    )
    problems = failed(json.loads(result.out))
    assert set(problems) == {"log"}
    assert "not signed by a trusted log" in problems["log"]


def test_envelope_swapped_with_another_releases(world: World) -> None:
    second = make_release(world.tmp / "second", seed=2)
    other = world.tmp / "second.seal.json"
    assert world.cli("certify", second, "-o", other, "--home", world.home).code == 0
    doc = world.bundle_doc()
    doc["envelope"] = json.loads(other.read_text())["envelope"]
    problems = failed(world.verify(bundle=world.write_bundle(doc)))
    assert "files" in problems
    assert "log" in problems  # the proof is for the original envelope


def test_certify_refuses_a_dangerous_release(world: World) -> None:
    bad = world.tmp / "bad"
    shutil.copytree(world.release, bad)
    (bad / "pytorch_model.bin").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    result = world.cli("certify", bad, "--home", world.home, "-o", world.tmp / "bad.json")
    assert result.code == 2
    assert "refusing to certify" in result.err
    assert not (world.tmp / "bad.json").exists()


def test_malformed_bundle_is_a_usage_error(world: World) -> None:
    junk = world.tmp / "junk.json"
    junk.write_text('{"mediaType": "nope"}')
    result = world.cli("verify", world.release, "--bundle", junk, "--trust", world.trust)
    assert result.code == 2
    assert "not a valid seal bundle" in result.err


# --- the log as a service --------------------------------------------------------------------


def test_revocation_through_the_log_server(world: World) -> None:
    """certify into the home's log, revoke, then `verify --log URL` finds the revocation."""
    from modelseal.ca.home import open_home
    from modelseal.tlog.log import Log
    from modelseal.tlog.server import create_app
    from modelseal.tlog.store import open_store
    from tests.tlog.test_server import serving

    serial = world.verify()["serial"]
    assert world.cli("revoke", serial, "--reason", "key-compromise", "--home", world.home).code == 0
    home = open_home(world.home, PASS)
    log = Log(open_store(f"sqlite:///{home.log_db}"), home.origin, home.log_signer)
    try:
        with serving(create_app(log, [home.issuing_cert.public_key()])) as url:
            problems = failed(world.verify("--log", url))
    finally:
        log.close()
        home.close()
    assert set(problems) == {"revocation"}
    assert "log entry 1" in problems["revocation"]


# --- OpenSSF model signing interop -----------------------------------------------------------


def test_sign_model_signing_verifies_with_the_real_cli(world: World) -> None:
    import subprocess
    import sys

    sig = world.tmp / "model.sig"
    assert world.cli("sign", world.release, "-o", sig, "--home", world.home).code == 0
    pub = world.tmp / "pub.pem"
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((world.home / "ca" / "issuing.pem").read_bytes())
    pub.write_bytes(
        cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ms = Path(sys.executable).parent / "model_signing"
    ok = subprocess.run(
        [ms, "verify", "key", world.release, "--signature", sig, "--public_key", pub],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    ours = world.cli("verify", world.release, "--model-signing-sig", sig, "--public-key", pub)
    assert ours.code == 0
    (world.release / "config.json").write_text("{}")
    assert (
        world.cli("verify", world.release, "--model-signing-sig", sig, "--public-key", pub).code
        == 1
    )


def test_witness_threshold(world: World, tmp_path: Path) -> None:
    """A trust policy of 1-of-1 witnesses: the bare checkpoint fails, a cosigned one passes."""
    import time

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelseal.ca.truststore import load_trust, save_trust
    from modelseal.tlog.note import Cosigner, add_signatures, parse_note

    witness = Cosigner("witness.example", Ed25519PrivateKey.generate())
    mine = load_trust(world.trust)
    policy = tmp_path / "policy-trust"
    save_trust(policy, type(mine)(mine.roots, mine.log_vkeys, (witness.vkey,), 1))

    def verify(bundle: Path) -> dict:
        result = world.cli("verify", world.release, "--bundle", bundle, "--trust", policy, "--json")
        return json.loads(result.out)

    problems = failed(verify(world.bundle))
    assert set(problems) == {"log"}
    assert "0 trusted witness cosignature(s), the policy needs 1" in problems["log"]
    doc = world.bundle_doc()
    text, _ = parse_note(doc["tlog"]["checkpoint"])
    line = witness.cosign(text, int(time.time()))
    doc["tlog"]["checkpoint"] = add_signatures(doc["tlog"]["checkpoint"], [line])
    assert verify(world.write_bundle(doc, "cosigned.seal.json"))["valid"]
    # a cosignature by another witness does not count
    stranger = Cosigner("witness.example", Ed25519PrivateKey.generate())
    doc = world.bundle_doc()
    doc["tlog"]["checkpoint"] = add_signatures(
        doc["tlog"]["checkpoint"], [stranger.cosign(text, int(time.time()))]
    )
    assert set(failed(verify(world.write_bundle(doc, "stranger.seal.json")))) == {"log"}


def test_garbage_certificate_in_the_bundle_is_a_clean_failure(world: World) -> None:
    doc = world.bundle_doc()
    doc["chain"][0] = doc["chain"][0].replace("MII", "MIJ", 1)
    problems = failed(world.verify(bundle=world.write_bundle(doc)))
    assert "chain" in problems
    assert "cannot be read" in problems["chain"]


def test_log_monitor_cli_alarms_on_a_fork(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """Two logs with one key and origin but different entries: the monitor exits 1."""
    from modelseal.ca.truststore import TrustStore, save_trust
    from modelseal.tlog.log import Log
    from modelseal.tlog.note import NoteSigner, generate_vkey_pair
    from modelseal.tlog.server import create_app
    from modelseal.tlog.store import open_store
    from tests.tlog.test_server import serving

    key, vkey = generate_vkey_pair("fork.example/log")
    trust = tmp_path / "trust"
    save_trust(trust, TrustStore((), (vkey,), (), 0))
    state = tmp_path / "monitor.json"
    for name, entries in (("a", [b"one", b"two"]), ("b", [b"one", b"TWO"])):
        log = Log(
            open_store(f"sqlite:///{tmp_path / name}.db"),
            "fork.example/log",
            NoteSigner("fork.example/log", key),
        )
        try:
            log.append(entries)
            with serving(create_app(log, [])) as url:
                result = cli(
                    "log", "monitor", url, "--trust", trust, "--state", state, "--count", "1"
                )
        finally:
            log.close()
        if name == "a":
            assert result.code == 0, result.err
            assert "2 entries, consistent" in result.out
        else:
            assert result.code == 1
            assert "ALARM" in result.err


def test_log_witness_cli_cosigns_and_the_log_serves_it(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelseal.ca.truststore import TrustStore, save_trust
    from modelseal.tlog.client import LogClient
    from modelseal.tlog.log import Log
    from modelseal.tlog.note import Cosigner, NoteSigner, generate_vkey_pair
    from modelseal.tlog.server import create_app
    from modelseal.tlog.store import open_store
    from tests.tlog.test_server import serving

    key, vkey = generate_vkey_pair("w.example/log")
    trust = tmp_path / "trust"
    save_trust(trust, TrustStore((), (vkey,), (), 0))
    witness_key = Ed25519PrivateKey.generate()
    pem = tmp_path / "witness.pem"
    pem.write_bytes(
        witness_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    witness = Cosigner("witness.example", witness_key)
    log = Log(
        open_store(f"sqlite:///{tmp_path / 'w.db'}"),
        "w.example/log",
        NoteSigner("w.example/log", key),
        witnesses=[witness.verifier()],
    )
    try:
        log.append([b"a", b"b", b"c"])
        with serving(create_app(log, [])) as url:
            result = cli(
                "log", "witness", url, "--key", pem, "--name", "witness.example",
                "--trust", trust, "--state", tmp_path / "w.json",
            )  # fmt: skip
            assert result.code == 0, result.err
            served = LogClient(url).checkpoint()
    finally:
        log.close()
    assert result.out.strip() in served
    assert result.out.startswith("\u2014 witness.example ")
