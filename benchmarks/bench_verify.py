"""Benchmark: ``modelseal verify`` of a full seal against ``model_signing verify key``.

On the same ~1 GB release (4 x 256 MiB safetensors, a config, a 2 MB tokenizer, a card), page
cache warm, both as whole CLI processes in the same run, best of ``--repeat``:

- modelseal: re-hash every file against the sealed manifest, DSSE signature, chain to the
  trusted root, validity, inclusion proof against the signed checkpoint (the full seal);
- anchor: ``model_signing verify key`` (OpenSSF model signing 1.1.1) of a bare signature.

Ratio = anchor time / modelseal time (>= 1.0 means modelseal is no slower; the issue's target).

Run: ``python benchmarks/bench_verify.py [--size-mib 1024] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from safetensors.numpy import save_file

BIN = Path(sys.executable).parent


def build(root: Path, size_mib: int) -> None:
    root.mkdir()
    per = size_mib // 4 * (1 << 20) // 4  # float32 elements per shard
    rng = np.random.default_rng(0)
    for i in range(4):
        data = rng.standard_normal(per, dtype=np.float32)
        save_file({"w": data}, str(root / f"model-0000{i + 1}-of-00004.safetensors"))
    (root / "config.json").write_text('{"architectures": ["Bench"]}')
    (root / "tokenizer.json").write_bytes(os.urandom(2_000_000).hex().encode()[:2_000_000])
    (root / "README.md").write_text("---\nlicense: apache-2.0\n---\n# bench\n")


def timed(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        release = tmp / "model"
        build(release, args.size_mib)
        env = dict(os.environ, MODELSEAL_HOME=str(tmp / "home"), MODELSEAL_PASSPHRASE="bench")
        ms = str(BIN / "modelseal")
        subprocess.run([ms, "init"], env=env, check=True, capture_output=True)
        bundle = tmp / "model.seal.json"
        subprocess.run(
            [ms, "certify", str(release), "-o", str(bundle)],
            env=env,
            check=True,
            capture_output=True,
        )
        key = ec.generate_private_key(ec.SECP256R1())
        (tmp / "key.priv").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (tmp / "key.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        oms = str(BIN / "model_signing")
        sig = tmp / "model.sig"
        subprocess.run(
            [oms, "sign", "key", str(release), "--private_key", str(tmp / "key.priv"),
             "--signature", str(sig)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        ours = timed(
            [
                ms,
                "verify",
                str(release),
                "--bundle",
                str(bundle),
                "--trust",
                str(tmp / "home" / "trust"),
            ],
            env,
            args.repeat,
        )
        anchor = timed(
            [oms, "verify", "key", str(release), "--signature", str(sig), "--public_key",
             str(tmp / "key.pub")],
            env, args.repeat,
        )  # fmt: skip
    print(f"release: {args.size_mib} MiB, best of {args.repeat}, warm cache")
    print(f"modelseal verify (full seal)            {ours:.3f} s")
    print(f"model_signing verify key (bare signature) {anchor:.3f} s")
    print(f"ratio (anchor / modelseal): {anchor / ours:.2f}x")


if __name__ == "__main__":
    main()
