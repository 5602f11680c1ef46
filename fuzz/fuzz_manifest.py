"""Coverage-guided fuzzing of the manifest parser (atheris).

    python fuzz/fuzz_manifest.py fuzz/seeds/manifest -atheris_runs=100000

Invariant: any input either parses into a manifest that round-trips exactly through its own JSON,
or fails with ManifestError. Any other exception is a bug.
"""

from __future__ import annotations

from modelseal.errors import ManifestError
from modelseal.release.manifest import Manifest


def test_one_input(data: bytes) -> None:
    try:
        manifest = Manifest.from_json(data)
    except ManifestError:
        return
    again = Manifest.from_json(manifest.to_json())
    if again != manifest or again.root != manifest.root:
        raise AssertionError("manifest does not round-trip through its own JSON")


def main() -> None:
    from _atheris import run

    run(test_one_input)


if __name__ == "__main__":
    main()
