"""Coverage-guided fuzzing of letter-spaced text reading and the word-model parser (atheris).

    python fuzz/fuzz_segment.py CORPUS_DIR -atheris_runs=100000

The first byte picks what to fuzz; the rest of the input is the text (UTF-8 with replacement).

* a word file: :meth:`Segmenter.parse` returns a segmenter or raises InputError, nothing else; a
  segmenter that parses splits any a-z string into pieces that join back to it;
* any text, read with the shipped word model: :func:`despaced` never raises, and its reading
  differs from the text only in whitespace, case and leet digits read as letters.
"""

from __future__ import annotations

from modelseal.errors import InputError
from modelseal.guard.segment import LEET, Segmenter, default_segmenter, despaced

MAX_TEXT = 3000


def _letters(s: str) -> str:
    return "".join(s.split()).translate(LEET).lower()


def check_word_file(text: str) -> None:
    try:
        seg = Segmenter.parse(text, "fuzz")
    except InputError:
        return
    letters = "".join(c for c in text.lower() if "a" <= c <= "z")[:300]
    pieces = seg.split(letters)
    if "".join(pieces) != letters or any(not p for p in pieces):
        raise AssertionError(f"split of {letters!r} does not join back: {pieces}")


def check_reading(text: str) -> None:
    out = despaced(text, default_segmenter())
    if out is not None and _letters(out) != _letters(text):
        raise AssertionError(f"reading changed more than spacing: {text!r} -> {out!r}")


def test_one_input(data: bytes) -> None:
    if len(data) < 1:
        return
    text = data[1:].decode("utf-8", "replace")[:MAX_TEXT]
    if data[0] % 2 == 0:
        check_word_file(text)
    else:
        check_reading(text)


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
