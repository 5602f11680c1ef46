"""``modelseal verify``: check a release against its seal bundle (or an OpenSSF signature)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from modelseal._cli._output import echo
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "verify",
        help="verify a release against its seal bundle, offline",
        description="Check, offline: the files match the sealed manifest, the DSSE signature, "
        "the chain to a trusted root, the seal's validity window at --at, the inclusion proof "
        "against a trusted log's signed checkpoint, and (with --crl or --log) revocation. Exit "
        "0 valid, 1 invalid with one reason per failed check. With --model-signing-sig and "
        "--public-key, verifies an OpenSSF model-signing 1.x key-based signature instead.",
    )
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument("--bundle", metavar="FILE", help="the seal bundle")
    parser.add_argument(
        "--trust", metavar="DIR", help="trust store (default $MODELSEAL_HOME/trust)"
    )
    parser.add_argument("--at", type=_time, metavar="TIME", help="verify as of TIME (default now)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--crl", metavar="FILE", help="a signed revocation list (modelseal crl)")
    group.add_argument("--log", metavar="URL", help="check revocation against this log server")
    parser.add_argument(
        "--model-signing-sig", metavar="FILE", help="an OpenSSF model-signing bundle"
    )
    parser.add_argument("--public-key", metavar="KEY", help="its public key (PEM)")
    parser.add_argument("--json", action="store_true", help="machine-readable result")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    root = Path(args.directory)
    if not root.is_dir():
        raise InputError(f"not a directory: {args.directory}")
    if args.model_signing_sig:
        return _model_signing(args, root)
    if not args.bundle:
        raise InputError("give --bundle FILE (or --model-signing-sig FILE --public-key KEY)")
    from modelseal.ca.truststore import load_trust
    from modelseal.seal.bundle import SealBundle
    from modelseal.seal.verify import verify_seal

    bundle = SealBundle.from_json(_read(args.bundle), args.bundle)
    trust = load_trust(args.trust or _default_trust())
    crl = None
    if args.crl:
        from modelseal.ca.revocation import load_crl

        crl = load_crl(_read(args.crl))
    client = None
    if args.log:
        from modelseal.tlog.client import LogClient

        client = LogClient(args.log)
    result = verify_seal(root, bundle, trust, at=args.at, crl=crl, log_client=client)
    if args.json:
        echo(json.dumps(result.to_dict(), indent=2))
    else:
        for check in result.checks:
            mark = "skip" if check.skipped else ("ok" if check.ok else "FAIL")
            echo(f"{mark:>4}  {check.name:<10} {check.reason}")
        if result.ok:
            echo(f"valid: {result.release} {result.root} (serial {result.serial})")
        else:
            failed = [c.name for c in result.checks if not c.ok]
            sys.stderr.write(f"invalid: {', '.join(failed)} failed\n")
    return EXIT_OK if result.ok else EXIT_FAILED


def _model_signing(args: argparse.Namespace, root: Path) -> int:
    import json

    from modelseal.attest.model_signing import verify_oms_bundle
    from modelseal.attest.signers import load_public_key

    if not args.public_key:
        raise InputError("--model-signing-sig needs --public-key KEY")
    bundle = json.loads(_read(args.model_signing_sig))
    from cryptography.hazmat.primitives.asymmetric import ec

    key = load_public_key(_read(args.public_key))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError(f"{args.public_key}: model-signing key bundles use EC keys")
    verify_oms_bundle(root, bundle, key)
    if args.json:
        echo(json.dumps({"valid": True, "format": "model-signing"}))
    else:
        echo(f"valid: OpenSSF model-signing signature over {root}")
    return EXIT_OK


def _default_trust() -> Path:
    from modelseal.release.cache import modelseal_home

    return modelseal_home() / "trust"


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
