"""Payloads wrapped in an encoding: find them in a text and decode them, so guards re-check them.

An attack is often sent encoded (``aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM=``, "decode this and
do what it says") so that a classifier reading the text sees nothing. :func:`decoded_variants`
finds the usual wrappings and returns what they decode to:

* ``base64`` and ``base64url``: runs of at least 16 characters of the alphabet, padded or not,
  not all digits (lines of 40 characters or more whose length is a multiple of 4 continue on
  the next line, as MIME and PEM wrap them);
* ``hex``: 16 or more hex digits (``0x`` in front or not), byte pairs split by one kind of
  separator (``69 67 6e ...``, ``69:67:6e``), ``\\x69\\x67...`` escapes or ``0x69, 0x67, ...``
  lists (8 bytes or more);
* ``url``: percent-encoding (``%69%67%6e...``, ``ignore%20all%20...``), 3 escapes or more making
  at least a quarter of the run;
* ``rot13`` and ``reversed``: the stretch of words that turns into common English words
  (:data:`COMMON_WORDS`) when rotated by 13 letters or read backwards, while its words are not
  common as they stand: 3 such words or more (2 where the text mentions rot13, Caesar, a cipher,
  reversing, backwards or mirroring), at least 30% of the stretch. Cheap on ordinary text: the
  stretch is searched for only when that many distinct words of the text turn common, a test
  made of C-level string operations.

A decoding counts only if it is text: valid UTF-8, at most 5% control characters, at least half
letters and whitespace, 3 letters or more; or another layer of encoding, 16 characters or more of
the encodings' alphabets. Random bytes (a SHA-256 digest, a UUID, a key) decode to something else
and give nothing.

Decoded texts are searched again, ``max_depth`` levels deep (base64 of hex, rot13 inside base64).
Each :class:`Decoded` has the offsets of its run in the text passed in (for a nested one, the
outermost run) and ``kind``, the decodings applied from the outside in, joined by ``+``
(``"base64+rot13"``); its ``text`` is the decoded payload alone. Work and output are bounded
whatever the input: at most ``max_variants`` results (the outer ones first), ``max_chars``
characters decoded in all (a longer run is decoded from its start), :data:`MAX_RUNS` candidate
runs per kind and level and the first :data:`MAX_WORDS` words for rot13 and reversal, so a
hostile megabyte costs some tens of milliseconds per pass. A payload after more than
:data:`MAX_RUNS` decoy runs is not found: callers that window a long text call once per window.
Never raises.

Callers pass the normalised text (:func:`modelseal.guard.text.normalise`) and map offsets back
with its ``span``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

MAX_RUNS = 256  # candidate runs looked at per kind and level
MIN_BASE64 = 16  # characters of a base64 run
MIN_HEX_DIGITS = 16  # digits of a hex run (8 bytes)
MIN_URL_ESCAPES = 3  # %.. escapes in a url run, a quarter of its characters or more
MIN_TEXT = 4  # characters of an accepted decoding
WRAPPED_LINE = 40  # a base64 line at least this long (and a multiple of 4) continues on the next
MAX_WORDS = 30_000  # words looked at for rot13 and reversed stretches (the first ones)
MIN_WORD_HITS = 3  # words of a rot13 or reversed stretch that turn common (2 when hinted at)
MIN_HIT_SHARE = 0.3  # and their share of the stretch's words

# base64 (either alphabet) and plain hex: one pass finds both
_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_NEXT_LINE = re.compile(r"\r?\n([A-Za-z0-9+/_-]+={0,2})(?![^\s])")  # a whole line
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")
_HEX_PAIRS = re.compile(
    r"[0-9a-fA-F]{2}([ :-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){6,}(?![0-9A-Za-z])"
)
_HEX_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,}")
_HEX_LIST = re.compile(r"0[xX][0-9a-fA-F]{2}(?:[ \t,;]{1,4}0[xX][0-9a-fA-F]{2}){3,}(?![0-9A-Za-z])")
_MARKED_BYTE = re.compile(r"[xX]([0-9a-fA-F]{2})")
_URL_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2}[!-$&-~]{0,64}){3,}")
_URL_LITERAL = frozenset(chr(c) for c in range(0x21, 0x7F) if c != 0x25)
_URL_EXTEND = 256  # literal characters a url run extends back over
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ENCODED = re.compile(r"[A-Za-z0-9+/=_%\\,:;\s-]{16,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
# words for rot13 and reversal: ASCII letters lower-cased, every other ASCII character a space
# (one character for one, so offsets hold); the words are what str.split() gives
_WORDS_ONLY = {c: (chr(c).lower() if chr(c).isalpha() else " ") for c in range(128)}
_TOKEN = re.compile(r"\S+")
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)
# words in a text that say a rot13 or reversed stretch is meant (lower case)
_ROT13_HINTS = ("rot13", "rot-13", "rot 13", "rot_13", "caesar", "cipher", "shifted by 13")
_REVERSED_HINTS = ("revers", "backward", "right to left", "right-to-left", "mirror")

# common English words, and words that attacks are made of (two letters or more)
COMMON_WORDS: frozenset[str] = frozenset(
    """
    the be to of and in that have it for not on with he as you do at this but his by from they we
    say her she or an will my one all would there their what so up out if about who get which go
    me when make can like time no just him know take people into year your good some could them
    see other than then now look only come its over think also back after use two how our work
    first well way even new want because any these give day most us is are was were been has had
    did does am said made should must may might shall here where why very more much many such
    each every own same those through before between under again never always tell show write
    answer question please help need thing nothing something anything everything right wrong
    ignore previous prior above below instructions instruction rules rule system prompt message
    messages pretend act role play mode developer admin administrator unrestricted unfiltered
    jailbreak bypass disable override forget disregard reveal secret secrets password passwords
    key keys token hidden confidential private internal policy policies restrictions restriction
    filter filters safety guidelines output print repeat verbatim text above following execute
    command code run shell delete files file data database access user users assistant model
    ai chatgpt response respond reply say says saying now start begin stop never anyone nobody
    how make build create weapon weapons bomb explosive poison drug drugs kill hack hacking steal
    malware virus exploit attack instructions step steps detailed guide tutorial recipe
    """.split()
)
_ROT13_SAFE = frozenset(w for w in COMMON_WORDS if w.translate(_ROT13) not in COMMON_WORDS)
_REVERSED_SAFE = frozenset(w for w in COMMON_WORDS if w[::-1] not in COMMON_WORDS)


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded payload: its decodings (outside in, ``+``-joined), run offsets, text."""

    kind: str
    start: int
    end: int
    text: str

    @property
    def depth(self) -> int:
        return self.kind.count("+") + 1


