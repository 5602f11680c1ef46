from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from modelseal.attest.dsse import PAYLOAD_TYPE, sign_envelope, verify_envelope
from modelseal.ca.authority import certificates_from_pem, verify_chain
from modelseal.ca.home import (
    AlreadyInitialised,
    Home,
    init_home,
    note_vkey,
    open_home,
)
from modelseal.ca.keys import load_private_key
from modelseal.ca.revocation import RevokedError, check_not_revoked
from modelseal.errors import InputError

PW = b"test passphrase"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home") / "ms"
    init_home(home, PW)
    return home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "ms"
    init_home(path, PW)
    return path


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_layout(algorithm: str, tmp_path: Path) -> None:
    root = tmp_path / "ms"
    info = init_home(root, PW, algorithm)
    assert info.algorithm == algorithm
    for key in ("ca/root.key", "ca/issuing.key", "log/log.key"):
        assert mode(root / key) == 0o600
        assert (root / key).read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert mode(root / "ca") == 0o700
    assert mode(root / "log") == 0o700
    assert mode(root / "ca" / "ca.db") == 0o600
    for name in ("ca/root.pem", "ca/issuing.pem", "log/origin", "trust/policy.json"):
        assert (root / name).is_file()
    origin = (root / "log" / "origin").read_text().strip()
    assert origin == info.origin
    assert origin.startswith("modelseal.local/log/")
    assert [p.name for p in (root / "trust" / "log").iterdir()] != []
    assert not list(root.glob(".init-*"))  # the staging directory is gone
    with open_home(root, PW) as opened:
        assert opened.algorithm == algorithm
        assert opened.trust.log_vkeys == (info.log_vkey,)
        assert len(opened.trust.roots) == 1
        assert verify_chain(opened.chain_certs, opened.trust.roots) == opened.root_cert
        assert info.trust_dir == root / "trust"
        assert info.root_pem_path == root / "ca" / "root.pem"
        assert opened.path == root
        assert opened.log_db == root / "log" / "log.db"


def test_init_twice_never_overwrites(home: Path) -> None:
    before = snapshot(home)
    with pytest.raises(AlreadyInitialised, match="already initialised") as info:
        init_home(home, PW)
    assert isinstance(info.value, InputError)
    with pytest.raises(AlreadyInitialised):
        init_home(home, b"another passphrase", "ed25519")
    assert snapshot(home) == before


def test_partial_home_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ms"
    (root / "trust").mkdir(parents=True)
    with pytest.raises(AlreadyInitialised, match=r"trust/ exists"):
        init_home(root, PW)
    assert not (root / "ca").exists()


def test_init_beside_existing_cache(tmp_path: Path) -> None:
    root = tmp_path / "ms"
    (root / "cache").mkdir(parents=True)
    (root / "cache" / "digests.db").write_bytes(b"x")
    init_home(root, PW)
    assert (root / "cache" / "digests.db").read_bytes() == b"x"


def test_init_bad_arguments_create_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown key algorithm"):
        init_home(tmp_path / "a", PW, "rsa-2048")
    with pytest.raises(InputError, match="must not be empty"):
        init_home(tmp_path / "b", b"")
    assert not (tmp_path / "a" / "ca").exists()
    assert not (tmp_path / "b" / "ca").exists()


def test_default_home_from_environment(isolated_home: Path) -> None:
    info = init_home(None, PW)
    assert info.paths.root == isolated_home
    with open_home(None, PW) as opened:
        assert opened.paths.root == isolated_home


def test_wrong_passphrase(module_home: Path) -> None:
    with pytest.raises(InputError) as info:
        open_home(module_home, b"not it")
    exc = info.value
    assert str(exc) == f"wrong passphrase for {module_home / 'ca' / 'issuing.key'}"
    shown = exc.diagnostics() + repr(exc)
    for name in ("ca/root.key", "ca/issuing.key", "log/log.key"):
        key = load_private_key(module_home / name, PW)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        assert der.hex() not in shown
        body = "".join((module_home / name).read_text().splitlines()[1:-1])
        assert body[:32] not in shown
    assert "test passphrase" not in shown


