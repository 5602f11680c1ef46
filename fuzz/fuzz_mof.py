"""Coverage-guided fuzzing of the Model Openness Framework description parser and scorer (atheris).

    python fuzz/fuzz_mof.py fuzz/seeds/mof -atheris_runs=100000

Invariant: any bytes either raise InputError (with a message naming the source) or parse into a
description whose components are MOF components keyed by their own id; scoring it gives every
class a progress within [0, 100], non-increasing from Class III to Class I only where the
requirements are cumulative, and a classification at 100 % exactly for the classes it claims.
Any other exception is a bug.
"""

from __future__ import annotations

from modelseal.audit.mof import components, parse_mof, score
from modelseal.errors import InputError

_IDS = {spec.id for spec in components()}  # loaded before atheris instruments the code


def test_one_input(data: bytes) -> None:
    try:
        release = parse_mof(data, "fuzz.yml")
    except InputError as exc:
        if "fuzz.yml" not in exc.message:
            raise AssertionError(f"error does not name its source: {exc.message!r}") from exc
        return
    for cid, listed in release.components.items():
        if cid not in _IDS or listed.mof_id != cid:
            raise AssertionError(f"component keyed {cid} is {listed!r}")
    result = score(release)
    for mof_class, progress in result.progress.items():
        if not 0.0 <= progress <= 100.0:
            raise AssertionError(f"class {mof_class} progress {progress}")
    reached = result.classification
    if reached and result.progress[reached] != 100.0:
        raise AssertionError(f"class {reached} claimed at {result.progress[reached]}%")
    if reached == 0 and any(p == 100.0 for p in result.progress.values()):
        raise AssertionError(f"unclassified with progress {result.progress}")


if __name__ == "__main__":
    from _atheris import run

    run(test_one_input)
