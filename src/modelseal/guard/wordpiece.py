"""Reading text into BERT word pieces, the way the harm guard's subword table was built.

The harm guard's subword bag (:mod:`modelseal.guard.bag`) looks tokens up in a table built from
a pretrained sentence encoder (all-MiniLM-L6-v2, a BERT model), and that encoder only ever
learnt from the token ids of one tokenizer: Hugging Face ``tokenizers``' ``BertNormalizer``,
``BertPreTokenizer`` and ``WordPiece`` over the uncased BERT vocabulary (the model's
``tokenizer.json``). Any other reading of the text, however close, gives ids whose rows mean
less. :class:`WordPiece` is that reading in Python, so the gateway needs neither ``tokenizers``
nor torch to run the guard:

1. clean: U+0000, U+FFFD and control characters go, whitespace becomes a space;
2. CJK ideographs get a space either side (each one is a word);
3. accents go (canonical decomposition, then non-spacing marks dropped); the rest is lowercased,
   one character at a time;
4. words are split at whitespace and at punctuation, each punctuation character a word of its own;
5. each word becomes the longest vocabulary entry that starts it, then the longest ``##`` entry
   that continues it, and so on; a word with a rest that nothing matches, or longer than
   ``max_word_chars`` characters, is one ``[UNK]``.

"Control", "non-spacing mark" and "punctuation" are what the reference reads them as: the Unicode
8.0 tables it was built with (``_CONTROL``, ``_NONSPACING``, ``_PUNCTUATION`` below, not
:mod:`unicodedata`, whose Unicode version moves with Python), its own CJK ranges (U+2B920, not
BERT's U+2B820, starts the fifth extension block), and lowercasing from a later Unicode than
Python 3.11's (``_LOWER``). The tests read every code point through both tokenizers and compare.

Two deliberate departures from ``Tokenizer.encode``: no ``[CLS]``/``[SEP]`` around the ids (the
caller adds them), and special tokens written in the text ("[SEP]", "[MASK]") are read as the
plain text they are, never as the special ids: a request cannot plant structure in the
encoder's input. Lone surrogates, which the reference cannot be given at all, are dropped like
control characters.

Speed: a text is cut by a compiled regular expression into units (a run of word characters or
one punctuation or CJK character, with the whitespace before it), and each distinct unit is read
once and kept (up to ``CACHE_SIZE`` units of at most ``CACHE_KEY_MAX`` characters), so a request
of familiar words costs one dictionary look-up per word.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np

from modelseal.errors import InputError

UNK = "[UNK]"
PREFIX = "##"  # marks a piece that continues a word
MAX_WORD_CHARS = 100  # a longer word is one [UNK] (the reference's max_input_chars_per_word)
MAX_VOCAB = 1_000_000  # entries accepted in a vocabulary
CACHE_SIZE = 50_000  # units kept read per tokenizer; the cache starts over when full
CACHE_KEY_MAX = 64  # longer units are read every time (and not kept)

# Code point ranges (hex, inclusive) as the reference reads them. Control: Cc, Cf, Co and Cs in
# Unicode 8.0 (what its `unicode_categories` crate calls "other", unassigned code points excepted)
# plus U+FFFD; lone surrogates (D800-DFFF) are added to it here.
_CONTROL = """
0000-0008 000B-000C 000E-001F 007F-009F 00AD 0600-0605 061C 06DD 070F 180E 200B-200F 202A-202E
2060-2064 2066-206F E000-F8FF FEFF FFF9-FFFB FFFD 110BD 1BCA0-1BCA3 1D173-1D17A E0001
E0020-E007F F0000-FFFFD 100000-10FFFD
"""
# Mn in Unicode 8.0: dropped after the canonical decomposition.
_NONSPACING = """
0300-036F 0483-0487 0591-05BD 05BF 05C1-05C2 05C4-05C5 05C7 0610-061A 064B-065F 0670 06D6-06DC
06DF-06E4 06E7-06E8 06EA-06ED 0711 0730-074A 07A6-07B0 07EB-07F3 0816-0819 081B-0823 0825-0827
0829-082D 0859-085B 08E3-0902 093A 093C 0941-0948 094D 0951-0957 0962-0963 0981 09BC 09C1-09C4
09CD 09E2-09E3 0A01-0A02 0A3C 0A41-0A42 0A47-0A48 0A4B-0A4D 0A51 0A70-0A71 0A75 0A81-0A82 0ABC
0AC1-0AC5 0AC7-0AC8 0ACD 0AE2-0AE3 0B01 0B3C 0B3F 0B41-0B44 0B4D 0B56 0B62-0B63 0B82 0BC0 0BCD
0C00 0C3E-0C40 0C46-0C48 0C4A-0C4D 0C55-0C56 0C62-0C63 0C81 0CBC 0CBF 0CC6 0CCC-0CCD 0CE2-0CE3
0D01 0D41-0D44 0D4D 0D62-0D63 0DCA 0DD2-0DD4 0DD6 0E31 0E34-0E3A 0E47-0E4E 0EB1 0EB4-0EB9
0EBB-0EBC 0EC8-0ECD 0F18-0F19 0F35 0F37 0F39 0F71-0F7E 0F80-0F84 0F86-0F87 0F8D-0F97 0F99-0FBC
0FC6 102D-1030 1032-1037 1039-103A 103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D
109D 135D-135F 1712-1714 1732-1734 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 17DD
180B-180D 18A9 1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60 1A62
1A65-1A6C 1A73-1A7C 1A7F 1AB0-1ABD 1B00-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73 1B80-1B81
1BA2-1BA5 1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 1C36-1C37 1CD0-1CD2
1CD4-1CE0 1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DF5 1DFC-1DFF 20D0-20DC 20E1 20E5-20F0 2CEF-2CF1
2D7F 2DE0-2DFF 302A-302D 3099-309A A66F A674-A67D A69E-A69F A6F0-A6F1 A802 A806 A80B A825-A826
A8C4 A8E0-A8F1 A926-A92D A947-A951 A980-A982 A9B3 A9B6-A9B9 A9BC A9E5 AA29-AA2E AA31-AA32
AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8 ABED
FB1E FE00-FE0F FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A03 10A05-10A06 10A0C-10A0F 10A38-10A3A
10A3F 10AE5-10AE6 11001 11038-11046 1107F-11081 110B3-110B6 110B9-110BA 11100-11102 11127-1112B
1112D-11134 11173 11180-11181 111B6-111BE 111CA-111CC 1122F-11231 11234 11236-11237 112DF
112E3-112EA 11300-11301 1133C 11340 11366-1136C 11370-11374 114B3-114B8 114BA 114BF-114C0
114C2-114C3 115B2-115B5 115BC-115BD 115BF-115C0 115DC-115DD 11633-1163A 1163D 1163F-11640 116AB
116AD 116B0-116B5 116B7 1171D-1171F 11722-11725 11727-1172B 16AF0-16AF4 16B30-16B36 16F8F-16F92
1BC9D-1BC9E 1D167-1D169 1D17B-1D182 1D185-1D18B 1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C
1DA75 1DA84 1DA9B-1DA9F 1DAA1-1DAAF 1E8D0-1E8D6 E0100-E01EF
"""
# P* in Unicode 8.0 and the ASCII punctuation (which takes in $+<=>^`|~).
_PUNCTUATION = """
0021-002F 003A-0040 005B-0060 007B-007E 00A1 00A7 00AB 00B6-00B7 00BB 00BF 037E 0387 055A-055F
0589-058A 05BE 05C0 05C3 05C6 05F3-05F4 0609-060A 060C-060D 061B 061E-061F 066A-066D 06D4
0700-070D 07F7-07F9 0830-083E 085E 0964-0965 0970 0AF0 0DF4 0E4F 0E5A-0E5B 0F04-0F12 0F14
0F3A-0F3D 0F85 0FD0-0FD4 0FD9-0FDA 104A-104F 10FB 1360-1368 1400 166D-166E 169B-169C 16EB-16ED
1735-1736 17D4-17D6 17D8-17DA 1800-180A 1944-1945 1A1E-1A1F 1AA0-1AA6 1AA8-1AAD 1B5A-1B60
1BFC-1BFF 1C3B-1C3F 1C7E-1C7F 1CC0-1CC7 1CD3 2010-2027 2030-2043 2045-2051 2053-205E 207D-207E
208D-208E 2308-230B 2329-232A 2768-2775 27C5-27C6 27E6-27EF 2983-2998 29D8-29DB 29FC-29FD
2CF9-2CFC 2CFE-2CFF 2D70 2E00-2E2E 2E30-2E42 3001-3003 3008-3011 3014-301F 3030 303D 30A0 30FB
A4FE-A4FF A60D-A60F A673 A67E A6F2-A6F7 A874-A877 A8CE-A8CF A8F8-A8FA A8FC A92E-A92F A95F
A9C1-A9CD A9DE-A9DF AA5C-AA5F AADE-AADF AAF0-AAF1 ABEB FD3E-FD3F FE10-FE19 FE30-FE52 FE54-FE61
FE63 FE68 FE6A-FE6B FF01-FF03 FF05-FF0A FF0C-FF0F FF1A-FF1B FF1F-FF20 FF3B-FF3D FF3F FF5B FF5D
FF5F-FF65 10100-10102 1039F 103D0 1056F 10857 1091F 1093F 10A50-10A58 10A7F 10AF0-10AF6
10B39-10B3F 10B99-10B9C 11047-1104D 110BB-110BC 110BE-110C1 11140-11143 11174-11175 111C5-111C9
111CD 111DB 111DD-111DF 11238-1123D 112A9 114C6 115C1-115D7 11641-11643 1173C-1173E 12470-12474
16A6E-16A6F 16AF5 16B37-16B3B 16B44 1BC9F 1DA87-1DA8B
"""
_CJK = "3400-4DBF 4E00-9FFF F900-FAFF 20000-2A6DF 2A700-2B81F 2B920-2CEAF 2F800-2FA1F"
# whitespace that is not also control (U+000B, U+000C, U+0085 are dropped, not spaces)
_SPACE = "0009-000A 000D 0020 00A0 1680 2000-200A 2028-2029 202F 205F 3000"
# lowercase pairs of Unicode 16 and 17, which the reference knows and Python 3.11 does not
_LOWER = {
    **{chr(c): chr(c + 0x20) for c in range(0x10D50, 0x10D66)},
    **{chr(c): chr(c + 0x1B) for c in range(0x16EA0, 0x16EB9)},
    **{chr(u): chr(lo) for u, lo in [(0x1C89, 0x1C8A), (0xA7CB, 0x0264), (0xA7CC, 0xA7CD)]},
    **{chr(u): chr(lo) for u, lo in [(0xA7CE, 0xA7CF), (0xA7D2, 0xA7D3), (0xA7D4, 0xA7D5)]},
    **{chr(u): chr(lo) for u, lo in [(0xA7DA, 0xA7DB), (0xA7DC, 0x019B)]},
}
# canonical decompositions newer than the reference's tables (it leaves these whole)
_NO_DECOMPOSITION = frozenset("\U00011938")
# combining marks newer than its tables: it gives them class 0, so never reorders them
_NEW_MARKS = """
07FD 0898-089F 08CA-08D3 09FE 0C3C 0D3B-0D3C 0EBA 1715 1ABF-1ACE 1DF6-1DFA A82C 10D24-10D27
10EAB-10EAC 10F46-10F50 10F82-10F85 11070 1133B 1145E 11839-1183A 1193D-1193E 11943 119E0 11A34
11A47 11A99 11D42 11D44-11D45 11D97 16FF0-16FF1 1E130-1E136 1E2AE 1E2EC-1E2EF
"""


def _ranges(table: str) -> list[tuple[int, int]]:
    out = []
    for item in table.split():
        first, _, last = item.partition("-")
        out.append((int(first, 16), int(last or first, 16)))
    return out


def _class(ranges: list[tuple[int, int]]) -> str:
    """The body of a regular-expression character class matching ``ranges``."""
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


def _chars(ranges: list[tuple[int, int]]) -> frozenset[str]:
    return frozenset(chr(c) for a, b in ranges for c in range(a, b + 1))


_CONTROL_RANGES = [*_ranges(_CONTROL), (0xD800, 0xDFFF)]
_NONSPACING_CHARS = _chars(_ranges(_NONSPACING))
_NEW_MARK_CHARS = _chars(_ranges(_NEW_MARKS))
_SPACE_CHARS = "".join(sorted(_chars(_ranges(_SPACE))))
_SP = _class(_ranges(_SPACE))
_PU = _class(_ranges(_PUNCTUATION))
_SEP = _PU + _class(_ranges(_CJK))


def _unit_re(separators: str) -> re.Pattern[str]:
    """A unit: the whitespace before one punctuation or CJK character or one run of anything
    else (control characters and marks included: dropping them joins what is either side);
    trailing whitespace is a unit of its own. Every character of a text is in exactly one unit."""
    return re.compile(f"[{_SP}]*(?:[{separators}]|[^{separators}{_SP}]+)|[{_SP}]+")


def _bmp(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(a, min(b, 0xFFFF)) for a, b in ranges if a <= 0xFFFF]


# the same units, found faster in text without characters past U+FFFF (or past U+007F), where
# the expression need not try the ranges up there for every character
_UNIT = _unit_re(_SEP)
_UNIT_BMP = _unit_re(_class(_bmp(_ranges(_PUNCTUATION))) + _class(_bmp(_ranges(_CJK))))
_UNIT_ASCII = _unit_re("!-/:-@\\[-`{-~")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# the words of a normalized unit: one punctuation character, or a run of anything else
_WORD = re.compile(f"[{_PU}]|[^{_PU}{_SP}]+")
_CONTROL_RE = re.compile(f"[{_class(_CONTROL_RANGES)}]")
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s")  # what str.isspace() calls whitespace, never in an entry


def _decomposed(char: str) -> str:
    """``char`` cleaned and decomposed as the reference does ("" for a control character)."""
    if _CONTROL_RE.match(char):
        return ""
    if char.isascii() or char in _NO_DECOMPOSITION:
        return char
    return unicodedata.normalize("NFD", char)


def _normalized(unit: str) -> tuple[str, list[int] | None]:
    """A unit (no whitespace in it) normalized, and the unit index each character comes from
    (None when that is its own index)."""
    if unit.isascii() and _ASCII_CONTROL.search(unit) is None:
        return unit.lower(), None
    chars: list[str] = []
    origin: list[int] = []
    for i, c in enumerate(unit):
        for d in _decomposed(c):
            chars.append(d)
            origin.append(i)
    combining = [0 if d in _NEW_MARK_CHARS else unicodedata.combining(d) for d in chars]
    if any(combining):  # canonical order: runs of combining marks sorted by class (stable)
        i, n = 0, len(chars)
        while i < n:
            if combining[i] == 0:
                i += 1
                continue
            j = i
            while j < n and combining[j]:
                j += 1
            run = sorted(range(i, j), key=combining.__getitem__)
            chars[i:j] = [chars[k] for k in run]
            origin[i:j] = [origin[k] for k in run]
            i = j
    out: list[str] = []
    out_origin: list[int] = []
    for d, i in zip(chars, origin, strict=True):
        if d in _NONSPACING_CHARS:
            continue
        low = _LOWER.get(d) or d.lower()
        out.append(low)
        out_origin.extend([i] * len(low))
    return "".join(out), out_origin


def _words(unit: str) -> list[tuple[str, list[int] | None, int]]:
    """The words of a unit: (word, unit index of each character or None, unit index of the first
    character) for each."""
    body = unit.lstrip(_SPACE_CHARS)
    skip = len(unit) - len(body)
    text, origin = _normalized(body)
    out: list[tuple[str, list[int] | None, int]] = []
    for m in _WORD.finditer(text):
        a, b = m.span()
        if origin is None:
            out.append((m.group(), None, skip + a))
        else:
            o = [skip + i for i in origin[a:b]]
            out.append((m.group(), o, o[0]))
    return out


def _units(text: str) -> list[str]:
    """``text`` cut into units (they join back to it)."""
    if text.isascii():
        return _UNIT_ASCII.findall(text)
    return (_UNIT_BMP if _ASTRAL.search(text) is None else _UNIT).findall(text)


def pre_tokenize(text: str) -> list[tuple[str, int]]:
    """The words ``text`` is read as (normalized: clean, lower-case, unaccented) and the offset in
    ``text`` of the character each starts at; the reference's normalizer and pre-tokenizer."""
    out: list[tuple[str, int]] = []
    pos = 0
    for unit in _units(text):
        out.extend((w, pos + start) for w, _, start in _words(unit))
        pos += len(unit)
    return out


