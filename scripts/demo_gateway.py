"""`make demo-gateway`: certify Gemma 3 270M and serve it through the guarded gateway.

Steps, each with the real ``modelseal`` command or the official ``openai`` client:

1. a fresh modelseal home (local CA, trust store, SQLite log) in ``demo-out/gateway``;
2. ``modelseal certify`` on the Gemma release that ``make e2e-deps`` laid out (``.cache/``);
3. ``modelseal gateway --launch llama-cpp``: verifies the seal, starts llama.cpp on the very GGUF
   it verified (one thread), and serves it on 127.0.0.1 with one API key;
4. a guarded request, a blocked one (a secret in the prompt) and a streamed one, each with its
   receipt checked by ``modelseal receipt verify`` against the gateway's public key.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out" / "gateway"
MODELSEAL = Path(sys.executable).parent / "modelseal"
RELEASE = Path(os.environ.get("MODELSEAL_GEMMA_RELEASE", ROOT / ".cache" / "gemma-release"))
ADMIN = "admin-" + os.urandom(12).hex()


def run(*args: str, env: dict[str, str], expect: int = 0) -> str:
    print(f"\n$ modelseal {' '.join(args)}", flush=True)
    proc = subprocess.run(
        [str(MODELSEAL), *args], env=env, capture_output=True, text=True, check=False
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != expect:
        sys.exit(f"demo: `modelseal {' '.join(args)}` exited {proc.returncode}, expected {expect}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verify_receipt(receipt: str, key_file: Path, env: dict[str, str], name: str) -> None:
    path = OUT / f"{name}.receipt"
    path.write_text(receipt + "\n")
    print(f"\nreceipt ({name}): {receipt[:60]}...{receipt[-20:]}")
    run("receipt", "verify", str(path), "--key", str(key_file), env=env)


def main() -> None:
    if not any(RELEASE.glob("*.gguf")):
        sys.exit(f"demo: no Gemma release in {RELEASE}; run `make e2e-deps` first")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    home = OUT / "home"
    env = {
        **os.environ,
        "MODELSEAL_HOME": str(home),
        "MODELSEAL_PASSPHRASE": "demo passphrase (use a real one)",
        "MODELSEAL_ADMIN_TOKEN": ADMIN,
    }
    bundle = OUT / "gemma.seal.json"
    run("init", env=env)
    run("certify", str(RELEASE), "-o", str(bundle), env=env)
    run("verify", str(RELEASE), "--bundle", str(bundle), env=env)

    printed = run("gateway", "--new-key", "demo", env=env)
    key = printed.splitlines()[1].strip()
    key_hash = printed.split('hash: "')[1].split('"')[0]
    config = OUT / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "model": {"id": "gemma-3-270m"},
                "auth": {
                    "keys": [
                        {
                            "id": "demo",
                            "hash": key_hash,
                            "requests_per_minute": 30,
                            "tokens_per_minute": 20000,
                            "policy": {"max_tokens": 48, "logit_bias": "refuse"},
                        }
                    ]
                },
            },
            indent=2,
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (OUT / "gateway.log").open("wb")
    print(f"\n$ modelseal gateway --launch llama-cpp --release {RELEASE} --bundle {bundle} ...")
    gateway = subprocess.Popen(
        [
            str(MODELSEAL), "gateway", "--launch", "llama-cpp", "--chat-format", "gemma",
            "--release", str(RELEASE), "--bundle", str(bundle),
            "--config", str(config), "--port", str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            if gateway.poll() is not None:
                sys.stdout.write((OUT / "gateway.log").read_text())
                sys.exit("demo: the gateway exited")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("demo: the gateway did not become ready in 300 s")
            time.sleep(1)
        sys.stdout.write((OUT / "gateway.log").read_text())
        key_file = OUT / "receipt-key.pem"
        key_file.write_bytes(httpx.get(f"{url}/v1/receipts/key").content)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=300)

        print("\n# 1. a guarded request")
        raw = client.completions.with_raw_response.create(
            model="gemma-3-270m", prompt="The capital of France is", max_tokens=12
        )
        print("answer:", raw.parse().choices[0].text.strip())
        verify_receipt(raw.headers["x-modelseal-receipt"], key_file, env, "guarded")

        print("\n# 2. a blocked request: a private key in the prompt never reaches the model")
        try:
            client.chat.completions.create(
                model="gemma-3-270m",
                messages=[
                    {
                        "role": "user",
                        "content": "debug this: -----BEGIN OPENSSH PRIVATE KEY-----\nb3Blb...",
                    }
                ],
            )
            sys.exit("demo: the request with a private key was not blocked")
        except openai.BadRequestError as exc:
            print(f"blocked ({exc.status_code}): {exc.message}")
            receipt = exc.response.headers["x-modelseal-receipt"]
            verify_receipt(receipt, key_file, env, "blocked")

        print("\n# 3. a streamed request (receipt in the final SSE comment)")
        text, receipt = "", ""
        body = {
            "model": "gemma-3-270m",
            "prompt": "Once upon a time",
            "max_tokens": 24,
            "stream": True,
        }
        with httpx.stream(
            "POST",
            f"{url}/v1/completions",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=300,
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:]).get("choices", []):
                        piece = choice.get("text") or ""
                        text += piece
                        print(piece, end="", flush=True)
                elif line.startswith(": modelseal-receipt "):
                    receipt = line.removeprefix(": modelseal-receipt ")
        print()
        (OUT / "streamed.txt").write_text(text)
        verify_receipt(receipt, key_file, env, "streamed")
        run(
            "receipt", "verify", str(OUT / "streamed.receipt"), "--key", str(key_file),
            "--response-text", str(OUT / "streamed.txt"), env=env,
        )  # fmt: skip
        print(f"\ndashboard: {url}/dashboard?token=<admin token> (while the gateway runs)")
        metrics = httpx.get(f"{url}/metrics", params={"token": ADMIN}).text
        shown = [line for line in metrics.splitlines() if line.startswith("gen_ai_client_token")]
        print("\n".join(shown[:6]))
    finally:
        gateway.terminate()
        try:
            gateway.wait(20)
        except subprocess.TimeoutExpired:
            gateway.kill()
        log.close()
    run("gateway", "--verify-audit", str(home / "gateway" / "audit.db"), env=env)
    print("\ndemo-gateway: all steps passed")


if __name__ == "__main__":
    main()
