"""Text normalisation shared by the guards: what a reader sees, not what the bytes spell.

Guards match on a normalised copy of the text so that invisible characters cannot split a key
(``AKIA\\u200bIOSF...``) and compatibility forms cannot disguise one (full-width letters,
``\\uff21\\uff2b\\uff29\\uff21`` for ``AKIA``):

1. remove invisible format characters: zero-width spaces and joiners, the word joiner, the byte
   order mark, the soft hyphen, bidirectional controls and isolates, variation selectors and
   Unicode tag characters (used to smuggle hidden ASCII);
2. apply NFKC (full-width and other compatibility forms, ligatures, non-breaking spaces).

ASCII text (the common case) is returned as is without any work beyond ``str.isascii``. For other
text the result keeps a map from each normalised character back to the original, so findings
report offsets into the text the caller passed in.
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
    return len(unicodedata.normalize("NFKC", strip_invisible(text)))


@lru_cache(maxsize=32)
def _normalise_unicode(text: str) -> Normalised:
    kept: list[int] | None = None
    stripped = text
    if _IGNORABLE_RUN.search(text) is not None:
        kept = []
        at = 0
        for run in _IGNORABLE_RUN.finditer(text):
            kept.extend(range(at, run.start()))
            at = run.end()
        kept.extend(range(at, len(text)))
        stripped = _IGNORABLE_RUN.sub("", text)
    if unicodedata.is_normalized("NFKC", stripped):
        if kept is None:
            return Normalised(text, len(text))
        kept.append(len(text))
        return Normalised(stripped, len(text), tuple(kept))
    result = unicodedata.normalize("NFKC", stripped)
    origin = kept if kept is not None else range(len(stripped))
    index = _nfkc_index(stripped, result, origin)
    index.append(len(text))
    return Normalised(result, len(text), tuple(index))


def strip_invisible(text: str) -> str:
    """``text`` without the invisible characters (no NFKC, no offset map)."""
    if text.isascii():
        return text
    return _IGNORABLE_RUN.sub("", text)


def _nfkc_index(stripped: str, result: str, origin: list[int] | range) -> list[int]:
    """For each character of ``result`` (NFKC of ``stripped``), its offset in the original.

    NFKC is applied per segment (a starter and the combining marks after it), which lines up
    with the whole-string result except in rare recompositions; then offsets are spread evenly.
    """
    index: list[int] = []
    segment_start = 0
    for i in range(1, len(stripped) + 1):
        if i < len(stripped) and unicodedata.combining(stripped[i]):
            continue
        segment = stripped[segment_start:i]
        piece = unicodedata.normalize("NFKC", segment)
        if piece == segment:  # unchanged (e.g. a digit and a mark with no composed form): 1:1
            index.extend(origin[segment_start + k] for k in range(len(piece)))
        else:
            index.extend([origin[segment_start]] * len(piece))
        segment_start = i
    if len(index) == len(result):
        return index
    # recomposition across segments: fall back to a monotonic proportional map
    n, m = len(result), len(stripped)
    return [origin[min(m - 1, (i * m) // max(n, 1))] for i in range(n)]
