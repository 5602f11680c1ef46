"""The text of a licence file: reading, decoding, normalising with a map back, quoting.

Files are read bounded (``files.max_bytes`` of the rules), never through a symlink that leaves
the release. Decoding is defensive (UTF-8 with or without BOM, UTF-16/32 with BOM, BOM-less
UTF-16, else cp1252/latin-1 as a guess) and never raises. Matching runs on ``Normalised.norm``
(typographic quotes and dashes made ASCII, markdown emphasis dropped, whitespace collapsed, A-Z
lower-cased) whose map back to the original makes every quote the exact original wording with
its ``line N`` (``lines N-M``; lines counted as ``str.splitlines`` does). The public names are
re-exported by :mod:`modelseal.audit.licence`, the module to import.
"""

from __future__ import annotations

import bisect
import codecs
import fnmatch
import itertools
import os
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelseal.audit._licence_rules import RestrictionRule, load_rules
from modelseal.audit.model import Evidence, Restriction

QUOTE_MAX = 300  # characters of a restriction quote
_EXCERPT_MAX = 200  # characters of an identification excerpt


# --- reading files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LicenceText:
    """One licence file of a release: its path relative to the root and (at most) its bytes.

    ``truncated`` says only the first ``max_bytes`` were read (``size`` is the real size);
    ``error`` says why the file could not be read at all (``data`` is then empty).
    """

    path: str
    data: bytes
    truncated: bool = False
    size: int | None = None
    error: str = ""


