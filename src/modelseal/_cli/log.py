"""``modelseal log serve|monitor|witness``: the transparency log as a service, and its watchers."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from modelseal._cli._home import add_home_argument, open_home
from modelseal._cli._output import echo
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("log", help="the transparency log: serve, monitor, witness")
    sub = parser.add_subparsers(dest="log_command", metavar="SUBCOMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the log as an HTTP service",
        description="Serve the log over HTTP (submit, checkpoint, entries, inclusion and "
        "consistency proofs, cosignatures). One sequencer per database; submissions must be "
        "signed by the issuing key of $MODELSEAL_HOME (and any --submitter-key).",
    )
    serve.add_argument(
        "--db", metavar="URL", help="sqlite:///path (default: the home's log) or postgresql://..."
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--submitter-key", action="append", default=[], metavar="PEM")
    serve.add_argument("--witness-vkey", action="append", default=[], metavar="VKEY")
    add_home_argument(serve)
    serve.set_defaults(run=run_serve)

    monitor = sub.add_parser(
        "monitor",
        help="follow a log's checkpoints; exit 1 on a fork",
        description="Fetch the log's checkpoint every --interval seconds, verify its signature "
        "and its consistency with every checkpoint seen before (state kept in --state); exit 1 "
        "with a clear message on a fork.",
    )
    monitor.add_argument("url", metavar="URL")
    monitor.add_argument("--trust", metavar="DIR", help="trust store with the log's vkey")
    monitor.add_argument("--state", metavar="FILE", default="monitor-state.json")
    monitor.add_argument("--interval", type=float, default=10.0)
    monitor.add_argument("--count", type=int, default=0, help="stop after N polls (0: forever)")
    monitor.set_defaults(run=run_monitor)

    witness = sub.add_parser(
        "witness",
        help="verify and cosign a log's checkpoint (C2SP cosignature)",
        description="Verify the log's latest checkpoint against the last one this witness "
        "cosigned (consistency proof), cosign it and post the cosignature to the log.",
    )
    witness.add_argument("url", metavar="URL")
    witness.add_argument("--key", required=True, metavar="PEM", help="the witness's Ed25519 key")
    witness.add_argument("--name", required=True, help="the witness's key name")
    witness.add_argument("--trust", metavar="DIR", help="trust store with the log's vkey")
    witness.add_argument("--state", metavar="FILE", default="witness-state.json")
    witness.set_defaults(run=run_witness)


def run_serve(args: argparse.Namespace) -> int:
    from modelseal.attest.signers import load_public_key
    from modelseal.tlog.log import Log
    from modelseal.tlog.note import CosignatureVerifier
    from modelseal.tlog.server import bind, create_app, serve
    from modelseal.tlog.store import open_store

    home = open_home(args)
    try:
        url = args.db or f"sqlite:///{Path(home.log_db).resolve()}"
        submitters = [home.issuing_cert.public_key()]
        submitters += [load_public_key(Path(p).read_bytes()) for p in args.submitter_key]
        witnesses = [CosignatureVerifier.from_vkey(v) for v in args.witness_vkey]
        sock = bind(args.host, args.port)
        log = Log(open_store(url), home.origin, home.log_signer, witnesses=witnesses)
    finally:
        home.close()
    sys.stderr.write(f"serving {log.origin} on http://{args.host}:{sock.getsockname()[1]}\n")
    try:
        serve(create_app(log, submitters), sock)
    finally:
        log.close()
    return EXIT_OK


def _log_verifiers(trust_dir: str | None) -> list[object]:
    from modelseal.ca.truststore import load_trust
    from modelseal.release.cache import modelseal_home
    from modelseal.tlog.note import NoteVerifier

    trust = load_trust(trust_dir or modelseal_home() / "trust")
    if not trust.log_vkeys:
        raise InputError("the trust store holds no log key")
    return [NoteVerifier.from_vkey(v) for v in trust.log_vkeys]


def run_monitor(args: argparse.Namespace) -> int:
    from modelseal.tlog.client import LogClient
    from modelseal.tlog.monitor import ForkError, Monitor

    monitor = Monitor(LogClient(args.url), _log_verifiers(args.trust), args.state)  # type: ignore[arg-type]
    polls = 0
    while True:
        try:
            checkpoint = monitor.poll()
        except ForkError as exc:
            sys.stderr.write(f"ALARM: {exc.diagnostics()}\n")
            return EXIT_FAILED
        echo(f"{checkpoint.origin}: {checkpoint.size} entries, consistent")
        polls += 1
        if args.count and polls >= args.count:
            return EXIT_OK
        time.sleep(args.interval)


def run_witness(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelseal._cli.sign import _load_key
    from modelseal.tlog.client import LogClient
    from modelseal.tlog.note import Cosigner
    from modelseal.tlog.witness import Witness, witness_once

    key = _load_key(Path(args.key))
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{args.key} is not an Ed25519 key (C2SP cosignatures are Ed25519)")
    witness = Witness(Cosigner(args.name, key), _log_verifiers(args.trust), args.state)  # type: ignore[arg-type]
    line = witness_once(LogClient(args.url), witness)
    echo(line.rstrip("\n"))
    return EXIT_OK
