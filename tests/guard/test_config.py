"""Pipelines from configuration: validation messages, defaults, the registry."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.guard import (
    DEFAULT_GUARDS,
    Finding,
    Guard,
    GuardOptions,
    Stage,
    build_pipeline,
    guard_types,
    register_guard,
)
from modelseal.guard.config import _REGISTRY
from tests.guard.samples import CARDS, IBANS, SECRETS


def test_default_guards() -> None:
    before = copy.deepcopy(DEFAULT_GUARDS)
    pipeline = build_pipeline(DEFAULT_GUARDS)
    assert before == DEFAULT_GUARDS  # building never changes the spec
    assert [g.name for g in pipeline.guards] == [
        "size",
        "secrets",
        "pii",
        "injection",
        "harm",
        "harm_output",
        "leak",
    ]
    for text in (CARDS[0], IBANS[0], "123-45-6789", SECRETS["openai_key"]):
        assert pipeline.check(f"x {text} y", "input").blocked
        assert pipeline.check(f"x {text} y", "output").blocked
    flagged = pipeline.check("bob@example.com (212) 555-1234", "output")
    assert not flagged.blocked
    assert len(flagged.findings) == 2
    assert pipeline.check("x" * 100_001, "input").blocked


def test_a_full_configuration() -> None:
    pipeline = build_pipeline(
        [
            {"type": "size", "max_input_chars": 50},
            {"type": "secrets", "ignore": ["jwt"], "action": "flag", "min_entropy": 3},
            {"type": "pii", "email": "block", "phone": "off", "stages": ["output"]},
            {
                "type": "patterns",
                "name": "no-rm",
                "deny": ["rm -rf /"],
                "allow": ["rm -rf /tmp"],
                "case_insensitive": True,
                "stages": "input",
            },
            {"type": "patterns", "name": "no-drop", "deny": ["drop table"], "action": "flag"},
        ]
    )
    assert [g.name for g in pipeline.guards] == ["size", "secrets", "pii", "no-rm", "no-drop"]
    assert pipeline.check("RM -RF /", "input").block is not None
    assert not pipeline.check("rm -rf /tmp", "input").blocked
    assert not pipeline.check("RM -RF /", "output").blocked
    assert pipeline.check("bob@example.com", "output").blocked
    assert not pipeline.check("bob@example.com", "input").blocked


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "size", "max_input_chars": 10}, "guards must be a list"),
        ("size", "guards must be a list"),
        ([42], r"guard 0: expected a mapping"),
        ([{"max_input_chars": 3}], r"guard 0: missing 'type' \(known: harm, harm_output, inject"),
        ([{"type": "sizes"}], r"guard 0: unknown type 'sizes' \(known: harm, harm_output, inj"),
        (
            [{"type": "secrets"}, {"type": "size", "max_imput_chars": 5}],
            r"guard 1 \(size\): unknown option 'max_imput_chars' \(known: max_input_chars",
        ),
        ([{"type": "size"}], r"guard 0 \(size\): set 'max_input_chars'"),
        ([{"type": "size", "max_input_chars": -1}], "must be a whole number >= 0"),
        ([{"type": "size", "max_input_chars": True}], "must be a whole number"),
        ([{"type": "size", "max_input_chars": "10"}], "must be a whole number"),
        (
            [{"type": "patterns", "deny": ["fine", "(bad"]}],
            r"guard 0 \(patterns\): deny pattern 1 is not a valid regular expression",
        ),
        ([{"type": "patterns", "deny": []}], r"'deny' must list at least one pattern"),
        ([{"type": "patterns", "deny": "x", "allow": [1]}], r"'allow': item 0 must be a string"),
        ([{"type": "patterns", "deny": ["x"], "stages": ["middle"]}], "unknown stage 'middle'"),
        ([{"type": "patterns", "deny": ["x"], "stages": []}], "at least one of input, output"),
        ([{"type": "patterns", "deny": ["x"], "case_insensitive": "yes"}], "true or false"),
        ([{"type": "secrets", "ignore": ["passport"]}], "unknown secret kind 'passport'"),
        ([{"type": "secrets", "action": "drop"}], "must be one of block, flag"),
        ([{"type": "secrets", "min_entropy": float("nan")}], "number from 0.0 to 8.0"),
        ([{"type": "pii", "ssn": "sometimes"}], "'ssn' must be one of block, flag, off"),
        ([{"type": "pii", "passport": "block"}], "unknown option 'passport'"),
        ([{"type": "pii", "name": "has space"}], "option 'name' must be"),
        ([{"type": "pii"}, {"type": "pii"}], r"guard 1 \(pii\): name 'pii' is already used"),
    ],
)
def test_bad_specs_are_input_errors_that_say_what_is_wrong(spec: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_pipeline(spec)


class Keyword:
    """A tiny third-party guard: blocks one word."""

    version = "0.1"
    max_span = 32

    def __init__(self, word: str, name: str) -> None:
        self.word = word
        self.name = name
        self.stages = frozenset({"input", "output"})

    def check(self, text: str, stage: Stage) -> list[Finding]:
        at = text.find(self.word)
        if at < 0:
            return []
        return [
            Finding(self.name, "keyword.hit", "block", "a banned word", at, at + len(self.word))
        ]


def keyword_factory(options: Mapping[str, Any]) -> Guard:
    opts = GuardOptions(options)
    word = opts.get_str("word", "")
    name = opts.get_name("keyword")
    opts.done()
    if not word:
        raise InputError("option 'word' is required")
    return Keyword(word, name)


def test_register_guard_plugs_a_new_type_in() -> None:
    register_guard("keyword-test", keyword_factory)
    try:
        assert "keyword-test" in guard_types()
        pipeline = build_pipeline([{"type": "keyword-test", "word": "banana"}])
        assert pipeline.check("a banana", "input").blocked
        with pytest.raises(InputError, match=r"guard 0 \(keyword-test\): option 'word'"):
            build_pipeline([{"type": "keyword-test"}])
        with pytest.raises(InputError, match="already registered"):
            register_guard("keyword-test", keyword_factory)
        register_guard("keyword-test", keyword_factory, replace=True)
    finally:
        _REGISTRY.pop("keyword-test", None)
    with pytest.raises(InputError, match="guard type must be"):
        register_guard("bad type", keyword_factory)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.text(alphabet="ab()[]*+?|\\{}^$.", max_size=6), max_size=3),
    st.sampled_from(["block", "flag", "off", "input", "output", ["input"], ["jwt"]]),
)
KEYS = st.sampled_from(
    [
        "type",
        "name",
        "stages",
        "action",
        "deny",
        "allow",
        "case_insensitive",
        "max_span",
        "max_input_chars",
        "max_output_chars",
        "ignore",
        "min_entropy",
        "card_number",
        "email",
        "bogus",
    ]
)
SPECS = st.lists(
    st.dictionaries(KEYS, VALUES, max_size=5).map(
        lambda d: d if "type" in d else {**d, "type": "patterns"}
    )
    | st.fixed_dictionaries({"type": st.sampled_from(["size", "patterns", "secrets", "pii"])}),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(SPECS)
def test_any_spec_builds_or_raises_input_error(spec: list[dict[str, Any]]) -> None:
    try:
        pipeline = build_pipeline(spec)
    except InputError:
        return
    pipeline.check("some text " + CARDS[0], "input")
