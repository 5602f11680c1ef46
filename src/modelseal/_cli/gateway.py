"""``modelseal gateway``: serve a verified model through the guarded OpenAI-compatible proxy."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelseal._cli._output import echo
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError

if TYPE_CHECKING:
    from modelseal.gateway.config import GatewayConfig
    from modelseal.gateway.launch import LaunchedServer


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "gateway",
        help="serve a sealed model through the guarded OpenAI-compatible gateway",
        description="An OpenAI-compatible proxy in front of a model server (llama.cpp, vLLM, "
        "Ollama, ...). At start and on a schedule it verifies the seal bundle against the "
        "release files, checks revocation and that the upstream serves those files; it refuses "
        "to start (or answers 503) when a check fails. Every request goes through the guard "
        "pipeline, per-key limits and parameter policy; every answer carries a signed receipt. "
        "GET /metrics, /dashboard, /admin/status; the admin token comes from the environment "
        "variable MODELSEAL_ADMIN_TOKEN. Other modes: --new-key ID prints a new API key and its "
        "config entry; --verify-audit FILE checks an audit log's hash chain.",
    )
    parser.add_argument("--upstream", metavar="URL", help="the model server's base URL")
    parser.add_argument("--release", metavar="DIR", help="the sealed release directory")
    parser.add_argument("--bundle", metavar="FILE", help="the release's seal bundle")
    parser.add_argument("--config", metavar="FILE", help="gateway.yaml (see the README)")
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="default 8000")
    parser.add_argument("--redis", metavar="URL", help="share limits across replicas in Redis")
    parser.add_argument(
        "--launch",
        choices=["llama-cpp"],
        help="start a local llama.cpp server on the release's verified GGUF file",
    )
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--ctx", type=int, default=2048, help="llama.cpp context (default 2048)")
    parser.add_argument(
        "--chat-format",
        metavar="NAME",
        help="llama.cpp chat format for a GGUF without a chat template (e.g. gemma)",
    )
    parser.add_argument(
        "--upstream-model",
        metavar="ID",
        help="the model id the upstream serves (default: its only one)",
    )
    parser.add_argument("--home", metavar="DIR", help="modelseal home (default $MODELSEAL_HOME)")
    parser.add_argument(
        "--new-key", metavar="ID", help="print a new API key for ID and its config entry; exit"
    )
    parser.add_argument(
        "--verify-audit", metavar="FILE", help="verify an audit log's hash chain; exit"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.new_key:
        return _new_key(args.new_key)
    if args.verify_audit:
        return _verify_audit(Path(args.verify_audit))
    missing = [
        name
        for name, value in (("--release", args.release), ("--bundle", args.bundle))
        if not value
    ]
    if not args.upstream and not args.launch:
        missing.insert(0, "--upstream URL (or --launch llama-cpp)")
    if missing:
        raise InputError(f"modelseal gateway needs {', '.join(missing)}")
    if args.upstream and args.launch:
        raise InputError("give --upstream or --launch, not both")
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    import uvicorn

    from modelseal.gateway.app import create_app, gateway_start, gateway_stop
    from modelseal.gateway.build import build_gateway, default_paths
    from modelseal.gateway.config import load_config

    config = load_config(args.config)
    home = Path(args.home) if args.home else None
    release = Path(args.release)
    bundle = Path(args.bundle)
    launched = None
    upstream_url = args.upstream
    upstream_model = args.upstream_model
    if args.launch:
        launched = _launch(args, config, release, bundle, home)
        upstream_url, upstream_model = launched.url, launched.alias
    try:
        gateway = build_gateway(
            config,
            upstream_url=upstream_url,
            release_dir=release,
            bundle_path=bundle,
            redis_url=args.redis,
            admin_token=os.environ.get("MODELSEAL_ADMIN_TOKEN") or None,
            home=home,
            upstream_id=upstream_model,
            launched_file=launched.model_path if launched is not None else None,
        )
        paths = default_paths(config, home)
        if not gateway.keys.keys and not gateway.allow_anonymous:
            raise InputError("no API keys are configured and anonymous access is off")
        app = create_app(gateway, manage_lifecycle=False)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                http=_fastest("httptools", "auto"),
            )
        )

        async def main() -> None:
            import gc

            await gateway_start(gateway)
            # everything loaded so far lives as long as the process: keep it out of the cyclic
            # collector, whose full passes over it otherwise stall requests for tens of ms
            gc.collect()
            gc.freeze()
            status = gateway.identity.status
            sys.stderr.write(
                f"modelseal gateway: serving {gateway.model_id!r} (seal {status.serial}, "
                f"{status.root}) from {gateway.upstream.base_url} on "
                f"http://{args.host}:{args.port}\n"
            )
            for check in status.checks:
                mark = "skip" if check.skipped else ("ok" if check.ok else "FAIL")
                sys.stderr.write(f"  {mark:>4}  {check.name:<10} {check.reason}\n")
            sys.stderr.write(
                f"  receipts signed by key {gateway.signer.kid}; audit log {paths.audit}\n"
            )
            if gateway.allow_anonymous:
                sys.stderr.write("  warning: no API keys configured, anonymous access is on\n")
            if not gateway.admin_configured:
                sys.stderr.write(
                    "  warning: no admin token (MODELSEAL_ADMIN_TOKEN); /metrics and "
                    "/dashboard are open\n"
                )
            try:
                await server.serve()
            finally:
                await gateway_stop(gateway)

        if _fastest("uvloop", "") == "uvloop":
            import uvloop

            uvloop.run(main())
        else:
            asyncio.run(main())
    finally:
        if launched is not None:
            launched.stop()
    return EXIT_OK


def _launch(
    args: argparse.Namespace, config: GatewayConfig, release: Path, bundle: Path, home: Path | None
) -> LaunchedServer:
    """Verify the release, then start llama.cpp on the very GGUF file that was verified."""
    from modelseal.errors import ModelRefused
    from modelseal.gateway.build import default_paths
    from modelseal.gateway.identity import IdentitySpec, verify_release
    from modelseal.gateway.launch import launch_llama_cpp

    ggufs = sorted(p for p in release.rglob("*.gguf") if p.is_file())
    if len(ggufs) != 1:
        raise InputError(
            f"--launch llama-cpp needs exactly one .gguf file in {release}, found {len(ggufs)}"
        )
    paths = default_paths(config, home)
    spec = IdentitySpec(release, bundle, paths.trust, config.crl, config.log_url)
    status, _ = verify_release(spec)
    failed = [c for c in status.checks if not c.ok and c.mode == "closed"]
    if failed:
        raise ModelRefused(f"refusing to launch an unverified model: {status.reason()}")
    alias = config.model_id or status.release or release.name
    sys.stderr.write(f"modelseal gateway: starting llama.cpp on the verified {ggufs[0].name}\n")
    return launch_llama_cpp(
        ggufs[0], alias=alias, threads=args.threads, ctx=args.ctx, chat_format=args.chat_format
    )


def _fastest(module: str, fallback: str) -> str:
    import importlib.util

    return module if importlib.util.find_spec(module) is not None else fallback


def _new_key(key_id: str) -> int:
    from modelseal.gateway.keys import hash_key, new_key

    secret = new_key()
    echo(f"API key for {key_id} (shown once; the gateway stores only its hash):")
    echo(f"  {secret}")
    echo("config entry (gateway.yaml, under auth.keys):")
    echo(f'  - {{id: {key_id}, hash: "{hash_key(secret)}", requests_per_minute: 60}}')
    return EXIT_OK


def _verify_audit(path: Path) -> int:
    from modelseal.gateway.audit import verify_audit

    if not path.is_file():
        raise InputError(f"no such audit log: {path}")
    check = verify_audit(path)
    if check.ok:
        echo(f"ok: {check.entries} entries, hash chain intact")
        return EXIT_OK
    sys.stderr.write(f"audit log broken at entry {check.first_bad}: {check.reason}\n")
    return EXIT_FAILED
