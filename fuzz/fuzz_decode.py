"""Coverage-guided fuzzing of payload decoding and homoglyph folding (atheris).

    python fuzz/fuzz_decode.py fuzz/corpus-decode -atheris_runs=100000

The first byte picks what to fuzz; the rest of the input is the text (UTF-8 with replacement).

Any text: :func:`decoded_variants` never raises, returns at most ``max_variants`` distinct
payloads none of which is the text itself, each with offsets inside the text and at most
``max_depth`` decodings deep; normalisation stays idempotent with a monotonic offset map and
folds one character for one; homoglyph folding is idempotent and depends only on characters
within ``MAX_FOLD_RUN + 1`` of a letter (what keeps stream windows and whole texts in step); the
classifier form is single-spaced.

Round trip: a text that :func:`as_text` accepts, of 12 bytes or more, wrapped in an encoding
picked by the second byte and put between words, is found and decoded back exactly, with the
offsets of the encoded run.
"""

from __future__ import annotations

import base64
import codecs
import itertools

from modelseal.guard.decode import as_text, decoded_variants
from modelseal.guard.text import MAX_FOLD_RUN, fold_case_and_space, fold_homoglyphs, normalise

MAX_TEXT = 1500
_ENCODERS = (
    lambda raw: base64.b64encode(raw).decode(),
    lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="),
    lambda raw: raw.hex(),
    lambda raw: " ".join(f"{b:02x}" for b in raw),
    lambda raw: "".join(f"\\x{b:02x}" for b in raw),
    lambda raw: ", ".join(f"0x{b:02x}" for b in raw),
    lambda raw: "".join(f"%{b:02X}" for b in raw),
)


def check_variants(text: str, depth: int, limit: int) -> None:
    variants = decoded_variants(text, max_depth=depth, max_variants=limit, max_chars=4096)
    if len(variants) > limit:
        raise AssertionError("more variants than max_variants")
    seen = {text}
    for v in variants:
        if not 0 <= v.start < v.end <= len(text):
            raise AssertionError(f"variant outside the text: {v}")
        if not 1 <= v.depth <= max(depth, 1):
            raise AssertionError(f"variant deeper than max_depth: {v}")
        if v.text in seen:
            raise AssertionError(f"a repeated variant: {v}")
        seen.add(v.text)


def check_folding(text: str, data: bytes) -> None:
    norm = normalise(text)
    if normalise(norm.text).text != norm.text:
        raise AssertionError("normalisation is not idempotent")
    if norm.index is not None:
        index = norm.index
        if len(index) != len(norm.text) + 1 or index[-1] != len(text):
            raise AssertionError("offset map has the wrong length")
        if any(a > b for a, b in itertools.pairwise(index)) or index[0] < 0:
            raise AssertionError("offset map is not monotonic")
    folded = fold_homoglyphs(text)
    if len(folded) != len(text) or fold_homoglyphs(folded) != folded:
        raise AssertionError("homoglyph folding is not one for one or not idempotent")
    a, b = sorted(x % (len(text) + 1) for x in data[1:3].ljust(2, b"\0"))
    k = MAX_FOLD_RUN + 1
    if b - a > 2 * k and fold_homoglyphs(text[a:b])[k:-k] != folded[a + k : b - k]:
        raise AssertionError("folding a letter depends on text further away than a run")
    classified = fold_case_and_space(text)
    if classified != " ".join(classified.split()):
        raise AssertionError("the classifier form is not single-spaced")


def check_round_trip(text: str, pick: int) -> None:
    raw = text.encode()
    if len(raw) < 12 or as_text(raw) != text:
        return
    if pick % 8 == 7:
        encoded = codecs.encode(text, "rot13")  # only a smoke test: no oracle for word ciphers
        decoded_variants(f"see: {encoded}")
        return
    encoded = _ENCODERS[pick % 8](raw)
    wrapped = f"see: {encoded} thanks"
    found = [v for v in decoded_variants(wrapped) if v.text == text]
    if not found:
        raise AssertionError(f"encoding {pick % 8} of an accepted text was not decoded")
    if wrapped[found[0].start : found[0].end] != encoded:
        raise AssertionError(f"wrong offsets for encoding {pick % 8}: {found[0]}")


def test_one_input(data: bytes) -> None:
    if len(data) < 3:
        return
    mode = data[0] % 3
    text = data[3:].decode("utf-8", "replace")[:MAX_TEXT]
    if mode == 0:
        check_variants(text, data[1] % 4, data[2] % 10)
    elif mode == 1:
        check_folding(text, data)
    else:
        check_round_trip(text, data[1])


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
