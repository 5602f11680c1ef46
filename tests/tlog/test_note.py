"""C2SP signed notes, checkpoints and cosignatures: known answers, round trips, strict parsing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError, VerificationError
from modelseal.tlog.note import (
    MAX_SIGNATURES,
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    add_signatures,
    generate_vkey_pair,
    key_id,
    open_checkpoint,
    open_note,
    parse_note,
    sign_note,
    verifier_from_vkey,
    verify_cosignatures,
)

DASH = "\u2014"


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


LOG = NoteSigner("example.com/log", _key(1))
OTHER = NoteSigner("example.com/other", _key(2))
WITNESS = Cosigner("witness.example/w1", _key(3))
WITNESS2 = Cosigner("witness.example/w2", _key(4))
ROOT = hashlib.sha256(b"root").digest()
CHECKPOINT = Checkpoint("example.com/log", 20852163, ROOT)


# --------------------------------------------------------------------------------------------
# Known answers


def test_key_id_by_hand() -> None:
    public = _raw(_key(1))
    expected = hashlib.sha256(b"example.com/log" + b"\x0a" + b"\x01" + public).digest()[:4]
    assert key_id("example.com/log", 0x01, public) == expected
    assert LOG.key_id == expected
    assert LOG.vkey == (
        "example.com/log+" + expected.hex() + "+" + base64.b64encode(b"\x01" + public).decode()
    )
    cosigner_id = hashlib.sha256(b"witness.example/w1\n\x04" + _raw(_key(3))).digest()[:4]
    assert cosigner_id == WITNESS.key_id
    assert WITNESS.vkey.split("+")[2] == base64.b64encode(b"\x04" + _raw(_key(3))).decode()


def test_signature_matches_the_go_note_package_example() -> None:
    """The worked example of golang.org/x/mod/sumdb/note (Ed25519 is deterministic)."""
    skey = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
    signer = NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(skey[1:]))
    assert signer.vkey == "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
    )
    expected = (
        f"{DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
        "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    assert signer.sign(text) == expected
    verifier = NoteVerifier.from_vkey(signer.vkey)
    assert open_note(text + "\n" + expected, [verifier]) == (text, ["PeterNeumann"])


def test_c2sp_cosignature_example_parses() -> None:
    line = (
        f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZ"
        "CB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    )
    sig = NoteSignature.from_line(line)
    assert sig.name == "witness.example.com/w1"
    assert sig.key_id.hex() == "8d66cf3f"
    assert struct.unpack(">Q", sig.signature[:8])[0] == 1679315147
    assert len(sig.signature) == 72
    assert sig.line == line + "\n"


# --------------------------------------------------------------------------------------------
# Signed notes


def test_sign_and_open() -> None:
    text = "hello\n\nworld\n"
    note = sign_note(text, [LOG, OTHER])
    assert note.startswith(text + "\n" + DASH + " example.com/log ")
    assert open_note(note, [LOG.verifier()]) == (text, ["example.com/log"])
    assert open_note(note, [OTHER.verifier(), LOG.verifier()])[1] == [
        "example.com/log",
        "example.com/other",
    ]
    parsed_text, signatures = parse_note(note)
    assert parsed_text == text
    assert [s.name for s in signatures] == ["example.com/log", "example.com/other"]


def test_unknown_signers_are_ignored_but_one_known_signature_is_required() -> None:
    note = sign_note("text\n", [OTHER, LOG])
    assert open_note(note, [LOG.verifier()])[1] == ["example.com/log"]
    only_other = sign_note("text\n", [OTHER])
    with pytest.raises(NoteError, match="no valid signature by a known key"):
        open_note(only_other, [LOG.verifier()])
    with pytest.raises(NoteError, match="no valid signature"):
        open_note(only_other, [])


def test_same_name_other_key_is_unknown() -> None:
    impostor = NoteSigner("example.com/log", _key(9))  # same name, different key id
    note = sign_note("text\n", [impostor, LOG])
    assert open_note(note, [LOG.verifier()])[1] == ["example.com/log"]
    with pytest.raises(NoteError):
        open_note(sign_note("text\n", [impostor]), [LOG.verifier()])


def test_tampered_text_or_signature_is_rejected() -> None:
    note = sign_note("size 5\n", [LOG])
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("size 5", "size 6"), [LOG.verifier()])
    text, [sig] = parse_note(note)
    flipped = sig.signature[:-1] + bytes([sig.signature[-1] ^ 1])
    tampered = text + "\n" + NoteSignature(sig.name, sig.key_id, flipped).line
    with pytest.raises(NoteError, match="does not verify"):
        open_note(tampered, [LOG.verifier()])
    short = text + "\n" + NoteSignature(sig.name, sig.key_id, sig.signature[:10]).line
    with pytest.raises(NoteError, match="does not verify"):
        open_note(short, [LOG.verifier()])
    # A known key's bad signature rejects the note even when another one verifies.
    with pytest.raises(NoteError):
        open_note(add_signatures(tampered, [OTHER.sign(text)]), [LOG.verifier(), OTHER.verifier()])


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("text\n", "blank line"),
        ("text\n\n", "no signature lines"),
        ("text\n\n" + DASH + " example.com/log AAAAAAA=", "end with a newline"),
        ("text\n\n- example.com/log AAAAAAA=\n", "em dash"),
        ("text\n\n" + DASH + "  example.com/log AAAAAAA=\n", "form"),
        ("text\n\n" + DASH + " example.com/log AAAAAAA= x\n", "form"),
        ("text\n\n" + DASH + " a+b AAAAAAA=\n", "'+'"),
        ("text\n\n" + DASH + " example.com/log AAAA\n", "shorter than 5 bytes"),
        ("text\n\n" + DASH + " example.com/log AAAAAAB=\n", "canonical base64"),
        ("text\n\n" + DASH + " example.com/log AAAAAA==\n", "shorter than 5 bytes"),
        ("text\n\n" + DASH + " example.com/log AAAA AAA=\n", "form"),
        ("text\n\n" + DASH + " example.com/log !!!!!!!!\n", "canonical base64"),
        ("te\x00xt\n\n" + DASH + " example.com/log AAAAAAA=\n", "U+0000"),
        ("text\r\n\n" + DASH + " example.com/log AAAAAAA=\n", "U+000D"),
        ("te\udc80xt\n\n" + DASH + " example.com/log AAAAAAA=\n", "UTF-8"),
        ("text\n\n\n", "no signature lines"),
    ],
)
def test_malformed_notes(note: str, reason: str) -> None:
    with pytest.raises(NoteError, match=re.escape(reason)):
        open_note(note, [LOG.verifier()])


def test_at_most_100_signatures() -> None:
    line = OTHER.sign("text\n")
    ok = "text\n\n" + LOG.sign("text\n") + line * (MAX_SIGNATURES - 1)
    assert open_note(ok, [LOG.verifier()])[1] == ["example.com/log"]
    with pytest.raises(NoteError, match="more than 100 signatures"):
        open_note(ok + line, [LOG.verifier()])


def test_add_signatures() -> None:
    note = sign_note("text\n", [LOG])
    line = OTHER.sign("text\n")
    both = add_signatures(note, [line, line.rstrip("\n")])
    assert both == note + line
    assert add_signatures(both, [line]) == both
    assert open_note(both, [OTHER.verifier()])[1] == ["example.com/other"]
    with pytest.raises(NoteError):
        add_signatures(note, ["not a signature line"])


def test_signing_bad_text_is_an_input_error() -> None:
    for text in ["", "no newline", "bad\x07bell\n", "lone \udc80\n"]:
        with pytest.raises(InputError):
            LOG.sign(text)
    with pytest.raises(InputError):
        sign_note("text\n", [])


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there", "nbsp\u00a0x"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(InputError):
        NoteSigner(name, _key(1))
    with pytest.raises(InputError):
        Cosigner(name, _key(1))


def test_vkeys() -> None:
    verifier = NoteVerifier.from_vkey(LOG.vkey)
    assert (verifier.name, verifier.key_id, verifier.vkey) == (LOG.name, LOG.key_id, LOG.vkey)
    assert verifier == LOG.verifier()
    assert isinstance(verifier_from_vkey(WITNESS.vkey), CosignatureVerifier)
    assert type(verifier_from_vkey(LOG.vkey)) is NoteVerifier
    name, hex_id, key = LOG.vkey.split("+")
    bad = [
        "",
        f"{name}+{hex_id}",
        f"{name}+00000000+{key}",  # key id does not match
        f"{name}+{hex_id[:7]}+{key}",
        f"{name}+{hex_id}+{key[:-2]}",
        f"bad name+{hex_id}+{key}",
        WITNESS.vkey,  # type 0x04 is not a note key
    ]
    for vkey in bad:
        with pytest.raises(InputError):
            NoteVerifier.from_vkey(vkey)
    with pytest.raises(InputError):
        CosignatureVerifier.from_vkey(LOG.vkey)
    private, vkey = generate_vkey_pair("example.org/new")
    assert NoteSigner("example.org/new", private).vkey == vkey


def test_vkeys_with_plus_signs_in_the_key() -> None:
    signers = [NoteSigner(f"example.com/k{seed}", _key(seed)) for seed in range(1, 40)]
    cosigners = [Cosigner(f"example.com/k{seed}", _key(seed)) for seed in range(1, 40)]
    assert any(s.vkey.count("+") > 2 for s in signers)  # base64 uses "+" too
    for signer, cosigner in zip(signers, cosigners, strict=True):
        assert NoteVerifier.from_vkey(signer.vkey).key_id == signer.key_id
        assert CosignatureVerifier.from_vkey(cosigner.vkey).key_id == cosigner.key_id
        assert verifier_from_vkey(cosigner.vkey).vkey == cosigner.vkey


def test_reprs_never_show_private_keys() -> None:
    seed = bytes([1]) * 32
    for obj in (LOG, WITNESS):
        shown = repr(obj)
        assert seed.hex() not in shown
        assert base64.b64encode(seed).decode() not in shown
        assert obj.key_id.hex() in shown


def test_note_error_is_a_verification_error() -> None:
    assert issubclass(NoteError, VerificationError)


# --------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_round_trip() -> None:
    text = CHECKPOINT.to_text()
    assert text == f"example.com/log\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.from_text(text) == CHECKPOINT
    with_extensions = Checkpoint("o", 0, ROOT, ("ext one", "ext two"))
    assert Checkpoint.from_text(with_extensions.to_text()) == with_extensions
    note = sign_note(text, [LOG])
    assert open_checkpoint(note, LOG.verifier(), origin="example.com/log") == CHECKPOINT
    with pytest.raises(NoteError, match=re.escape("not 'example.com/other'")):
        open_checkpoint(note, LOG.verifier(), origin="example.com/other")
    with pytest.raises(NoteError, match="at least 3 lines"):
        open_checkpoint(sign_note("just text\n", [LOG]), LOG.verifier())


ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"origin\n01\n{ROOT_B64}\n", "leading zeros"),
        (f"origin\n-1\n{ROOT_B64}\n", "leading zeros"),
        (f"origin\n+1\n{ROOT_B64}\n", "leading zeros"),
        (f"origin\n 1\n{ROOT_B64}\n", "leading zeros"),
        (f"origin\n\u0661\n{ROOT_B64}\n", "leading zeros"),  # ARABIC-INDIC DIGIT ONE
        (f"origin\n1e3\n{ROOT_B64}\n", "leading zeros"),
        (f"origin\n{'9' * 5000}\n{ROOT_B64}\n", "leading zeros"),
        (f"origin\n{2**64}\n{ROOT_B64}\n", "64 bits"),
        (f"origin\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"origin\n5\n{base64.b64encode(ROOT + b'x').decode()}\n", "33 bytes"),
        ("origin\n5\nnot base64!\n", "canonical base64"),
        (f"origin\n5\n{ROOT_B64.rstrip('=')}\n", "canonical base64"),
        (f"\n5\n{ROOT_B64}\n", "origin line is empty"),
        (f"origin\n5\n{ROOT_B64}", "end with a newline"),
        ("origin\n5\n", "at least 3 lines"),
        (f"origin\n5\n{ROOT_B64}\n\n", "extension line is empty"),
        (f"origin\n5\n{ROOT_B64}\next\n\nmore\n", "extension line is empty"),
        (f"ori\tgin\n5\n{ROOT_B64}\n", "control character"),
        ("", "end with a newline"),
    ],
)
def test_malformed_checkpoints(text: str, reason: str) -> None:
    with pytest.raises(NoteError, match=re.escape(reason)):
        Checkpoint.from_text(text)


def test_bad_checkpoint_fields_are_input_errors() -> None:
    bad: list[tuple[str, int, bytes, tuple[str, ...]]] = [
        ("", 1, ROOT, ()),
        ("two\nlines", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", 2**64, ROOT, ()),
        ("o", 1, ROOT[:31], ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\nb",)),
    ]
    for origin, size, root_hash, extensions in bad:
        with pytest.raises(InputError):
            Checkpoint(origin, size, root_hash, extensions)


# --------------------------------------------------------------------------------------------
# Cosignatures


def test_cosignature_round_trip() -> None:
    text = CHECKPOINT.to_text()
    line = WITNESS.cosign(text, 1679315147)
    sig = NoteSignature.from_line(line)
    assert sig.key_id == WITNESS.key_id
    assert sig.signature[:8] == struct.pack(">Q", 1679315147)
    verifier = CosignatureVerifier.from_vkey(WITNESS.vkey)
    assert verifier.verify(text, line) == 1679315147
    assert verifier.verify(text, line.rstrip("\n")) == 1679315147

    # The signed message is "cosignature/v1\ntime <t>\n" + the checkpoint text.
    message = f"cosignature/v1\ntime 1679315147\n{text}".encode()
    _key(3).public_key().verify(sig.signature[8:], message)


def test_cosignature_over_another_checkpoint_fails() -> None:
    text = CHECKPOINT.to_text()
    other = Checkpoint("example.com/log", 20852164, ROOT).to_text()
    line = WITNESS.cosign(text, 1000)
    verifier = WITNESS.verifier()
    with pytest.raises(NoteError, match="does not verify"):
        verifier.verify(other, line)
    # Changing the timestamp breaks the signature too.
    sig = NoteSignature.from_line(line)
    moved = NoteSignature(sig.name, sig.key_id, struct.pack(">Q", 1001) + sig.signature[8:])
    with pytest.raises(NoteError, match="does not verify"):
        verifier.verify(text, moved.line)
    with pytest.raises(NoteError, match=re.escape("not witness.example/w2")):
        WITNESS2.verifier().verify(text, line)
    # A note signature by the same key (type 0x01) is not a cosignature.
    with pytest.raises(NoteError):
        verifier.verify(text, NoteSigner(WITNESS.name, _key(3)).sign(text))


def test_cosigned_checkpoint_note() -> None:
    text = CHECKPOINT.to_text()
    note = add_signatures(
        sign_note(text, [LOG]), [WITNESS.cosign(text, 10), WITNESS2.cosign(text, 20)]
    )
    witnesses = [WITNESS.verifier(), WITNESS2.verifier()]
    assert open_note(note, [LOG.verifier(), *witnesses])[1] == [
        "example.com/log",
        "witness.example/w1",
        "witness.example/w2",
    ]
    assert open_checkpoint(note, LOG.verifier()) == CHECKPOINT
    assert verify_cosignatures(note, witnesses, 2) == {
        "witness.example/w1": 10,
        "witness.example/w2": 20,
    }
    with pytest.raises(NoteError, match="3 witness cosignature"):
        verify_cosignatures(note, witnesses, 3)
    lonely = sign_note(text, [LOG])
    with pytest.raises(NoteError, match="1 witness cosignature"):
        verify_cosignatures(lonely, witnesses, 1)
    assert verify_cosignatures(lonely, witnesses, 0) == {}
    # A cosignature copied onto another checkpoint fails.
    other = Checkpoint("example.com/log", 1, ROOT).to_text()
    forged = add_signatures(sign_note(other, [LOG]), [WITNESS.cosign(text, 10)])
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(forged, witnesses, 1)


def test_cosign_arguments() -> None:
    text = CHECKPOINT.to_text()
    for timestamp in (-1, 2**63):
        with pytest.raises(InputError):
            WITNESS.cosign(text, timestamp)
    with pytest.raises(NoteError):
        WITNESS.cosign("not a checkpoint\n", 1)


# --------------------------------------------------------------------------------------------
# Properties

note_text = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"], blacklist_characters=[chr(c) for c in range(32) if c != 10]
    ),
    max_size=200,
).map(lambda s: s + "\n")


@settings(max_examples=200, deadline=None)
@given(text=note_text)
def test_sign_open_round_trip(text: str) -> None:
    note = sign_note(text, [LOG, OTHER])
    assert open_note(note, [LOG.verifier()]) == (text, ["example.com/log"])
    parsed, signatures = parse_note(note)
    assert parsed + "\n" + "".join(s.line for s in signatures) == note


@settings(max_examples=300, deadline=None)
@given(note=st.text(max_size=300))
def test_parsers_only_raise_note_error(note: str) -> None:
    for call in (
        lambda: parse_note(note),
        lambda: open_note(note, [LOG.verifier(), WITNESS.verifier()]),
        lambda: Checkpoint.from_text(note),
        lambda: NoteSignature.from_line(note),
        lambda: WITNESS.verifier().verify(CHECKPOINT.to_text(), note),
    ):
        with contextlib.suppress(NoteError):
            call()


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(
        st.sampled_from(["o", "1", "0", "01", ROOT_B64, "", "x y", DASH + " a AAAAAAA="]),
        max_size=6,
    ),
    note_suffix=st.sampled_from(["", "\n", "\n\n" + DASH + " example.com/log AAAAAAA=\n"]),
)
def test_structured_garbage(body: list[str], note_suffix: str) -> None:
    """Near-valid inputs: anything accepted re-serialises to exactly the same text."""
    text = "\n".join(body) + note_suffix
    try:
        checkpoint = Checkpoint.from_text(text)
    except NoteError:
        pass
    else:
        assert checkpoint.to_text() == text
    try:
        parsed, signatures = parse_note(text)
    except NoteError:
        pass
    else:
        assert parsed + "\n" + "".join(s.line for s in signatures) == text


@settings(max_examples=200, deadline=None)
@given(
    origin=st.text(
        alphabet=st.characters(
            blacklist_categories=["Cs"], blacklist_characters=[chr(c) for c in range(32)]
        ),
        min_size=1,
        max_size=50,
    ),
    size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_categories=["Cs"], blacklist_characters=[chr(c) for c in range(32)]
            ),
            min_size=1,
            max_size=20,
        ),
        max_size=3,
    ),
    timestamp=st.integers(0, 2**63 - 1),
)
def test_checkpoint_and_cosignature_round_trip(
    origin: str, size: int, root_hash: bytes, extensions: list[str], timestamp: int
) -> None:
    checkpoint = Checkpoint(origin, size, root_hash, tuple(extensions))
    text = checkpoint.to_text()
    assert Checkpoint.from_text(text) == checkpoint
    note = add_signatures(sign_note(text, [LOG]), [WITNESS.cosign(text, timestamp)])
    assert open_checkpoint(note, LOG.verifier()) == checkpoint
    assert verify_cosignatures(note, [WITNESS.verifier()], 1) == {WITNESS.name: timestamp}
