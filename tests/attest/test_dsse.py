from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.attest.dsse import (
    MAX_PAYLOAD_BYTES,
    PAYLOAD_TYPE,
    Envelope,
    EnvelopeError,
    Signature,
    SignatureError,
    pae,
    sign_envelope,
    verify_envelope,
)
from modelseal.attest.signers import EcdsaP256Signer, Ed25519Signer
from modelseal.errors import VerificationError

PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'


@pytest.fixture(params=["ed25519", "ecdsa-p256"])
def signer(request: pytest.FixtureRequest) -> Ed25519Signer | EcdsaP256Signer:
    return Ed25519Signer.generate() if request.param == "ed25519" else EcdsaP256Signer.generate()


def test_pae_matches_spec() -> None:
    # the worked example of the DSSE protocol document
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("\u00e9", b"\x00") == b"DSSEv1 2 \xc3\xa9 1 \x00"


def test_sign_verify_round_trip(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    assert env.signatures[0].keyid == signer.key_id
    doc = json.loads(env.to_json())
    assert set(doc) == {"payload", "payloadType", "signatures"}
    assert base64.b64decode(doc["payload"]) == PAYLOAD
    again = Envelope.from_dict(doc)
    assert again == env
    assert verify_envelope(again, signer.public_key, payload_type=PAYLOAD_TYPE) == PAYLOAD


def test_signature_is_over_pae(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    from modelseal.attest.signers import verify_signature

    verify_signature(signer.public_key, pae(PAYLOAD_TYPE, PAYLOAD), env.signatures[0].sig)


def test_tampered_payload_fails(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    bad = Envelope(env.payload_type, PAYLOAD + b" ", env.signatures)
    with pytest.raises(SignatureError, match=f"does not verify with key {signer.key_id}"):
        verify_envelope(bad, signer.public_key)


def test_tampered_payload_type_fails(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    bad = Envelope("application/json", env.payload, env.signatures)
    with pytest.raises(SignatureError):
        verify_envelope(bad, signer.public_key)
    with pytest.raises(EnvelopeError, match="payloadType"):
        verify_envelope(bad, signer.public_key, payload_type=PAYLOAD_TYPE)


def test_wrong_key_names_both(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    other = Ed25519Signer.generate()
    with pytest.raises(SignatureError) as info:
        verify_envelope(env, other.public_key)
    assert other.key_id in str(info.value)
    assert signer.key_id in str(info.value)


def test_empty_keyid_is_tried(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    anon = Envelope(env.payload_type, env.payload, (Signature("", env.signatures[0].sig),))
    assert verify_envelope(anon, signer.public_key) == PAYLOAD


def test_one_valid_signature_among_several(signer: Ed25519Signer | EcdsaP256Signer) -> None:
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    other = sign_envelope(PAYLOAD_TYPE, PAYLOAD, Ed25519Signer.generate())
    junk = Signature(signer.key_id, b"\x00" * 64)
    both = Envelope(PAYLOAD_TYPE, PAYLOAD, (other.signatures[0], junk, env.signatures[0]))
    assert verify_envelope(both, signer.public_key) == PAYLOAD
    only_bad = Envelope(PAYLOAD_TYPE, PAYLOAD, (junk, Signature("", b"\x01" * 64)))
    with pytest.raises(SignatureError, match="none of the envelope's 2 signatures"):
        verify_envelope(only_bad, signer.public_key)


def good_dict() -> dict[str, Any]:
    return sign_envelope(PAYLOAD_TYPE, PAYLOAD, Ed25519Signer.generate()).to_dict()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("payload"), "payload must be a base64 string"),
        (lambda d: d.update(payload=5), "payload must be a base64 string"),
        (lambda d: d.update(payload="!!!!"), "payload is not base64"),
        (lambda d: d.update(payload="a"), "impossible length"),
        (lambda d: d.update(payload="ab=c"), "padding inside"),
        (lambda d: d.update(payload="\u00e9"), "non-ASCII"),
        (lambda d: d.update(payload="a+b-"), "mixes"),
        (lambda d: d.pop("payloadType"), "payloadType"),
        (lambda d: d.update(payloadType=""), "payloadType"),
        (lambda d: d.update(signatures=[]), "non-empty list"),
        (lambda d: d.pop("signatures"), "non-empty list"),
        (lambda d: d.update(signatures=["x"]), r"signatures\[0\] is not a JSON object"),
        (lambda d: d["signatures"][0].pop("sig"), r"signatures\[0\] sig"),
        (lambda d: d["signatures"][0].update(sig="%%%"), r"signatures\[0\] sig is not base64"),
        (lambda d: d["signatures"][0].update(keyid=7), "keyid must be a string"),
        (lambda d: d.update(signatures=[{"sig": "AA=="}] * 65), "too many signatures"),
        (lambda d: d["signatures"][0].update(sig="A" * 30000), "sig is too large"),
    ],
)
def test_hostile_envelopes(mutate: Any, reason: str) -> None:
    d = good_dict()
    mutate(d)
    with pytest.raises(EnvelopeError, match=reason):
        Envelope.from_dict(d)


def test_url_safe_and_unpadded_base64_accepted() -> None:
    signer = Ed25519Signer.generate()
    payload = b"\xfb\xff\xfe" * 10 + b"x"
    env = sign_envelope(PAYLOAD_TYPE, payload, signer)
    d = env.to_dict()
    d["payload"] = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    assert verify_envelope(Envelope.from_dict(d), signer.public_key) == payload


def test_from_json_errors() -> None:
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        Envelope.from_json(b"{nope")
    with pytest.raises(EnvelopeError, match="not a JSON object"):
        Envelope.from_json(b"[1]")
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        Envelope.from_json(b"\xff")
    with pytest.raises(EnvelopeError, match="nested too deeply"):
        Envelope.from_json(b"[" * 100_000 + b"]" * 100_000)


def test_huge_envelope_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    import modelseal.attest.dsse

    monkeypatch.setattr(modelseal.attest.dsse, "MAX_ENVELOPE_BYTES", 1000)
    with pytest.raises(EnvelopeError, match="envelope is too large"):
        Envelope.from_json(b" " * 1001)


def test_huge_payload_refused_before_decoding() -> None:
    d = good_dict()
    d["payload"] = "A" * (MAX_PAYLOAD_BYTES * 4 // 3 + 8)
    with pytest.raises(EnvelopeError, match="too large"):
        Envelope.from_dict(d)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "payload": st.text(max_size=40) | json_values,
        "payloadType": st.text(max_size=20) | json_values,
        "signatures": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "keyid": st.text(max_size=10) | json_values,
                    "sig": st.text(max_size=40) | json_values,
                },
            )
            | json_values,
            max_size=3,
        )
        | json_values,
    },
)


