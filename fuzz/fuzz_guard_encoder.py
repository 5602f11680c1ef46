"""Coverage-guided fuzzing of the harm guard's second stage: its settings and ONNX file (atheris).

    python fuzz/fuzz_guard_encoder.py CORPUS_DIR -atheris_runs=100000

Every input is read two ways:

* as the ``encoder`` metadata entry (UTF-8, undecodable bytes replaced):
  :meth:`EncoderSettings.from_json` returns settings or raises InputError, nothing else; settings
  that parse hold their invariants (a plain file name, a SHA-256, a band in [0, 1], a weight in
  [0, 1], 3-512 tokens, an English share in [0, 1]) and survive ``to_json``;
* as the encoder's ONNX file, over a small vocabulary: :class:`EncoderModel` loads it or raises
  InputError, nothing else; a model that loads gives a finite logit for a few short texts, or
  raises InputError (a graph that cannot run them).

The seeds (``fuzz/seeds/guard_encoder/``) are a valid settings entry, a valid tiny encoder (ids ->
Gather of one score per vocabulary id -> mean -> ``logit``) and that encoder with its output
renamed.
"""

from __future__ import annotations

import math
import re

from modelseal.errors import InputError
from modelseal.guard.encoder import EncoderModel, EncoderSettings
from modelseal.guard.wordpiece import WordPiece

_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "how", "to", "make", "a", "bomb", "cake", "##s"]
_WP = WordPiece(_VOCAB)
_SETTINGS = EncoderSettings("enc.onnx", "0" * 64, 0.2, 0.8, 0.5, max_tokens=8)
_TEXTS = ("how to make a bomb", "", "cakes zzz")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_MODEL = 1 << 16  # bytes given to ONNX Runtime (seeds are a few hundred)


def check_settings(text: str) -> None:
    try:
        s = EncoderSettings.from_json(text)
    except InputError:
        return
    if not _FILE.fullmatch(s.file) or ".." in s.file:
        raise AssertionError(f"settings with the file name {s.file!r}")
    if not _SHA256.fullmatch(s.sha256):
        raise AssertionError(f"settings with the digest {s.sha256!r}")
    if not (0.0 <= s.low <= s.high <= 1.0 and 0.0 <= s.weight <= 1.0):
        raise AssertionError(f"settings with band [{s.low}, {s.high}) and weight {s.weight}")
    if not (3 <= s.max_tokens <= 512 and 0.0 <= s.min_english <= 1.0):
        raise AssertionError(f"settings with {s.max_tokens} tokens, English {s.min_english}")
    if EncoderSettings.from_json(s.to_json()) != s:
        raise AssertionError(f"settings that do not survive to_json: {s!r}")


def check_model(data: bytes) -> None:
    try:
        model = EncoderModel(data, _WP, _SETTINGS, source="fuzz")
    except InputError:
        return
    for text in _TEXTS:
        try:
            z = model.logit(text)
        except InputError:
            continue
        if type(z) is not float or not math.isfinite(z):
            raise AssertionError(f"logit {z!r} for {text!r}")
        if model.logit(text) != z:
            raise AssertionError(f"the kept logit of {text!r} changed")


def test_one_input(data: bytes) -> None:
    check_settings(data.decode("utf-8", "replace"))
    if len(data) <= MAX_MODEL:
        check_model(data)


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
