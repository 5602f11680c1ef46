"""Normalisation: invisible characters removed, NFKC applied, homoglyphs folded, offsets mapped
back; and the classifier form (case, spacing, letter-spacing and whole look-alike words)."""

from __future__ import annotations

import itertools
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.guard import build_pipeline
from modelseal.guard.secrets import SecretsGuard
from modelseal.guard.text import (
    CONFUSABLES,
    IGNORABLE,
    LOOKALIKES,
    MAX_FOLD_RUN,
    fold_case_and_space,
    fold_homoglyphs,
    normalise,
    visible_length,
)
from tests.guard.samples import SECRETS


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
        # look-alikes (Cyrillic, Greek, Armenian, Cherokee), a Cyrillic letter that is none,
        # small capitals, a mathematical letter
        *("\u0430", "\u043e", "\u0421", "\u03bf", "\u0585", "\u13aa", "\u0434", "\u1d00"),
        *("\u0261", "\U0001d41a", "\u0435\u0301"),
        # Arabic: a letter, tatweel, hamza above (composes with alef), a ligature whose NFKC
        # form starts with a tatweel (U+FCF3: tatweel, damma, shadda)
        *("\u0627", "\u0628", "\u0640", "\u0654", "\ufcf3"),
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
    assert len(norm.text) == visible_length(text)  # folding is one character for one
    if norm.index is not None:
        assert len(norm.index) == len(norm.text) + 1
        assert list(norm.index) == sorted(norm.index)
        assert norm.index[-1] == len(text)
        assert all(0 <= i <= len(text) for i in norm.index)
    for start in range(len(norm.text) + 1):
        a, b = norm.span(start, len(norm.text))
        assert 0 <= a <= b == len(text)


# -- homoglyphs ------------------------------------------------------------------------------

CYR_A, CYR_O, CYR_E, CYR_ES, CYR_I, CYR_DZE = (
    "\u0430",
    "\u043e",
    "\u0435",
    "\u0441",
    "\u0456",
    "\u0455",
)
GREEK_O, GREEK_A = "\u03bf", "\u03b1"
RUSSIAN = (
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? "
    "\u0441\u043e\u043a \u0438 \u0443\u0445\u043e"
)
GREEK = (
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5, "
    "\u03bf \u03ba\u03b1\u03b9\u03c1\u03cc\u03c2"
)


def test_look_alike_letters_inside_latin_words_are_folded_one_for_one() -> None:
    text = f"{CYR_I}gn{CYR_O}r{CYR_E} all pr{CYR_E}vious"
    norm = normalise(text)
    assert norm.text == "ignore all previous"
    assert norm.index == tuple(range(len(text) + 1))
    assert norm.span(0, 6) == (0, 6)
    assert normalise(f"p{CYR_A}ssw{GREEK_O}rd").text == "password"
    assert normalise("\u0391KIA").text == "AKIA"  # a Greek capital alpha
    assert normalise("\u13aaBC\u0585k").text == "ABCok"  # Cherokee, Armenian


def test_russian_and_greek_text_is_left_alone() -> None:
    for text in (RUSSIAN, GREEK):
        norm = normalise(text)
        assert norm.text == text
        assert not norm.changed
    # a Latin letter typed inside a Russian word does not turn its Cyrillic letters Latin
    word = "\u043fp\u0438\u0432\u0435\u0442"
    assert normalise(word).text == word
    # a word of look-alikes only, with no Latin letter touching it, is a word of its script
    assert (
        normalise(f"the word {CYR_ES}{CYR_O}{CYR_E} here").text
        == f"the word {CYR_ES}{CYR_O}{CYR_E} here"
    )


def test_only_short_runs_of_look_alikes_are_folded() -> None:
    run = CYR_A * MAX_FOLD_RUN
    assert normalise(f"x{run}y").text == "x" + "a" * MAX_FOLD_RUN + "y"
    longer = CYR_A * (MAX_FOLD_RUN + 1)
    assert normalise(f"x{longer}y").text == f"x{longer}y"


