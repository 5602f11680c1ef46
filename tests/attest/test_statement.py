from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.attest.statement import (
    STATEMENT_TYPE,
    StatementError,
    canonical_json,
    make_statement,
    parse_statement,
)
from modelseal.errors import InputError, VerificationError

DIGEST = "ab" * 32


def good() -> dict[str, Any]:
    return make_statement(
        [{"name": "model", "digest": {"sha256": DIGEST}}],
        "https://modelseal.dev/seal/v1",
        {"serial": 7, "note": "h\u00e9llo"},
    )


def test_shape() -> None:
    s = good()
    assert s == {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "model", "digest": {"sha256": DIGEST}}],
        "predicateType": "https://modelseal.dev/seal/v1",
        "predicate": {"serial": 7, "note": "h\u00e9llo"},
    }


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": "\u00e9"}]}) == (
        '{"a":[1,{"c":"\u00e9","d":2}],"b":1}'.encode()
    )
    with pytest.raises(InputError):
        canonical_json({"x": float("nan")})
    with pytest.raises(InputError):
        canonical_json({"x": object()})


def test_round_trip() -> None:
    s = good()
    assert parse_statement(canonical_json(s)) == s


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"), "_type"),
        (lambda s: s.pop("_type"), "_type"),
        (lambda s: s.update(subject=[]), "non-empty list"),
        (lambda s: s.update(subject={"name": "x"}), "non-empty list"),
        (lambda s: s.update(subject=["x"]), r"subject\[0\] is not a JSON object"),
        (lambda s: s["subject"][0].update(name=3), "name must be a string"),
        (lambda s: s["subject"][0].update(digest={}), "digest must be a non-empty object"),
        (lambda s: s["subject"][0].update(digest={"sha256": "AB" * 32}), "lowercase hex"),
        (lambda s: s["subject"][0].update(digest={"sha256": "ab"}), "64 lowercase hex"),
        (lambda s: s["subject"][0].update(digest={"sha256": 5}), "non-empty string"),
        (lambda s: s.update(predicateType=""), "predicateType"),
        (lambda s: s.pop("predicateType"), "predicateType"),
        (lambda s: s.update(predicate=[1]), "predicate must be a JSON object"),
    ],
)
def test_rejects_malformed(mutate: Any, reason: str) -> None:
    s = good()
    mutate(s)
    with pytest.raises(StatementError, match=reason):
        parse_statement(json.dumps(s).encode())


def test_rejects_non_json_and_duplicates() -> None:
    with pytest.raises(StatementError, match="not valid JSON"):
        parse_statement(b"{")
    with pytest.raises(StatementError, match="UTF-8"):
        parse_statement(b"\xff\xfe")
    with pytest.raises(StatementError, match="not a JSON object"):
        parse_statement(b"[]")
    dup = b'{"_type":"x","_type":"' + STATEMENT_TYPE.encode() + b'"}'
    with pytest.raises(StatementError, match="duplicate key"):
        parse_statement(dup)
    with pytest.raises(StatementError, match="NaN"):
        parse_statement(b'{"x": NaN}')
    with pytest.raises(StatementError, match="nested too deeply"):
        parse_statement(b"[" * 100_000 + b"]" * 100_000)


def test_make_statement_refuses_bad_arguments() -> None:
    with pytest.raises(InputError, match="cannot make statement"):
        make_statement([{"name": "m", "digest": {}}], "t", {})
    with pytest.raises(InputError):
        make_statement([], "t", {})


def test_unknown_digest_algorithm_is_accepted() -> None:
    s = make_statement([{"digest": {"gitCommit": "abc", "dirHash": "X"}}], "t", {})
    assert parse_statement(canonical_json(s))["subject"][0]["digest"]["dirHash"] == "X"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_parse_arbitrary_bytes_fails_cleanly(data: bytes) -> None:
    with contextlib.suppress(VerificationError):
        parse_statement(data)


@settings(max_examples=300)
@given(json_values)
def test_parse_arbitrary_json_fails_cleanly(value: Any) -> None:
    with contextlib.suppress(VerificationError):
        parse_statement(canonical_json(value))


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=20), st.binary(min_size=32, max_size=32)),
        min_size=1,
        max_size=5,
    ),
    st.text(min_size=1, max_size=40),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
)
def test_round_trip_property(
    subjects: list[tuple[str, bytes]], predicate_type: str, predicate: dict[str, Any]
) -> None:
    s = make_statement(
        [{"name": n, "digest": {"sha256": d.hex()}} for n, d in subjects], predicate_type, predicate
    )
    data = canonical_json(s)
    assert parse_statement(data) == s
    assert canonical_json(parse_statement(data)) == data


@settings(max_examples=200)
@given(st.data())
def test_any_single_byte_change_is_caught_or_still_valid(data: st.DataObject) -> None:
    payload = bytearray(canonical_json(good()))
    i = data.draw(st.integers(0, len(payload) - 1))
    payload[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(VerificationError):
        parse_statement(bytes(payload))