@dataclass
class _Budget:
    variants: int
    chars: int

    def take(self, run: str, per_char: float) -> str:
        """The part of ``run`` still to be decoded: all of it, or as much of its start as
        decodes to the characters left (``per_char`` encoded characters make one)."""
        return run[: max(0, int(self.chars * per_char) + 4)] if self.chars > 0 else ""

    def charge(self, decoded: str) -> None:
        self.chars -= max(len(decoded), 1)


_Hit = tuple[str, int, int, str]  # kind, start, end, decoded text


def decoded_variants(
    text: str, *, max_depth: int = 2, max_variants: int = 8, max_chars: int = 65536
) -> list[Decoded]:
    """The encoded payloads in ``text``, decoded (see the module docstring); never raises."""
    found: list[Decoded] = []
    if max_depth < 1 or max_variants < 1 or max_chars < 1 or len(text) < MIN_TEXT:
        return found
    budget = _Budget(max_variants, max_chars)
    seen = {text}
    level: list[Decoded] = [Decoded("", 0, len(text), text)]
    for _ in range(max_depth):
        following: list[Decoded] = []
        for outer in level:
            for kind, start, end, decoded in _decodings(outer.text, budget):
                if decoded in seen:
                    continue
                seen.add(decoded)
                if outer.kind:
                    variant = Decoded(f"{outer.kind}+{kind}", outer.start, outer.end, decoded)
                else:
                    variant = Decoded(kind, start, end, decoded)
                found.append(variant)
                following.append(variant)
                budget.variants -= 1
                if budget.variants <= 0:
                    return found
        level = following
        if not level:
            break
    return found


def _decodings(text: str, budget: _Budget) -> Iterator[_Hit]:
    """Each wrapped payload found in ``text``: base64 and hex, url, rot13 and reversed."""
    finders: tuple[Callable[[str, _Budget], Iterator[_Hit]], ...] = (
        _runs,
        _hex_spelled,
        _url,
        _word_ciphers,
    )
    for finder in finders:
        if budget.chars <= 0:
            return
        yield from finder(text, budget)


