"""Coverage-guided fuzzing of licence identification (atheris).

    python fuzz/fuzz_licence.py CORPUS_DIR -atheris_runs=100000

Invariant: any bytes named LICENSE are identified or reported without an exception; every
restriction quote is verbatim in the decoded text and starts on the line it claims; scores and
confidences stay in 0..1; identify_release never raises either. Any other exception is a bug.
"""

from __future__ import annotations

import re

from modelseal.audit.licence import (
    LicenceText,
    decode_licence_text,
    identify_release,
    identify_text,
)

_LOCATION = re.compile(r"lines? (\d+)(?:-(\d+))?")


def test_one_input(data: bytes) -> None:
    item = LicenceText("LICENSE", data)
    if len(data) < 64:  # the single-text API too, where it is cheap
        match, _, _ = identify_text(item)
        if match is not None and not 0.0 <= match.score <= 1.0:
            raise AssertionError(f"score out of range: {match.score}")
    result, _ = identify_release([item], "mit")  # one analysis of the text, all of the engine
    if not 0.0 <= result.confidence <= 1.0:
        raise AssertionError(f"confidence out of range: {result.confidence}")
    decoded = decode_licence_text(item)
    for r in result.restrictions:
        if decoded.text is None or r.quote not in decoded.text:
            raise AssertionError(f"quote is not in the text: {r.quote!r}")
        where = _LOCATION.fullmatch(r.evidence.location)
        if where is None:
            raise AssertionError(f"bad location {r.evidence.location!r}")
        lines = decoded.text.splitlines()
        first = int(where.group(1))
        if not 1 <= first <= len(lines) or r.quote.splitlines()[0] not in lines[first - 1]:
            raise AssertionError(f"quote is not on {r.evidence.location}: {r.quote!r}")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