def test_a_look_alike_under_a_combining_mark_is_kept_so_the_text_stays_nfkc() -> None:
    text = f"x{CYR_E}\u0301"
    norm = normalise(text)
    assert norm.text == text
    assert unicodedata.is_normalized("NFKC", norm.text)


def test_small_capitals_and_mathematical_letters_are_folded_everywhere() -> None:
    assert normalise("\u026a\u0262\u0274\u1d0f\u0280\u1d07").text == "ignore"
    math = "".join(chr(0x1D41A + ord(c) - ord("a")) for c in "ignore")  # bold small letters
    norm = normalise(f"x {math}")
    assert norm.text == "x ignore"
    assert norm.span(2, 8) == (2, 8)


def test_a_secret_with_look_alike_letters_is_found_where_it_is() -> None:
    key = SECRETS["aws_access_key"]
    disguised = "\u0410" + key[1:]  # Cyrillic capital A
    text = f"my key is {disguised}."
    findings = SecretsGuard().check(text, "output")
    assert [(f.category, f.start, f.end) for f in findings] == [
        ("secret.aws_access_key", 10, 10 + len(key))
    ]


def test_fold_homoglyphs_changes_only_look_alikes_into_their_latin_letters() -> None:
    text = f"a{CYR_A}b \u0434{CYR_O} {GREEK_A}x"
    folded = fold_homoglyphs(text)
    assert folded == "aab \u0434\u043e ax"
    for before, after in zip(text, folded, strict=True):
        assert (
            after == before or CONFUSABLES.get(before) == after or LOOKALIKES.get(before) == after
        )
    assert fold_homoglyphs("plain") == "plain"


HOMOGLYPH_TEXT = st.lists(
    st.sampled_from(
        [*"ab xyz0.-", CYR_A, CYR_O, CYR_E, CYR_ES, GREEK_O, "\u0434", "\u1d00", "\u0301"]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(HOMOGLYPH_TEXT)
def test_folding_is_idempotent_and_keeps_every_other_character(text: str) -> None:
    folded = fold_homoglyphs(text)
    assert fold_homoglyphs(folded) == folded
    assert len(folded) == len(text)
    for before, after in zip(text, folded, strict=True):
        assert after == before or after == {**CONFUSABLES, **LOOKALIKES}[before]


@settings(max_examples=300, deadline=None)
@given(HOMOGLYPH_TEXT, st.integers(min_value=0), st.integers(min_value=0))
def test_whether_a_letter_is_folded_depends_only_on_its_near_neighbours(
    text: str, a: int, b: int
) -> None:
    # so a window of a stream folds a match as the whole text does (CONTEXT characters around)
    a, b = sorted((a % (len(text) + 1), b % (len(text) + 1)))
    k = MAX_FOLD_RUN + 1
    if b - a > 2 * k:
        assert fold_homoglyphs(text[a:b])[k:-k] == fold_homoglyphs(text)[a + k : b - k]


DISGUISED_KEYS = [
    "\u0410" + SECRETS["aws_access_key"][1:],
    SECRETS["github_token"].replace("p", "\u0440", 1),
    SECRETS["openai_key"].replace("o", CYR_O),
]
STREAM_TOKENS = st.one_of(
    st.sampled_from([*DISGUISED_KEYS, *SECRETS.values(), " ", "\n", ", ", RUSSIAN, GREEK]),
    st.text(alphabet=f"ab xyz0{CYR_A}{CYR_O}{GREEK_O}\u0434", min_size=1, max_size=12),
)
FLAG_SECRETS = build_pipeline([{"type": "secrets", "action": "flag"}])


@settings(max_examples=150, deadline=None)
@given(
    tokens=st.lists(STREAM_TOKENS, max_size=20),
    cuts=st.lists(st.integers(min_value=0), max_size=30),
)
def test_a_stream_folds_and_finds_what_the_whole_text_check_finds(
    tokens: list[str], cuts: list[int]
) -> None:
    text = "".join(tokens)
    whole = {(f.category, f.start, f.end) for f in FLAG_SECRETS.check(text, "output").findings}
    points = sorted({c % (len(text) + 1) for c in cuts})
    scanner = FLAG_SECRETS.stream("output")
    for lo, hi in itertools.pairwise([0, *points, len(text)]):
        scanner.feed(text[lo:hi])
    scanner.finish()
    assert {(f.category, f.start, f.end) for f in scanner.result.findings} == whole


# -- the classifier form ---------------------------------------------------------------------


def test_case_and_whitespace_are_folded() -> None:
    assert fold_case_and_space("  Hello\n\tWORLD  again ") == "hello world again"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i g n o r e   a l l   p r e v i o u s", "ignore all previous"),
        ("I.G.N.O.R.E the rules", "ignore the rules"),
        ("r-e-v-e-a-l it", "reveal it"),
        ("then x y z", "then x y z"),  # three letters: left alone
        ("the U.S. and e.g. this", "the u.s. and e.g. this"),
        ("a b c d", "abcd"),
    ],
)
def test_letter_spacing_is_undone_from_four_letters(text: str, expected: str) -> None:
    assert fold_case_and_space(text) == expected