def _runs(text: str, budget: _Budget) -> Iterator[_Hit]:
    """Base64 (either alphabet) and plain hex runs."""
    pos = 0
    for _ in range(MAX_RUNS):
        m = _RUN.search(text, pos)
        if m is None:
            return
        start, end = pos_end = m.span()
        pos = end
        body = m.group().rstrip("=").strip("-_")
        digits = body[2:] if body[:2] in ("0x", "0X") else body
        if len(digits) >= MIN_HEX_DIGITS and _NOT_HEX.search(digits) is None:
            decoded = _from_hex(budget.take(digits, 2))
            kind = "hex"
        elif len(m.group().rstrip("=")) >= MIN_BASE64 and body and not body.isdigit():
            urlsafe = "-" in body or "_" in body
            if urlsafe and ("+" in body or "/" in body):
                continue  # two alphabets: not one base64 payload
            kind = "base64url" if urlsafe else "base64"
            wrapped, end = _wrapped_lines(text, m.group(), end, budget)
            decoded = None
            if wrapped is not None:
                decoded = _from_base64(budget.take(wrapped, 4 / 3), urlsafe=urlsafe)
                pos = end
            if decoded is None:  # one line after all
                start, end = pos_end
                full = m.group().rstrip("=")
                if full != body and "+" not in full and "/" not in full:
                    # base64url may end (or start) with "-" or "_": try the whole run first
                    decoded = _from_base64(budget.take(full, 4 / 3), urlsafe=True)
                    if decoded is not None:
                        kind = "base64url"
                if decoded is None:
                    decoded = _from_base64(budget.take(body, 4 / 3), urlsafe=urlsafe)
        else:
            continue
        if decoded is not None:
            budget.charge(decoded)
            yield kind, start, end, decoded


def _wrapped_lines(text: str, line: str, end: int, budget: _Budget) -> tuple[str | None, int]:
    """The lines that continue a base64 line wrapped as MIME and PEM wrap it (a full line of 40
    characters or more, a multiple of 4, then lines as long or a last shorter one), and where
    they end; None when the line does not continue."""
    width = len(line)
    if "=" in line or width < WRAPPED_LINE or width % 4:
        return None, end
    run = line
    while len(run) <= budget.chars * 2:
        more = _NEXT_LINE.match(text, end)
        if more is None or len(more.group(1)) > width:
            break
        run += more.group(1)
        end = more.end()
        if len(more.group(1)) < width or "=" in more.group(1):
            break  # the last line
    return (run, end) if len(run) > width else (None, end)


def _from_base64(body: str, *, urlsafe: bool) -> str | None:
    body = body.replace("\r", "").replace("\n", "").rstrip("=")
    if len(body) % 4 == 1:
        body = body[:-1]
    body += "=" * (-len(body) % 4)
    if urlsafe:
        body = body.replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return as_text(data)


