"""The secrets guard: provider formats, generic assignments, evasion, no leaks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.guard.secrets import KNOWN, SecretsGuard, looks_random, shannon_entropy
from tests.guard.samples import SECRETS

GUARD = SecretsGuard()


def categories(text: str, guard: SecretsGuard = GUARD) -> list[str]:
    return [f.category for f in guard.check(text, "input")]


@pytest.mark.parametrize(("kind", "value"), SECRETS.items())
def test_each_provider_format_is_found_where_it_is(kind: str, value: str) -> None:
    text = f"here it is: {value} -- keep it safe"
    found = GUARD.check(text, "output")
    assert [f.category for f in found] == [f"secret.{kind}"]
    finding = found[0]
    assert finding.action == "block"
    assert finding.guard == "secrets"
    # offsets point at the secret (the generic rule starts at its keyword)
    assert text[finding.start : finding.end] in value
    assert finding.end - finding.start >= 15
    assert finding.end - finding.start <= GUARD.max_span


@pytest.mark.parametrize(("kind", "value"), SECRETS.items())
def test_the_matched_text_never_appears_in_findings(kind: str, value: str) -> None:
    found = GUARD.check(f"x {value} y", "input")
    assert found
    for finding in found:
        dumped = json.dumps(finding.to_dict())
        shown = value[4:14] if kind != "generic" else "Zx8kQ2mP9v"
        assert shown not in dumped
        assert shown not in repr(finding)
        assert shown not in finding.detail


def test_a_zero_width_space_inside_a_key_does_not_hide_it() -> None:
    key = SECRETS["aws_access_key"]
    hidden = key[:4] + "\u200b" + key[4:10] + "\u2060\u200d" + key[10:]
    text = f"key {hidden} end"
    found = GUARD.check(text, "input")
    assert [f.category for f in found] == ["secret.aws_access_key"]
    assert text[found[0].start : found[0].end].replace("\u200b", "").replace(
        "\u2060\u200d", ""
    ) == (key)


def test_full_width_letters_and_bidi_controls_do_not_hide_a_key() -> None:
    key = SECRETS["github_token"]
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in key[:3]) + key[3:]
    assert categories(f"token {full_width}") == ["secret.github_token"]
    assert categories("\u202e" + key + "\u202c") == ["secret.github_token"]


@pytest.mark.parametrize(
    "text",
    [
        'api_key = "your-api-key-here"',
        "password: changeme",
        "token = get_token_from_environment()",
        "the secret: it was aaaaaaaaaaaaaaaaaaaaaaaa all along",
        "AKIAIOSFODNN7EXAMPLEX is one character too long",
        "xAKIAQ3EGV7XKPL2MZ4TR is inside a word",
        "sk-learn-is-a-python-library-for-ml",
        "xoxo-gossip-girl-season-one",
        "-----BEGIN PUBLIC KEY-----",
        "eyJ alone, or eyJhbGci with no second part",
        "Bearer of bad news, bearer of good news",
        "",
    ],
)
def test_lookalikes_and_placeholders_are_not_secrets(text: str) -> None:
    assert categories(text) == []


@pytest.mark.parametrize(
    "text",
    [
        'export AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"',
        '{"client_secret": "8f2a9c1e7b3d4f60a9e2c5b1d7f3e8a4"}',
        "PASSWORD=Tr0ub4dor&3xkq9LmZ2vB7",
        "Authorization: Bearer abc123def456ghi789jkl012mno345",
        "db.credentials := q7Lm2Xk9Vb4Nz8Tc3Yp6",
        "api-key => 'N3xq8Lz2Wm7Vb4Kr9Tc1'",
    ],
)
def test_generic_assignments_with_random_values_are_found(text: str) -> None:
    assert categories(text) == ["secret.generic"]


def test_a_provider_key_in_an_assignment_is_reported_once_by_its_provider() -> None:
    text = f"OPENAI_API_KEY={SECRETS['openai_key']}"
    assert categories(text) == ["secret.openai_key"]


def test_options_action_ignore_and_entropy() -> None:
    flagging = SecretsGuard(action="flag", ignore=["jwt"], min_entropy=4.5)
    found = flagging.check(f"{SECRETS['jwt']} {SECRETS['aws_access_key']}", "output")
    assert [(f.category, f.action) for f in found] == [("secret.aws_access_key", "flag")]
    # a strict entropy threshold lets a mildly random value through
    assert categories(SECRETS["generic"], flagging) == []
    no_generic = SecretsGuard(ignore=["generic"])
    assert categories(SECRETS["generic"], no_generic) == []
    assert no_generic.max_span < GUARD.max_span or no_generic.max_span == 192
    nothing = SecretsGuard(ignore=sorted(KNOWN))
    assert nothing.max_span == 0
    assert categories(" ".join(SECRETS.values()), nothing) == []


def test_bad_options_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown secret kind"):
        SecretsGuard(ignore=["nope"])
    with pytest.raises(InputError, match="action"):
        SecretsGuard(action="drop")  # type: ignore[arg-type]


def test_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == pytest.approx(2.0)
    assert looks_random("q7Lm2Xk9Vb4Nz8Tc", 3.0)
    assert not looks_random("abcdefghabcdefgh", 3.0)  # no digit
    assert not looks_random("1111111111111111", 0.0)  # no letter


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_well_formed_findings(text: str) -> None:
    for f in GUARD.check(text, "input"):
        assert 0 <= f.start < f.end <= len(text)
        assert f.category.startswith("secret.")
        assert f.category[7:] in KNOWN