def _index(
    entries: Sequence[str], where: Callable[[int], str], also: Callable[[int], str]
) -> dict[str, int]:
    """Entry -> id; an empty entry, one with whitespace or a repeated one raises InputError,
    placed by ``where(i)`` (and ``also(j)`` for the first occurrence of a repeat)."""
    ids: dict[str, int] = {}
    for i, token in enumerate(entries):
        if not token or _WHITESPACE.search(token):
            raise InputError(f"{where(i)}{token!r} is empty or has whitespace")
        if token in ids:
            raise InputError(f"{where(i)}{token!r} is also {also(ids[token])}")
        ids[token] = i
    return ids


class WordPiece:
    """A BERT uncased WordPiece tokenizer over one vocabulary (ids are line numbers from 0)."""

    def __init__(
        self, vocab: Sequence[str], *, unk: str = UNK, max_word_chars: int = MAX_WORD_CHARS
    ) -> None:
        if not vocab:
            raise InputError("vocabulary is empty")
        if len(vocab) > MAX_VOCAB:
            raise InputError(f"vocabulary has {len(vocab)} entries, more than {MAX_VOCAB}")
        if max_word_chars < 1:
            raise InputError(f"max_word_chars must be at least 1, not {max_word_chars}")
        ids = _index(vocab, lambda i: f"vocabulary entry {i}: ", lambda j: f"entry {j}")
        if unk not in ids:
            raise InputError(f"vocabulary has no unknown-word token {unk!r}")
        self._vocab = tuple(vocab)
        self._ids = ids
        self._unk = ids[unk]
        self._max_word_chars = max_word_chars
        # the longest piece worth trying: at the start of a word, and after it (without "##")
        self._longest = max(len(t) for t in vocab)
        self._longest_cont = max(
            (len(t) - len(PREFIX) for t in vocab if t.startswith(PREFIX)), default=0
        )
        self._cache: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    @classmethod
    def parse(cls, data: bytes, source: str = "vocab") -> WordPiece:
        """A tokenizer from a ``vocab.txt``: one entry per line (``\\n``), UTF-8, the line
        number (from 0) its id; a trailing newline is allowed."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{source}: not UTF-8 (byte {e.start})") from None
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        if not lines:
            raise InputError(f"{source}: no entries")
        if len(lines) > MAX_VOCAB:
            raise InputError(f"{source}: more than {MAX_VOCAB} entries")
        seen = _index(lines, lambda i: f"{source}:{i + 1}: entry ", lambda j: f"on line {j + 1}")
        if UNK not in seen:
            raise InputError(f"{source}: no unknown-word entry {UNK!r}")
        return cls(lines)

    def __len__(self) -> int:
        return len(self._vocab)

    @property
    def vocab(self) -> tuple[str, ...]:
        """The vocabulary entries, in id order (``"\\n".join`` of it is a vocab.txt)."""
        return self._vocab

    @property
    def index(self) -> Mapping[str, int]:
        """Entry -> id (read-only view)."""
        return MappingProxyType(self._ids)

    def encode(self, text: str, max_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ids of ``text``'s word pieces (int32, no ``[CLS]``/``[SEP]``), at most
        ``max_tokens`` of them, and for each the offset in ``text`` of the character it starts
        at (int32)."""
        if max_tokens is not None and max_tokens < 0:
            raise InputError(f"max_tokens must not be negative, not {max_tokens}")
        limit = sys.maxsize if max_tokens is None else max_tokens
        ids: list[int] = []
        starts: list[int] = []
        pos = 0
        get = self._cache.get
        for unit in _units(text):
            if len(ids) >= limit:
                break
            hit = get(unit)
            if hit is None:
                hit = self._read(unit)
            unit_ids, unit_starts = hit
            ids += unit_ids
            if len(unit_starts) == 1:
                starts.append(pos + unit_starts[0])
            else:
                starts += [pos + s for s in unit_starts]
            pos += len(unit)
        del ids[limit:], starts[limit:]
        return np.array(ids, dtype=np.int32), np.array(starts, dtype=np.int32)

    def tokens(self, text: str) -> list[str]:
        """The word pieces of ``text``, as vocabulary entries."""
        return [self._vocab[i] for i in self.encode(text)[0].tolist()]

    def _read(self, unit: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The ids and unit offsets of a unit's pieces, kept for next time."""
        ids: list[int] = []
        starts: list[int] = []
        for word, origin, first in _words(unit):
            for token, at in self._pieces(word):
                ids.append(token)
                starts.append(first + at if origin is None else origin[at])
        hit = (tuple(ids), tuple(starts))
        if len(unit) <= CACHE_KEY_MAX:
            if len(self._cache) >= CACHE_SIZE:
                self._cache = {}
            self._cache[unit] = hit
        return hit

    def _pieces(self, word: str) -> list[tuple[int, int]]:
        """Greedy longest-match-first pieces of a normalized word: (id, offset in the word)."""
        n = len(word)
        if n > self._max_word_chars:
            return [(self._unk, 0)]
        vocab = self._ids
        out: list[tuple[int, int]] = []
        start = 0
        while start < n:
            end = min(n, start + (self._longest if start == 0 else self._longest_cont))
            token = None
            while end > start:
                token = vocab.get(word[start:end] if start == 0 else PREFIX + word[start:end])
                if token is not None:
                    break
                end -= 1
            if token is None:
                return [(self._unk, 0)]
            out.append((token, start))
            start = end
        return out
