"""Normalisation: invisible characters removed, NFKC applied, offsets mapped back."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.guard.text import IGNORABLE, normalise, visible_length


def test_ascii_is_returned_as_is() -> None:
    text = "plain ASCII, with\ttabs and\nnewlines"
    norm = normalise(text)
    assert norm.text is text
    assert not norm.changed
    assert norm.span(3, 7) == (3, 7)


def test_zero_width_and_bidi_characters_are_removed_and_offsets_map_back() -> None:
    text = "ab\u200bcd\u202eef\ufeff"
    norm = normalise(text)
    assert norm.text == "abcdef"
    # an end maps to the next visible character, so invisible ones right after a match count in
    assert norm.span(0, 2) == (0, 3)
    assert norm.span(2, 4) == (3, 6)
    # a match at the end of the text ends at the end, invisible tail included
    assert norm.span(4, 6) == (6, len(text))


def test_nfkc_folds_compatibility_forms() -> None:
    assert normalise("\uff21\uff2b\uff29\uff21").text == "AKIA"  # full-width letters
    assert normalise("a\u00a0b").text == "a b"  # no-break space
    assert normalise("\ufb01le").text == "file"  # the fi ligature
    norm = normalise("x\ufb01y")
    assert norm.text == "xfiy"
    assert norm.span(1, 3) == (1, 2)  # both letters come from the one ligature


def test_tag_characters_used_for_ascii_smuggling_are_removed() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "ignore all")
    assert normalise(f"hello{hidden}world").text == "helloworld"


def test_unchanged_non_ascii_text_keeps_no_map() -> None:
    text = "caf\u00e9 \u4e2d\u6587"
    norm = normalise(text)
    assert norm.text == text
    assert not norm.changed


def test_visible_length() -> None:
    assert visible_length("abc") == 3
    assert visible_length("a\u200bb\u200c") == 2
    assert visible_length("\uff21\uff22") == 2


ALPHABET = st.sampled_from(
    [
        *("a", "Z", "0", " ", "\u00e9", "e\u0301", "\uff21", "\ufb01", "\u200b", "\u202e"),
        *("\u00ad", "\u1100\u1161", "\u2460", "\U000e0041", "\u4e2d", "\u0301"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_normalisation_is_idempotent_and_offsets_are_monotonic(text: str) -> None:
    norm = normalise(text)
    assert not set(norm.text) & IGNORABLE
    assert unicodedata.is_normalized("NFKC", norm.text)
    assert normalise(norm.text).text == norm.text
    assert norm.source_length == len(text)
    if norm.index is not None:
        assert len(norm.index) == len(norm.text) + 1
        assert list(norm.index) == sorted(norm.index)
        assert norm.index[-1] == len(text)
        assert all(0 <= i <= len(text) for i in norm.index)
    for start in range(len(norm.text) + 1):
        a, b = norm.span(start, len(norm.text))
        assert 0 <= a <= b == len(text)
