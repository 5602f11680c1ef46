"""Coverage-guided fuzzing of the guards' text handling and of guard configuration (atheris).

    python fuzz/fuzz_guards.py fuzz/seeds/guards -atheris_runs=100000

The first byte picks what to fuzz.

Texts (the rest of the input, as UTF-8 with replacement): normalisation keeps its offset map
monotonic and inside the text and is idempotent; every finding of the default guards lies inside
the text, names no matched text, and stays within its guard's ``max_span``; streaming the text
split at points picked by the input releases a prefix of the text, releases all of it when not
blocked, blocks exactly when the whole-text check blocks, blocks only on a finding the whole-text
check also has, and never releases a character of a blocked match.

Configurations: a guard spec built from the input either builds or raises InputError (nothing
else), and a pipeline that builds checks and streams a text without raising.
"""

from __future__ import annotations

import itertools
from typing import Any

from modelseal.errors import InputError
from modelseal.guard import DEFAULT_GUARDS, GuardPipeline, build_pipeline
from modelseal.guard.text import normalise

# the rule guards (regexes compiled before atheris instruments the code); the trained classifiers
# judge windows as wholes, so "a stream blocks exactly when the whole text does" is not theirs
PIPELINE = build_pipeline(DEFAULT_GUARDS[:3])
MAX_TEXT = 1500

_TYPES = ["size", "patterns", "secrets", "pii", "nope", 7]
_KEYS = [
    "type", "name", "stages", "action", "deny", "allow", "case_insensitive", "max_span",
    "max_input_chars", "max_output_chars", "ignore", "min_entropy", "card_number", "iban", "ssn",
    "email", "phone", "bogus", 3,
]  # fmt: skip
_SCALARS: list[Any] = [
    None, True, False, 0, -1, 1, 5, 10**9, 2.5, float("nan"), "", "block", "flag", "off",
    "input", "output", "jwt", "generic", "x", "a b", "size", ["input"], ["output", "input"],
    ["middle"], [], {"a": 1},
]  # fmt: skip
# no repetition operators but "?": random patterns must not backtrack catastrophically
_PATTERN_CHARS = "ab ()[]?|\\^$.-xyz01"


class Bytes:
    """Reads small choices off the fuzzer's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def pick(self, items: list[Any]) -> Any:
        return items[self.byte() % len(items)]

    def pattern(self) -> str:
        return "".join(self.pick(list(_PATTERN_CHARS)) for _ in range(self.byte() % 10))

    def value(self) -> Any:
        kind = self.byte() % 4
        if kind == 0:
            return [self.pattern() for _ in range(self.byte() % 4)]
        if kind == 1:
            return self.pattern()
        return self.pick(_SCALARS)

    def rest(self) -> str:
        return self.data[self.pos :].decode("utf-8", "replace")[:MAX_TEXT]


def split(text: str, data: bytes) -> list[str]:
    points = sorted({(b * 131 + i * 17) % (len(text) + 1) for i, b in enumerate(data[:6])})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def check_normalisation(text: str) -> None:
    norm = normalise(text)
    if normalise(norm.text).text != norm.text:
        raise AssertionError("normalisation is not idempotent")
    if norm.index is not None:
        index = norm.index
        if len(index) != len(norm.text) + 1 or index[-1] != len(text):
            raise AssertionError("offset map has the wrong length")
        if any(a > b for a, b in itertools.pairwise(index)) or index[0] < 0:
            raise AssertionError("offset map is not monotonic")


def check_text(text: str, data: bytes, pipeline: GuardPipeline) -> None:
    whole = pipeline.check(text, "output")
    spans = {g.name: g.max_span for g in pipeline.guards}
    for f in whole.findings:
        if f.start == -1:
            continue
        if not 0 <= f.start < f.end <= len(text):
            raise AssertionError(f"finding outside the text: {f}")
        shown = text[f.start : f.end].strip()
        if len(shown) >= 4 and shown in f.detail:
            raise AssertionError(f"finding detail holds the matched text: {f}")
        if len(normalise(text[f.start : f.end]).text) > spans[f.guard]:
            raise AssertionError(f"finding longer than its guard's max_span: {f}")
    blocks = {(f.category, f.start, f.end) for f in whole.findings if f.action == "block"}
    scanner = pipeline.stream("output")
    released = ""
    for delta in split(text, data):
        released += scanner.feed(delta).release
        if not text.startswith(released):
            raise AssertionError("released text is not a prefix of the stream")
    end = scanner.finish()
    released += end.release
    if end.blocked != bool(blocks):
        raise AssertionError(f"stream blocked={end.blocked}, whole text blocked={bool(blocks)}")
    if not end.blocked and released != text:
        raise AssertionError("a clean stream was not released whole")
    if end.blocked:
        block = end.block
        if block is None:
            raise AssertionError("blocked without a blocking finding")
        if block.start >= 0 and (block.category, block.start, block.end) not in blocks:
            raise AssertionError(f"the stream blocked on {block}, not a whole-text finding")
        starts = [s for _, s, _ in blocks if s >= 0]
        if starts and len(released) > min(starts):
            raise AssertionError("part of a blocked match was released")


def check_config(reader: Bytes) -> None:
    spec: list[Any] = []
    for _ in range(reader.byte() % 4):
        if reader.byte() % 8 == 0:
            spec.append(reader.pick(_SCALARS))
            continue
        item: dict[Any, Any] = {"type": reader.pick(_TYPES)}
        for _ in range(reader.byte() % 5):
            item[reader.pick(_KEYS)] = reader.value()
        spec.append(item)
    try:
        pipeline = build_pipeline(spec)
    except InputError:
        return
    text = reader.rest()
    for stage in ("input", "output"):
        pipeline.check(text, stage)
        scanner = pipeline.stream(stage)
        for delta in split(text, reader.data):
            scanner.feed(delta)
        scanner.finish()
        scanner.result.to_dict()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    reader = Bytes(data)
    if reader.byte() % 3 == 0:
        check_config(reader)
        return
    text = reader.rest()
    check_normalisation(text)
    check_text(text, data, PIPELINE)


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
