"""The PII guard: validated numbers (Luhn, mod-97, SSA rules), emails, phones, actions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.guard.pii import (
    CATEGORIES,
    PiiGuard,
    card_network_ok,
    digit_clusters,
    iban_valid,
    luhn_valid,
    ssn_valid,
)
from tests.guard.samples import CARDS, IBANS

GUARD = PiiGuard()


def found(text: str, guard: PiiGuard = GUARD) -> list[tuple[str, str]]:
    return [(f.category, text[f.start : f.end]) for f in guard.check(text, "output")]


@pytest.mark.parametrize("card", CARDS)
def test_valid_card_numbers_are_blocked(card: str) -> None:
    text = f"my card is {card}, thanks"
    assert found(text) == [("pii.card_number", card)]
    assert GUARD.check(text, "output")[0].action == "block"


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234 5678 9012 3456",  # Luhn fails
        "0000 0000 0000 0000",  # Luhn passes, no network starts with 0
        "9999 9999 9999 9995",  # no network
        "41111111111111111111",  # 20 digits
        "order 84111111111111111",  # a valid card inside a longer digit run
        "4111111111111111-5",
        "4111-1111-1111-1111-1111",
    ],
)
def test_digit_strings_that_are_not_cards_pass(text: str) -> None:
    assert [c for c, _ in found(text) if c == "pii.card_number"] == []


def luhn_complete(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789", min_size=14, max_size=14), st.sampled_from(" -"))
def test_luhn_decides_for_visa_shaped_numbers(body: str, sep: str) -> None:
    valid = luhn_complete("4" + body)
    wrong = valid[:-1] + str((int(valid[-1]) + 1 + int(body[0]) % 9) % 10)
    for number, expect in ((valid, True), (wrong, False)):
        grouped = sep.join(number[i : i + 4] for i in range(0, 16, 4))
        for shown in (number, grouped):
            hits = [c for c, _ in found(f"pay {shown} now") if c == "pii.card_number"]
            assert bool(hits) == expect, shown


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=13, max_size=19))
def test_a_card_finding_always_has_a_valid_checksum(digits: str) -> None:
    hits = found(f"n {digits} n")
    cards = [v for c, v in hits if c == "pii.card_number"]
    assert cards == ([digits] if luhn_valid(digits) and card_network_ok(digits) else [])


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert not luhn_valid("")
    assert not luhn_valid("12a4")


@pytest.mark.parametrize("iban", IBANS)
def test_valid_ibans_are_blocked(iban: str) -> None:
    assert iban_valid(iban)
    assert found(f"send it to {iban} today") == [("pii.iban", iban)]
    assert found(f"IBAN:{iban}.") == [("pii.iban", iban)]


@pytest.mark.parametrize(
    "text",
    [
        "DE89370400440532013001",  # mod-97 fails
        "DE8937040044053201300",  # one character short for Germany
        "DE893704004405320130000",  # one too many
        "XX89370400440532013000",  # no such country
        "DE89370400440532013000X",  # runs on into a word
    ],
)
def test_invalid_ibans_pass(text: str) -> None:
    assert found(f"to {text} ok") == []


def test_two_ibans_in_a_row_are_both_found() -> None:
    text = f"{IBANS[1]} AND {IBANS[3]}"
    assert found(text) == [("pii.iban", IBANS[1]), ("pii.iban", IBANS[3])]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted({"DE", "GB", "FR", "NL", "NO"})), st.integers(0, 10**30))
def test_an_iban_finding_always_passes_mod_97(country: str, number: int) -> None:
    text = f"x {country}{number % 100:02d}{number} y"
    for category, value in found(text):
        assert category != "pii.iban" or iban_valid(value)


@pytest.mark.parametrize(
    ("ssn", "valid"),
    [
        ("123-45-6789", True),
        ("001-01-0001", True),
        ("899 99 9999", True),
        ("000-12-3456", False),  # area 000
        ("666-12-3456", False),  # area 666
        ("912-12-3456", False),  # area 900-999
        ("123-00-4567", False),  # group 00
        ("123-45-0000", False),  # serial 0000
        ("078-05-1120", False),  # the Woolworth wallet card
        ("123-45 6789", False),  # mixed separators
        ("1234-56-7890", False),  # too many digits
    ],
)
def test_ssn_area_group_and_serial_rules(ssn: str, valid: bool) -> None:
    hits = found(f"ssn {ssn} on file")
    assert hits == ([("pii.ssn", ssn)] if valid else [])


def test_ssn_valid_function() -> None:
    assert ssn_valid("123", "45", "6789")
    assert not ssn_valid("666", "45", "6789")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("mail bob.smith+tag@example.co.uk now", "bob.smith+tag@example.co.uk"),
        ("<a@b.io>", "a@b.io"),
        ("end with dot x_y@mail.example.org.", "x_y@mail.example.org"),
    ],
)
def test_emails_are_flagged(text: str, value: str) -> None:
    assert found(text) == [("pii.email", value)]
    assert GUARD.check(text, "input")[0].action == "flag"


@pytest.mark.parametrize("text", ["a@b", "user@localhost", "@example.com", "x" * 70 + "@ab.com"])
def test_not_emails(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call (212) 555-1234 today", "(212) 555-1234"),
        ("call 212-555-1234 today", "212-555-1234"),
        ("call 212.555.1234 today", "212.555.1234"),
        ("call +1 212 555 1234 today", "+1 212 555 1234"),
        ("call 1-212-555-1234 today", "1-212-555-1234"),
        ("call +44 20 7946 0958 today", "+44 20 7946 0958"),
        ("call +33 1 23 45 67 89 today", "+33 1 23 45 67 89"),
    ],
)
def test_phone_numbers_are_flagged(text: str, value: str) -> None:
    assert found(text) == [("pii.phone", value)]


@pytest.mark.parametrize(
    "text", ["2024-05-06", "version 1.2.3", "id 2125551234", "x212-555-1234", "+12 34"]
)
def test_not_phone_numbers(text: str) -> None:
    assert found(text) == []


def test_two_phone_numbers_in_one_digit_run() -> None:
    assert found("212-555-1234 212-555-9876") == [
        ("pii.phone", "212-555-1234"),
        ("pii.phone", "212-555-9876"),
    ]


def test_actions_per_category() -> None:
    guard = PiiGuard(actions={"email": "block", "card_number": "flag", "phone": "off"})
    text = f"bob@example.com {CARDS[0]} (212) 555-1234"
    got = [(f.category, f.action) for f in guard.check(text, "input")]
    assert got == [("pii.card_number", "flag"), ("pii.email", "block")]
    off = PiiGuard(actions=dict.fromkeys(CATEGORIES, "off"))
    assert off.check(text, "input") == []
    assert off.max_span == 0


def test_bad_actions_are_input_errors() -> None:
    with pytest.raises(InputError, match="unknown PII category"):
        PiiGuard(actions={"passport": "block"})
    with pytest.raises(InputError, match="'ssn' must be"):
        PiiGuard(actions={"ssn": "maybe"})


def test_findings_never_contain_the_value() -> None:
    text = f"{CARDS[0]} {IBANS[0]} 123-45-6789 bob@example.com (212) 555-1234"
    findings = GUARD.check(text, "input")
    assert len(findings) == 5
    dumped = json.dumps([f.to_dict() for f in findings]) + repr(findings)
    for secret in ("4111", "3704", "6789", "bob@", "555-1234"):
        assert secret not in dumped


def test_pii_hidden_by_invisible_and_full_width_characters() -> None:
    card = "4111\u200b1111\u00a01111\u20601111"  # zero-width, no-break space, word joiner
    assert [c for c, _ in found(f"card {card} x")] == ["pii.card_number"]
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "4111111111111111")
    assert [c for c, _ in found(f"card {full_width} x")] == ["pii.card_number"]


def test_digit_clusters() -> None:
    assert digit_clusters("a 1234567 b") == []
    assert digit_clusters("x +1 (212) 555-1234 y") == [(2, 19, 11)]
    assert digit_clusters("4111 1111 1111 1111") == [(0, 19, 16)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789 -+().@abcXYZDE", max_size=300))
def test_any_text_gives_well_formed_findings(text: str) -> None:
    for f in GUARD.check(text, "input"):
        assert 0 <= f.start < f.end <= len(text)
        assert f.end - f.start <= GUARD.max_span
