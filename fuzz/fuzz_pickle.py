"""Coverage-guided fuzzing of the pickle reader and scanner (atheris).

    python fuzz/fuzz_pickle.py -atheris_runs=200000

Invariant: any input yields a list of findings; no exception escapes, nothing is unpickled.
"""

from __future__ import annotations

import io

from modelseal.scan.pickle import scan_pickle_stream


def test_one_input(data: bytes) -> None:
    findings = scan_pickle_stream(io.BytesIO(data), len(data))
    if not isinstance(findings, list):
        raise AssertionError("scanner must return a list of findings")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