@settings(max_examples=400)
@given(envelope_like | json_values)
def test_from_dict_never_crashes(obj: Any) -> None:
    try:
        env = Envelope.from_dict(obj)
    except EnvelopeError:
        return
    # anything accepted re-encodes to an equivalent envelope
    assert Envelope.from_dict(env.to_dict()) == env


@settings(max_examples=300)
@given(st.binary(max_size=1024))
def test_from_json_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(VerificationError):
        Envelope.from_json(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=512), st.text(min_size=1, max_size=30))
def test_round_trip_property(payload: bytes, payload_type: str) -> None:
    signer = Ed25519Signer.generate()
    env = sign_envelope(payload_type, payload, signer)
    again = Envelope.from_json(env.to_json())
    assert verify_envelope(again, signer.public_key) == payload


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_byte_flip_in_payload_fails(data: st.DataObject) -> None:
    signer = Ed25519Signer.generate()
    env = sign_envelope(PAYLOAD_TYPE, PAYLOAD, signer)
    i = data.draw(st.integers(0, len(PAYLOAD) - 1))
    flip = data.draw(st.integers(1, 255))
    payload = bytearray(PAYLOAD)
    payload[i] ^= flip
    with pytest.raises(SignatureError):
        verify_envelope(Envelope(PAYLOAD_TYPE, bytes(payload), env.signatures), signer.public_key)