def test_not_initialised(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not initialised") as info:
        open_home(tmp_path / "nothing", PW)
    assert "modelseal init" in info.value.diagnostics()


def test_incomplete_home(home: Path) -> None:
    (home / "log" / "origin").unlink()
    with pytest.raises(InputError, match="incomplete"):
        open_home(home, PW)


def test_repr_holds_no_key_material(module_home: Path) -> None:
    with open_home(module_home, PW) as opened:
        text = repr(opened) + repr(opened.issuing_signer) + repr(opened.registry)
        text += repr(opened.log_signer)
        for name in ("ca/issuing.key", "log/log.key"):
            key = load_private_key(module_home / name, PW)
            raw = key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            assert raw.hex() not in text
            assert raw[-32:].hex() not in text
        assert opened.issuing_signer.key_id in repr(opened)


def test_issuing_signer_matches_chain(module_home: Path) -> None:
    with open_home(module_home, PW) as opened:
        env = sign_envelope(PAYLOAD_TYPE, b"{}", opened.issuing_signer)
        assert verify_envelope(env, opened.issuing_cert.public_key()) == b"{}"
        assert len(opened.chain) == 2
        assert opened.chain[0].startswith("-----BEGIN CERTIFICATE-----")
        assert certificates_from_pem("".join(opened.chain)) == list(opened.chain_certs)
        assert opened.chain_pem() == list(opened.chain)
        assert opened.issuing_key.public_key() == opened.issuing_cert.public_key()


def test_log_signer(module_home: Path) -> None:
    note = pytest.importorskip("modelseal.tlog.note")
    with open_home(module_home, PW) as opened:
        signer = opened.log_signer
        assert isinstance(signer, note.NoteSigner)
        assert signer.name == opened.origin
        assert signer.vkey == opened.log_vkey == opened.trust.log_vkeys[0]
        assert note_vkey(opened.origin, opened._log_key.public_key()) == signer.vkey
        text = f"{opened.origin}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        signed = note.sign_note(text, [signer])
        verifier = note.NoteVerifier.from_vkey(opened.trust.log_vkeys[0])
        assert note.open_note(signed, [verifier])[0] == text


def test_registry(home: Path) -> None:
    nb = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    na = nb + dt.timedelta(days=90)
    with open_home(home, PW) as opened:
        reg = opened.registry
        serials = {reg.new_serial() for _ in range(50)}
        assert len(serials) == 50
        assert all(2**62 <= s < 2**63 for s in serials)
        s1, s2 = sorted(serials)[:2]
        reg.record_issued(s1, "model-a sha256:aa", nb, na)
        reg.record_issued(s2, "model-b sha256:bb", "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z")
        b = reg.issued(s2)
        assert b is not None
        assert b.not_before == nb
        with pytest.raises(InputError, match="not an RFC 3339 time"):
            reg.record_issued(reg.new_serial(), "x", "yesterday", na)
        with pytest.raises(InputError, match="already issued"):
            reg.record_issued(s1, "again", nb, na)
        seal = reg.issued(s1)
        assert seal is not None
        assert seal.subject == "model-a sha256:aa"
        assert seal.not_after == na
        assert seal.revoked_at is None
        assert reg.issued(12345) is None
        when = reg.revoke(s1, "keyCompromise")
        assert reg.revoked() == [(s1, when, "key_compromise")]
        with pytest.raises(InputError, match="already revoked"):
            reg.revoke(s1, "superseded")
        with pytest.raises(InputError, match="no seal with serial 99"):
            reg.revoke(99, "superseded")
        with pytest.raises(InputError, match="unknown revocation reason"):
            reg.revoke(s2, "because")
        assert len(reg.all_issued()) == 2

    # persisted across opens
    with open_home(home, PW) as again:
        assert [r[0] for r in again.registry.revoked()] == [s1]
        crl1 = again.crl()
        crl2 = again.crl()
        number = crl2.extensions.get_extension_for_class(type(crl2.extensions[0].value))
        assert number is not None
        check_not_revoked(s2, crl2, again.issuing_cert)
        with pytest.raises(RevokedError, match=rf"seal {s1} was revoked on .* \(key_compromise\)"):
            check_not_revoked(s1, crl1, again.issuing_cert)
        from cryptography import x509

        n1 = crl1.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        n2 = crl2.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert n2 == n1 + 1


def test_home_type_exposes_documented_names(module_home: Path) -> None:
    with open_home(module_home, PW) as opened:
        assert isinstance(opened, Home)
        for name in ("issuing_signer", "chain", "log_signer", "origin", "trust", "registry"):
            assert getattr(opened, name) is not None