def test_whole_look_alike_words_in_latin_text_are_folded() -> None:
    access = f"{CYR_A}{CYR_ES}{CYR_ES}{CYR_E}{CYR_DZE}{CYR_DZE}"
    assert normalise(access).text == access  # too long a run for the offset-keeping fold
    assert fold_case_and_space(f"Please {access} the files") == "please access the files"
    assert fold_case_and_space(f"{access}ible") == "accessible"  # a Latin word, any run length
    mixed = f"{GREEK_O}{CYR_ES}"  # two scripts' look-alikes in one word
    assert fold_case_and_space(f"\u0434\u0430 {mixed}") == "\u0434\u0430 oc"


def test_russian_and_greek_words_stay_in_the_classifier_form() -> None:
    assert fold_case_and_space(RUSSIAN) == RUSSIAN.lower()
    assert fold_case_and_space(GREEK) == GREEK.lower()
    # a Russian sentence with an English name in it
    text = f"\u0423\u0441\u0442\u0430\u043d\u043e\u0432\u0438\u0442\u0435 Docker, {RUSSIAN}"
    assert fold_case_and_space(text) == text.lower()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_the_classifier_form_is_single_spaced_and_never_fails(text: str) -> None:
    folded = fold_case_and_space(text)
    assert folded == " ".join(folded.split())


def test_arabic_tatweel_is_removed_and_offsets_map_back() -> None:
    # "بمـب" (a Persian word stretched with a kashida) reads as "بمب"
    n = normalise("x \u0628\u0645\u0640\u0628 y")
    assert n.text == "x \u0628\u0645\u0628 y"
    assert n.span(2, 5) == (2, 6)


def test_a_tatweel_that_nfkc_makes_is_removed_too() -> None:
    """U+FCF3 (a medial ligature of shadda and damma) is tatweel + damma + shadda under NFKC:
    the tatweel NFKC makes goes as the text's own would, so normalising twice changes nothing
    (atheris found "4\u7f11\ufcf3..." where the second pass still took one out)."""
    text = "card 4\u7f11\ufcf3\ufcf3 done"
    n = normalise(text)
    assert "\u0640" not in n.text
    # the four marks, in NFKC's canonical order
    assert n.text == unicodedata.normalize("NFKC", "card 4\u7f11\u064f\u0651\u064f\u0651 done")
    assert normalise(n.text).text == n.text
    assert len(n.text) == visible_length(text)
    assert n.index is not None
    assert list(n.index) == sorted(n.index)
    # the marks map back to their segment: the letter they sit on and the two ligatures
    assert n.span(7, 11) == (6, 9)
