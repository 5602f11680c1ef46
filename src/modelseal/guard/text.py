"""Text normalisation shared by the guards: what a reader sees, not what the bytes spell.

Guards match on a normalised copy of the text so that invisible characters cannot split a key
(``AKIA\\u200bIOSF...``) and compatibility forms cannot disguise one (full-width letters,
``\\uff21\\uff2b\\uff29\\uff21`` for ``AKIA``):

1. remove invisible format characters: zero-width spaces and joiners, the word joiner, the byte
   order mark, the soft hyphen, bidirectional controls and isolates, variation selectors,
   Unicode tag characters (used to smuggle hidden ASCII) and the Arabic tatweel that only
   stretches a word (``\u0628\u0645\u0640\u0628`` for ``\u0628\u0645\u0628``);
2. apply NFKC (full-width and other compatibility forms, ligatures, non-breaking spaces,
   mathematical alphanumerics such as ``\U0001d422`` for ``i``);
3. fold homoglyphs (:func:`fold_homoglyphs`): Cyrillic, Greek, Armenian and Cherokee letters that
   look like Latin ones, where they sit inside a Latin word (``\u0456gn\u043er\u0435`` for
   ``ignore``), and Latin small capitals and IPA look-alikes anywhere. Real Russian or Greek
   words are left alone. One character becomes one character, so the offset map stays simple.

ASCII text (the common case) is returned as is without any work beyond ``str.isascii``. For other
text the result keeps a map from each normalised character back to the original, so findings
report offsets into the text the caller passed in.

Classifiers go one step further with :func:`fold_case_and_space` on the normalised text: whole
look-alike words in Latin text folded too, lower case, single spaces, letter-spacing undone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# ranges of invisible characters that are removed before matching
_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x0640, 0x0640),  # Arabic tatweel (kashida): stretches a word, spells nothing
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x206F),  # bidi isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),  # half-width Hangul filler
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0xE0000, 0xE007F),  # tag characters
    (0xE0100, 0xE01EF),  # variation selectors supplement
)

IGNORABLE: frozenset[str] = frozenset(
    chr(cp) for lo, hi in _IGNORABLE_RANGES for cp in range(lo, hi + 1)
)
_IGNORABLE_RUN = re.compile(
    "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in _IGNORABLE_RANGES) + "]+"
)


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised text and the way back to the original's offsets.

    ``index`` is None when the text is unchanged; otherwise ``index[i]`` is the offset in the
    original of normalised character ``i``, and ``index[len(text)]`` is the original's length.
    """

    text: str
    source_length: int
    index: tuple[int, ...] | None = None

    @property
    def changed(self) -> bool:
        return self.index is not None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a ``[start, end)`` span of the normalised text to the original text.

        The end maps to the start of the next visible character, so invisible characters right
        after a match are counted in (a match at the end of the text ends at its end).
        """
        if self.index is None:
            return start, end
        return self.index[start], self.index[end]


def normalise(text: str) -> Normalised:
    """The text guards match on (see the module docstring); cheap for ASCII."""
    if text.isascii():
        return Normalised(text, len(text))
    return _normalise_unicode(text)


def visible_length(text: str) -> int:
    """The length of the normalised text (what a match length is measured in)."""
    if text.isascii():
        return len(text)
    return len(_settled(strip_invisible(text)))


def _settled(text: str) -> str:
    """NFKC of ``text`` (already without invisible characters) and without the invisible
    characters NFKC itself can make (a ligature's tatweel: U+FCF3 is tatweel, damma and
    shadda), repeated while that changes anything (taking a tatweel out can let NFKC compose
    the letters around it), so the result is stable under both."""
    for _ in range(_SETTLE_ROUNDS):
        folded = _IGNORABLE_RUN.sub("", unicodedata.normalize("NFKC", text))
        if folded == text:
            break
        text = folded
    return text


_SETTLE_ROUNDS = 4  # a bound: the inputs seen so far settle in two rounds


@lru_cache(maxsize=32)
def _normalise_unicode(text: str) -> Normalised:
    index: list[int] | None = None
    result = text
    if _IGNORABLE_RUN.search(text) is not None:
        index, result = _without_invisible(text, list(range(len(text))))
    for _ in range(_SETTLE_ROUNDS):  # see _settled: NFKC can make an invisible character
        if unicodedata.is_normalized("NFKC", result):
            break
        folded = unicodedata.normalize("NFKC", result)
        index = _nfkc_index(result, folded, index if index is not None else range(len(result)))
        result = folded
        if _IGNORABLE_RUN.search(result) is not None:
            index, result = _without_invisible(result, index)
    folded = fold_homoglyphs(result)  # one character for one: the index stays as it is
    if index is None:
        if folded is text:
            return Normalised(text, len(text))
        index = list(range(len(text)))
    index.append(len(text))
    return Normalised(folded, len(text), tuple(index))


def _without_invisible(text: str, index: list[int]) -> tuple[list[int], str]:
    """``text`` without its invisible characters, and ``index`` (an offset per character)
    without their entries."""
    kept: list[int] = []
    pieces: list[str] = []
    at = 0
    for run in _IGNORABLE_RUN.finditer(text):
        kept.extend(index[at : run.start()])
        pieces.append(text[at : run.start()])
        at = run.end()
    kept.extend(index[at:])
    pieces.append(text[at:])
    return kept, "".join(pieces)


def strip_invisible(text: str) -> str:
    """``text`` without the invisible characters (no NFKC, no offset map)."""
    if text.isascii():
        return text
    return _IGNORABLE_RUN.sub("", text)


def _nfkc_index(stripped: str, result: str, origin: list[int] | range) -> list[int]:
    """For each character of ``result`` (NFKC of ``stripped``), its offset in the original.

    NFKC is applied per segment (a starter and the combining marks after it), which lines up
    with the whole-string result except in rare recompositions; then offsets are spread evenly.
    A segment NFKC leaves alone, or turns into one other character, maps one to one; one that
    changes length maps all its characters to its start. Only the segments around characters
    that can do more than that (:func:`_needs_segment`) are looked at one by one; the stretches
    between them are copied.
    """
    special = {c for c in set(stripped) if _needs_segment(c)}
    index: list[int] = []
    if special:
        special.add("\x00")  # the marker below: a NUL of the text is looked at too
        marked = stripped.translate(dict.fromkeys(map(ord, special), "\x00"))
        done = 0
        n = len(stripped)
        for hit in _NUL.finditer(marked):
            p = hit.start()
            if p < done:
                continue
            start = p
            while start > done and unicodedata.combining(stripped[start]):
                start -= 1
            end = p + 1
            while end < n and unicodedata.combining(stripped[end]):
                end += 1
            index.extend(origin[done:start])
            segment = stripped[start:end]
            piece = unicodedata.normalize("NFKC", segment)
            if piece == segment:  # unchanged (e.g. a digit and a mark with no composed form): 1:1
                index.extend(origin[start:end])
            else:
                index.extend([origin[start]] * len(piece))
            done = end
        index.extend(origin[done:])
    else:
        index.extend(origin)
    if len(index) == len(result):
        return index
    # recomposition across segments: fall back to a monotonic proportional map
    n, m = len(result), len(stripped)
    return [origin[min(m - 1, (i * m) // max(n, 1))] for i in range(n)]


_NUL = re.compile("\x00")


@lru_cache(maxsize=16384)
def _needs_segment(c: str) -> bool:
    """Whether NFKC may do more to ``c`` than swap it for one other starter: a mark or a
    conjoining jamo (they compose with what comes before), or a character NFKC turns into
    several characters, into none, or into a mark or jamo."""
    if _composes_backwards(c):
        return True
    folded = unicodedata.normalize("NFKC", c)
    return folded != c and (len(folded) != 1 or _composes_backwards(folded))


def _composes_backwards(c: str) -> bool:
    return (
        unicodedata.combining(c) != 0
        or unicodedata.category(c).startswith("M")
        or 0x1160 <= ord(c) <= 0x11FF  # Hangul vowel and final jamo
        or 0xD7B0 <= ord(c) <= 0xD7FF
    )


# Homoglyphs: letters of other scripts that look like Latin ones (the common cases of Unicode's
# confusables.txt), as pairs of the look-alike and its Latin letter
_CONFUSABLE_PAIRS = (
    # Cyrillic: a ie o er es u ha i, je dze shha de qa we palochka ka, soft-sign izhitsa
    # straight-u; capitals A VE IE KA EM EN O ER ES TE HA U I JE DZE QA WE palochka STRAIGHT-U
    # IZHITSA DE
    "\u0430a\u0435e\u043eo\u0440p\u0441c\u0443y\u0445x\u0456i\u0458j\u0455s\u04bbh\u0501d"
    "\u051bq\u051dw\u04cfl\u043ak\u044cb\u0475v\u04afy\u0410A\u0412B\u0415E\u041aK\u041cM"
    "\u041dH\u041eO\u0420P\u0421C\u0422T\u0425X\u0423Y\u0406I\u0408J\u0405S\u051aQ\u051cW"
    "\u04c0I\u04aeY\u0474V\u0500D"
    # Greek: alpha omicron nu rho iota kappa upsilon chi gamma epsilon eta yot omega; capitals
    # ALPHA BETA EPSILON ZETA ETA IOTA KAPPA MU NU OMICRON RHO TAU UPSILON CHI YOT
    "\u03b1a\u03bfo\u03bdv\u03c1p\u03b9i\u03bak\u03c5u\u03c7x\u03b3y\u03b5e\u03b7n\u03f3j"
    "\u03c9w\u0391A\u0392B\u0395E\u0396Z\u0397H\u0399I\u039aK\u039cM\u039dN\u039fO\u03a1P"
    "\u03a4T\u03a5Y\u03a7X\u037fJ"
    # Armenian: seh vo oh ho co za; capitals SEH OH LIWN
    "\u057du\u0578n\u0585o\u0570h\u0581g\u0566q\u054dU\u0555O\u053cL"
    # Cherokee (capital-like letters): go yv tli gv nah mi v tso tle lu tlv du i do la no gu sv a
    "\u13aaA\u13f4B\u13dfC\u13acE\u13c0G\u13bbH\u13a5i\u13e6K\u13deL\u13b7M\u13e2P\u13daS"
    "\u13a2T\u13d9V\u13b3W\u13c3Z\u13abJ\u13d2R\u13a0D"
)
# Latin letters that NFKC keeps but that only ever stand in for plain ones outside phonetics:
# small capitals and the IPA alpha, script g and iota; folded wherever they are
_LOOKALIKE_PAIRS = (
    "\u1d00a\u0299b\u1d04c\u1d05d\u1d07e\u0262g\u029ch\u026ai\u1d0aj\u1d0bk\u029fl\u1d0dm"
    "\u0274n\u1d0fo\u1d18p\u0280r\ua731s\u1d1bt\u1d1cu\u1d20v\u1d21w\u028fy\u1d22z"
    "\u0251a\u0261g\u0269i"
)
CONFUSABLES: dict[str, str] = dict(
    zip(_CONFUSABLE_PAIRS[::2], _CONFUSABLE_PAIRS[1::2], strict=True)
)
LOOKALIKES: dict[str, str] = dict(zip(_LOOKALIKE_PAIRS[::2], _LOOKALIKE_PAIRS[1::2], strict=True))
_SCRIPT = {c: unicodedata.name(c).split()[0] for c in CONFUSABLES}  # CYRILLIC, GREEK, ...
_FOLD_TABLE = {ord(c): latin for c, latin in (*CONFUSABLES.items(), *LOOKALIKES.items())}
_LOOKALIKE_TABLE = {ord(c): latin for c, latin in LOOKALIKES.items()}

# a folded run of look-alikes is at most this long, so whether a letter is folded depends only on
# the text within this many characters of it (the stream scanner's CONTEXT): a window of a stream
# folds a match the way the whole text does
MAX_FOLD_RUN = 4

_LATIN = (
    r"A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02af\u1d00-\u1d25\u1e00-\u1eff\u2c60-\u2c7f"
    r"\ua720-\ua7ff\uab30-\uab5a"
)
_CONF = "".join(re.escape(c) for c in CONFUSABLES)
_LOOK = "".join(re.escape(c) for c in LOOKALIKES)
_LATIN_OR_DIGIT = re.compile(f"[{_LATIN}0-9]")
_ANY_FOLDABLE = re.compile(f"[{_CONF}{_LOOK}]")
_LOOKALIKE = re.compile(f"[{_LOOK}]")
# a look-alike next to a Latin letter or digit: where a disguised Latin word can be
_BESIDE_LATIN = re.compile(f"(?<=[{_LATIN}0-9])[{_CONF}]|[{_CONF}](?=[{_LATIN}0-9])")


def fold_homoglyphs(text: str) -> str:
    """Latin look-alike letters inside Latin words replaced by the Latin letters they imitate.

    A run of at most :data:`MAX_FOLD_RUN` look-alikes (:data:`CONFUSABLES`: Cyrillic, Greek,
    Armenian, Cherokee) is folded when a Latin letter or digit touches it and no other letter or
    combining mark does: ``p\\u0430ssw\\u043erd`` becomes ``password``, while Russian
    ``\\u0441\\u043e\\u043a`` (no Latin neighbour) and a Latin letter inside a Russian word (other
    Cyrillic letters beside the run) stay as they are. Latin small capitals and IPA look-alikes
    (:data:`LOOKALIKES`) are folded everywhere. A letter followed by a combining mark is kept, so
    the result stays NFKC. One character for one; the text itself when nothing changes.
    Idempotent: a run's fate depends only on its own letters and the two characters around it,
    which folding never changes.
    """
    if text.isascii() or _ANY_FOLDABLE.search(text) is None:
        return text
    chars: list[str] | None = None
    n = len(text)
    done = 0
    for m in _BESIDE_LATIN.finditer(text):
        i = m.start()
        if i < done:
            continue
        start = i
        while start > 0 and text[start - 1] in CONFUSABLES and i - start < MAX_FOLD_RUN:
            start -= 1
        end = i + 1
        while end < n and text[end] in CONFUSABLES and end - start <= MAX_FOLD_RUN:
            end += 1
        done = end
        if end - start > MAX_FOLD_RUN or (start > 0 and text[start - 1] in CONFUSABLES):
            continue  # a long run of look-alikes is a word of their own script
        sides = (_side(text[start - 1]) if start else 0, _side(text[end]) if end < n else 0)
        if -1 in sides:
            continue
        if chars is None:
            chars = list(text)
        for k in range(start, end):
            chars[k] = CONFUSABLES[text[k]]
    for m in _LOOKALIKE.finditer(text):
        k = m.start()
        if k + 1 < n and unicodedata.category(text[k + 1]).startswith("M"):
            continue
        if chars is None:
            chars = list(text)
        chars[k] = LOOKALIKES[text[k]]
    return text if chars is None else "".join(chars)


def _side(ch: str) -> int:
    """1 for a Latin letter or digit, -1 for another letter or a mark, 0 for anything else."""
    if ch.isascii():
        return 1 if ch.isalnum() else 0
    if _LATIN_OR_DIGIT.match(ch) is not None:
        return 1
    return -1 if ch.isalpha() or unicodedata.category(ch).startswith("M") else 0


_WORD_CONTEXT = 64  # characters either side that decide the script around a word
# a word of Latin letters, digits and look-alikes with at least one look-alike (2 characters or
# more: a lone Cyrillic or Greek letter is a word of its own language)
_DISGUISED_WORD = re.compile(
    f"(?<![^\\W_])(?=[^\\W_]*[{_CONF}])[{_LATIN}0-9{_CONF}]{{2,}}(?![^\\W_])"
)
_SCRIPT_CLASSES = [
    "".join(re.escape(c) for c in CONFUSABLES if _SCRIPT[c] == script)
    for script in sorted(set(_SCRIPT.values()))
]
_SCRIPT_LETTERS = [re.compile(f"[{chars}]") for chars in _SCRIPT_CLASSES]
_ONE_SCRIPT = re.compile("|".join(f"[0-9{chars}]+" for chars in _SCRIPT_CLASSES))
# for the script around a word: Latin letters become ASCII ones and look-alikes spaces, so that
# ASCII letters count Latin letters and non-ASCII characters (roughly) other scripts' letters
_CLASS_TABLE: dict[int, str] = {
    **{cp: "a" for cp in range(0xC0, 0x250) if chr(cp).isalpha()},
    **{ord(c): "a" for c in LOOKALIKES},
    **{ord(c): " " for c in CONFUSABLES},
}
_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_LATIN_LETTER = re.compile(f"[{_LATIN}]")
_LETTER = r"[^\W\d_]"
# two or more single letters, one separator (a space, dot or dash) repeated between them
_LETTER_SPACED = re.compile(rf"(?<!\w){_LETTER}([ .\-]){_LETTER}(?:\1{_LETTER})*(?!\w)")
MIN_SPACED_LETTERS = 4


def fold_case_and_space(text: str) -> str:
    """The form a classifier reads: homoglyphs, case, spacing and letter-spacing games undone.

    Meant for the normalised text (``fold_case_and_space(normalise(text).text)``); no offset map.

    * words of 2 characters or more made of Latin letters, digits and look-alikes are folded to
      Latin whole (any run length): those that mix in Latin letters, those that mix two
      scripts' look-alikes, and look-alike-only words in Latin text (more than three times as
      many Latin letters as other non-ASCII characters within 64 characters either side); a
      Cyrillic or Greek word among its own script stays; small capitals are folded too;
    * lower case;
    * letter-spacing undone: single letters joined by one kind of separator (a space, dot or
      dash) are one word (``i g n o r e`` and ``i.g.n.o.r.e`` become ``ignore``); groups with
      only wider whitespace between them make a phrase of words (``a l l  o f``), joined when it
      has :data:`MIN_SPACED_LETTERS` letters or more (so ``x y z`` and ``U.S.`` stay);
    * whitespace runs become one space, none at either end.
    """
    if not text.isascii():
        text = _fold_words(text)
    return " ".join(_join_spaced_letters(text.lower()).split())


def _fold_words(text: str) -> str:
    if _ANY_FOLDABLE.search(text) is None:
        return text
    has_latin = _LATIN_LETTER.search(text) is not None
    if not has_latin and sum(r.search(text) is not None for r in _SCRIPT_LETTERS) < 2:
        return text.translate(_LOOKALIKE_TABLE)  # nothing Latin and one script: its own words
    classes: str | None = None
    parts: list[str] = []
    at = 0
    n = len(text)
    for m in _DISGUISED_WORD.finditer(text):
        word = m.group()
        start, end = m.span()
        if _ONE_SCRIPT.fullmatch(word) is not None:  # look-alikes of one script only
            if not has_latin:
                continue
            if classes is None:
                classes = text.translate(_CLASS_TABLE)
            around = classes[max(0, start - _WORD_CONTEXT) : end + _WORD_CONTEXT]
            ascii_part = around.encode("ascii", "ignore")
            latin = len(ascii_part) - len(ascii_part.translate(None, _ASCII_LETTERS))
            if latin <= 3 * (len(around) - len(ascii_part)):
                continue
        if end < n and unicodedata.category(text[end]).startswith("M"):
            continue  # a combining mark on the last letter: keep what it marks
        parts.append(text[at:start])
        parts.append(word.translate(_FOLD_TABLE))
        at = end
    parts.append(text[at:])
    return "".join(parts).translate(_LOOKALIKE_TABLE)


def _join_spaced_letters(text: str) -> str:
    """Letter-spaced words joined up: a phrase of letter-spaced groups with only whitespace
    between them (wider than the group's own spacing) is joined when it has 4 letters or more."""
    phrase: list[re.Match[str]] = []
    joins: list[re.Match[str]] = []
    for m in _LETTER_SPACED.finditer(text):
        if phrase and not _phrase_gap(text[phrase[-1].end() : m.start()], phrase[-1].group(1)):
            _close_phrase(phrase, joins)
        phrase.append(m)
    _close_phrase(phrase, joins)
    if not joins:
        return text
    parts: list[str] = []
    at = 0
    for m in joins:
        parts.append(text[at : m.start()])
        parts.append(m.group()[::2])
        at = m.end()
    parts.append(text[at:])
    return "".join(parts)


def _phrase_gap(gap: str, spacing: str) -> bool:
    return gap.isspace() and (spacing != " " or len(gap) >= 2)


def _close_phrase(phrase: list[re.Match[str]], joins: list[re.Match[str]]) -> None:
    if sum(len(m.group()) // 2 + 1 for m in phrase) >= MIN_SPACED_LETTERS:
        joins.extend(phrase)
    phrase.clear()