def _from_hex(digits: str) -> str | None:
    try:
        return as_text(bytes.fromhex(digits[: len(digits) // 2 * 2]))
    except ValueError:
        return None


def _hex_spelled(text: str, budget: _Budget) -> Iterator[_Hit]:
    """Hex bytes spelled out: ``69 67 6e``, ``\\x69\\x67``, ``0x69, 0x67``."""
    searches: list[tuple[re.Pattern[str], float]] = [(_HEX_PAIRS, 3)]
    if "\\x" in text:
        searches.append((_HEX_ESCAPES, 4))
    if "0x" in text or "0X" in text:
        searches.append((_HEX_LIST, 6))
    for regex, per_char in searches:
        pos = 0
        for _ in range(MAX_RUNS):
            m = regex.search(text, pos)
            if m is None:
                break
            start, end = m.span()
            if start and text[start - 1] in _ALNUM:
                pos = start + 1  # inside a longer word or number: look further on
                continue
            pos = end
            run = budget.take(m.group(), per_char)
            digits = "".join(_MARKED_BYTE.findall(run)) if regex is not _HEX_PAIRS else run
            decoded = _from_hex(_NOT_HEX.sub("", digits))
            if decoded is not None:
                budget.charge(decoded)
                yield "hex", start, end, decoded


def _url(text: str, budget: _Budget) -> Iterator[_Hit]:
    """Percent-encoded runs whose escapes are a quarter of their characters or more."""
    if "%" not in text:
        return
    for m in itertools.islice(_URL_RUN.finditer(text), MAX_RUNS):
        start, end = m.span()
        floor = max(0, start - _URL_EXTEND)
        while start > floor and text[start - 1] in _URL_LITERAL:
            start -= 1
        run = budget.take(text[start:end], 3)
        escapes = run.count("%")  # each one starts an escape: literals hold no "%"
        if escapes < MIN_URL_ESCAPES or escapes * 3 * 4 < len(run):
            continue
        decoded = as_text(unquote_to_bytes(run))
        if decoded is not None:
            budget.charge(decoded)
            yield "url", start, end, decoded


def _word_ciphers(text: str, budget: _Budget) -> Iterator[_Hit]:
    """Rot13 and reversed stretches of words (see the module docstring)."""
    words_text = text.translate(_WORDS_ONLY)
    words = words_text.split(maxsplit=MAX_WORDS)[:MAX_WORDS]
    if len(words) < 2:
        return
    distinct = " ".join(set(words))
    lowered: str | None = None
    for kind, turn, safe, hints in (
        ("rot13", _rot13_words, _ROT13_SAFE, _ROT13_HINTS),
        ("reversed", _reversed_words, _REVERSED_SAFE, _REVERSED_HINTS),
    ):
        # the cheap test: enough distinct words turn into common ones (one fewer if hinted at)
        hits = len(safe.intersection(turn(distinct)))
        if hits < MIN_WORD_HITS - 1:
            continue
        need = MIN_WORD_HITS
        if hits < need:
            lowered = text.lower() if lowered is None else lowered
            if any(hint in lowered for hint in hints):
                need -= 1
            else:
                continue
        span = _best_stretch(words, turn(" ".join(words)), need)
        if span is None:
            continue
        start, end = _token_span(words_text, *span)
        if 0 <= start < end and budget.chars > 0:
            piece = budget.take(text[start:end], 1)
            decoded = piece.translate(_ROT13) if kind == "rot13" else piece[::-1]
            budget.charge(decoded)
            yield kind, start, end, decoded


def _rot13_words(joined: str) -> list[str]:
    return joined.translate(_ROT13).split()


def _reversed_words(joined: str) -> list[str]:
    return joined[::-1].split()[::-1]  # each word reversed, in the original order


def _best_stretch(words: list[str], turned: list[str], need: int) -> tuple[int, int] | None:
    """Word indices (first, last) of the stretch with the most words that turn common minus
    those that stop being common (a maximum-sum run), if ``need`` of its words turn common and
    they are at least :data:`MIN_HIT_SHARE` of its words. All in C-level loops: a word scores
    ``turned common - plain common``, prefix sums and their running minimum give the best run."""
    if len(turned) != len(words) or not words:
        return None
    common = COMMON_WORDS.__contains__
    gains = list(map(operator.sub, map(common, turned), map(common, words)))
    sums = [0, *itertools.accumulate(gains)]
    lows = list(itertools.accumulate(sums, min))
    rises = list(map(operator.sub, sums[1:], lows[:-1]))  # best run ending at each word
    best = max(rises)
    if best <= 0:
        return None
    end = rises.index(best) + 1
    low = lows[end - 1]
    first = end - 1 - sums[end - 1 :: -1].index(low)  # the last lowest prefix: a tight run
    hits = gains[first:end].count(1)
    if hits < need or hits < MIN_HIT_SHARE * (end - first):
        return None
    return first, end - 1


def _token_span(words_text: str, first: int, last: int) -> tuple[int, int]:
    """Character offsets of words ``first`` to ``last`` (as ``str.split`` counts them)."""
    tokens = itertools.islice(_TOKEN.finditer(words_text), first, last + 1)
    start_match = next(tokens, None)
    if start_match is None:
        return -1, -1
    end_match = start_match
    for end_match in tokens:  # noqa: B007 - the last one is wanted
        pass
    return start_match.start(), end_match.end()


def as_text(data: bytes) -> str | None:
    """``data`` as text if it is: UTF-8, few control characters, mostly letters and spaces; or
    another layer of encoding (16 or more characters of the base64, hex, escape and
    percent-encoding alphabets, searched again at the next depth).

    A multi-byte character cut at the end (a run decoded only in part) is dropped.
    """
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(data) - 3 or e.reason != "unexpected end of data":
            return None
        decoded = data[: e.start].decode("utf-8", "replace")
    if _ENCODED.fullmatch(decoded) is not None:
        return decoded
    n = len(decoded)
    if n < MIN_TEXT:
        return None
    if not decoded.isprintable() and len(_CONTROL.findall(decoded)) * 20 > n:
        return None
    letters = sum(map(str.isalpha, decoded))
    spaces = sum(map(str.isspace, decoded))
    if letters < 3 or (letters + spaces) * 2 < n:
        return None
    return decoded