def find_licence_files(root: Path) -> list[LicenceText]:
    """The top-level licence, notice and use-policy files of ``root``, sorted by name.

    At most ``files.max_bytes`` (2 MiB) of each file is read (``truncated`` tells). Symlinks are
    followed only when they stay inside ``root``; one that leaves it, or a file that cannot be
    read, comes back with ``error`` set and no data.
    """
    rules = load_rules()
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
        root_real = Path(os.path.realpath(root))
    except OSError:
        return []
    found: list[LicenceText] = []
    for entry in entries:
        name = entry.name.casefold()
        if not any(fnmatch.fnmatchcase(name, p) for p in rules.include):
            continue
        try:
            if entry.is_symlink():
                target = Path(os.path.realpath(entry.path))  # never raises on a loop
                problem = (
                    "a symlink that leaves the release"
                    if not target.is_relative_to(root_real)
                    else ("" if target.is_file() else "a symlink that does not lead to a file")
                )
                if problem:
                    found.append(LicenceText(entry.name, b"", error=problem))
                    continue
            elif not entry.is_file(follow_symlinks=False):
                continue
            with open(entry.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                data = fh.read(rules.max_bytes + 1)
        except OSError as exc:
            found.append(LicenceText(entry.name, b"", error=exc.strerror or type(exc).__name__))
            continue
        truncated = len(data) > rules.max_bytes
        found.append(
            LicenceText(entry.name, data[: rules.max_bytes] if truncated else data, truncated, size)
        )
    return found


# --- decoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedText:
    """The text of a licence file, or why there is none (``text is None``)."""

    text: str | None
    encoding: str  # "utf-8", "utf-8 (BOM)", "utf-16-le (BOM)", "cp1252", "binary", …
    guessed: bool = False  # no BOM and not valid UTF-8: the encoding is a guess
    problem: str = ""


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BAD_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
_BAD_RATIO = 0.02


def _decode(data: bytes, encoding: str, partial: bool, errors: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    return str(decoder.decode(data, final=not partial))


def _utf16_without_bom(data: bytes) -> str | None:
    sample = data[:4096]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.4 * half and even <= 0.05 * half:
        return "utf-16-le"
    if even >= 0.4 * half and odd <= 0.05 * half:
        return "utf-16-be"
    return None


def _checked(text: str, encoding: str, guessed: bool) -> DecodedText:
    bad = len(_BAD_CHARS.findall(text))
    if bad > _BAD_RATIO * len(text):
        return DecodedText(
            None, encoding, guessed, f"{bad} of {len(text)} characters are control characters"
        )
    return DecodedText(text, encoding, guessed)


def decode_licence(data: bytes, *, partial: bool = False) -> DecodedText:
    """Decode the bytes of a licence file; ``partial``: the bytes stop mid-file (truncated)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = _decode(data[len(bom) :], encoding, partial, "replace")
            return _checked(text, f"{encoding} (BOM)", False)
    if b"\x00" in data:
        guess = _utf16_without_bom(data)
        if guess is None:
            return DecodedText(None, "binary", False, "the file contains NUL bytes")
        return _checked(_decode(data, guess, partial, "replace"), guess, True)
    try:
        return _checked(_decode(data, "utf-8", partial, "strict"), "utf-8", False)
    except UnicodeDecodeError:
        pass
    try:
        return _checked(data.decode("cp1252"), "cp1252", True)
    except UnicodeDecodeError:
        return _checked(data.decode("latin-1"), "latin-1", True)


def decode_licence_text(text: LicenceText) -> DecodedText:
    """Decode ``text`` exactly as :func:`identify_text` does (quotes are substrings of this)."""
    data = text.data[: load_rules().max_bytes]
    return decode_licence(data, partial=text.truncated or len(text.data) > len(data))


# --- normalisation with a map back to the original -------------------------------------------

TRANSLATE = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007", " "),
        **dict.fromkeys("\u2008\u2009\u200a\u202f\u205f\u3000", " "),
        **{c: c.lower() for c in string.ascii_uppercase},
    }
)
_DROPPED = "*`\\\u00ad\u200b\u200c\u200d\u2060\ufeff"
_SQUEEZE = re.compile(r"(?:\s|[" + re.escape(_DROPPED) + r"])+")
_HAS_DROPPED = re.compile("[" + re.escape(_DROPPED) + "]")
_WHITESPACE = re.compile(r"\s")
_LINEBREAK = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass(frozen=True)
class Normalised:
    """``norm`` is ``text`` normalised; ``orig(i)`` maps a position of ``norm`` into ``text``.

    Normalising translates characters one for one, then squeezes every run of whitespace and
    dropped characters into one space (or nothing, for a run without whitespace). Per run the
    map keeps where it starts in ``norm``, where it ends in ``text``, what it became and which
    character of ``text`` its space stands for.
    """

    text: str
    norm: str
    _run_norm: list[int]  # position in norm where each squeezed run starts
    _run_end: list[int]  # where the run ends in text
    _run_out: list[int]  # chars the run became in norm (1 = a space, 0 = dropped)
    _run_space: list[int]  # the whitespace character of text that the space stands for

    @classmethod
    def of(cls, text: str) -> Normalised:
        translated = text.translate(TRANSLATE)
        spans = [m.span() for m in _SQUEEZE.finditer(translated)]
        if _HAS_DROPPED.search(translated) is None:
            out = [1] * len(spans)
            space = [s for s, _ in spans]
            norm = _SQUEEZE.sub(" ", translated)
        else:
            found = [_WHITESPACE.search(translated, s, e) for s, e in spans]
            out = [0 if m is None else 1 for m in found]
            space = [s if m is None else m.start() for m, (s, _) in zip(found, spans, strict=True)]
            norm = _SQUEEZE.sub(lambda m: " " if _WHITESPACE.search(m.group()) else "", translated)
        removed = itertools.accumulate(
            ((e - s) - o for (s, e), o in zip(spans, out, strict=True)), initial=0
        )
        run_norm = [s - r for (s, _), r in zip(spans, removed, strict=False)]
        return cls(text, norm, run_norm, [e for _, e in spans], out, space)

    def orig(self, i: int) -> int:
        """The position in ``text`` of the character at ``norm[i]``."""
        k = bisect.bisect_right(self._run_norm, i) - 1
        if k < 0:
            return i
        start = self._run_norm[k]
        if i < start + self._run_out[k]:
            return self._run_space[k]
        return self._run_end[k] + (i - start - self._run_out[k])

    def span(self, m: re.Match[str], group: int | str = 0) -> tuple[int, int]:
        """The span of a match (group) over ``norm`` as a span of ``text``."""
        a, b = m.span(group)
        if b <= a:
            return self.orig(a), self.orig(a)
        return self.orig(a), self.orig(b - 1) + 1


def _line_of(text: str, pos: int) -> int:
    return len(_LINEBREAK.findall(text, 0, pos)) + 1


def _location(text: str, start: int, end: int) -> str:
    first = _line_of(text, start)
    last = first + len(_LINEBREAK.findall(text, start, max(start, end - 1)))
    return f"line {first}" if last == first else f"lines {first}-{last}"


def _line_excerpt(text: str, pos: int) -> tuple[int, int]:
    """The stripped line around ``pos`` (at most ``_EXCERPT_MAX`` characters), as a span."""
    start = pos
    while start > 0 and text[start - 1] not in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029":
        start -= 1
        if pos - start > _EXCERPT_MAX:
            start = pos
            break
    m = _LINEBREAK.search(text, pos)
    end = m.start() if m else len(text)
    while start < end and text[start].isspace():
        start += 1
    end = min(end, start + _EXCERPT_MAX)
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# --- quotes ----------------------------------------------------------------------------------

_BOUNDARY = re.compile(
    r"[.!?][\"'\u201d\u2019)\]]*(?=\s)"  # end of a sentence
    r"|\n[ \t\r]*\n"  # a blank line
    r"|\n(?=[ \t]*(?:[-\u2022*\u2013]|\(?[0-9a-zA-Z]{1,4}[.)])[ \t])"  # a list item starts
)
_TOKEN_BEFORE = re.compile(r"([\w.]*)[*_)\]\"'\u2019\u201d]*$")
_ABBREVIATIONS = frozenset(
    "e.g i.e etc inc ltd co no nos vs u.s sec art para dr mr ms st cf approx fig incl".split()
)
_SEARCH_WINDOW = 3000


def _is_boundary(text: str, m: re.Match[str]) -> bool:
    if text[m.start()] != ".":
        return True
    token = _TOKEN_BEFORE.search(text, max(0, m.start() - 30), m.start())
    word = token.group(1) if token else ""
    return not (len(word) <= 1 or "." in word or word.casefold() in _ABBREVIATIONS)


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentence (or list item) of ``text`` around ``start:end``."""
    s = max(0, start - _SEARCH_WINDOW)
    for m in _BOUNDARY.finditer(text, s, start):
        if _is_boundary(text, m):
            s = m.end()
    e = min(len(text), end + _SEARCH_WINDOW)
    for m in _BOUNDARY.finditer(text, end, e):
        if _is_boundary(text, m):
            e = m.end() if text[m.start()] in ".!?" else m.start()
            break
    return s, e


_CLAUSE = re.compile(r"[,;:]\s+|\s+(?=\()")


def _quote_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around a match, trimmed to ``QUOTE_MAX`` characters at word boundaries.

    A long sentence is cut to start at the sentence start, else at the first clause boundary
    (comma, semicolon, colon, parenthesis) that keeps the match in, else around the match.
    """
    s, e = _sentence(text, start, end)
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e - s <= QUOTE_MAX:
        return s, e
    if end - start >= QUOTE_MAX:
        a, b = start, start + QUOTE_MAX
    else:
        a = s if end - s <= QUOTE_MAX else -1
        if a < 0:
            for m in _CLAUSE.finditer(text, s, start):
                if end - m.end() <= QUOTE_MAX:
                    a = m.end()
                    break
        if a < 0:
            a = max(s, start - (QUOTE_MAX - (end - start)) // 2)
            if a > s and not text[a - 1].isspace():
                ws = _WHITESPACE.search(text, a, start)
                if ws:
                    a = ws.end()
        b = min(e, a + QUOTE_MAX)
        if b < e and not text[b].isspace():
            last = max((m.start() for m in _WHITESPACE.finditer(text, end, b)), default=-1)
            if last > 0:
                b = last
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


class _Groups(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def quote_restrictions(
    path: str, doc: Normalised, rules: Iterable[RestrictionRule]
) -> tuple[Restriction, ...]:
    """Each restriction rule that matches ``doc``, quoted at its first match (file order)."""
    found: list[Restriction] = []
    for rule in rules:
        best: re.Match[str] | None = None
        for pattern in rule.patterns:
            m = pattern.search(doc.norm)
            if m and (best is None or m.start() < best.start()):
                best = m
        if best is None:
            continue
        start, end = doc.span(best)
        groups = _Groups()
        for name, value in best.groupdict().items():
            if value is not None:
                a, b = doc.span(best, name)
                groups[name] = " ".join(doc.text[a:b].split()).strip("\"'\u201c\u201d\u2018\u2019")
        qs, qe = _quote_span(doc.text, start, end)
        quote = doc.text[qs:qe]
        found.append(
            Restriction(
                kind=rule.kind,
                rule=rule.id,
                summary=rule.summary.format_map(groups),
                quote=quote,
                evidence=Evidence(path, _location(doc.text, qs, qe), quote),
            )
        )
    return tuple(found)


def evidence_at(path: str, doc: Normalised, norm_pos: int) -> Evidence:
    """Evidence for the line of ``doc.text`` around position ``norm_pos`` of ``doc.norm``."""
    pos = doc.orig(min(norm_pos, max(0, len(doc.norm) - 1)))
    a, b = _line_excerpt(doc.text, pos)
    return Evidence(path, f"line {_line_of(doc.text, a)}", doc.text[a:b])
