"""``modelseal sign --format model-signing``: an OpenSSF model-signing 1.x key-based bundle."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from modelseal._cli._output import echo, write_atomic
from modelseal.errors import EXIT_OK, InputError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "sign",
        help="sign a release in another format (OpenSSF model signing)",
        description="Write an OpenSSF model-signing 1.x key-based signature bundle that "
        "`model_signing verify key` accepts. The key is an ECDSA P-256 private key (PEM); "
        "without --private-key, the issuing key of $MODELSEAL_HOME signs.",
    )
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument("--format", choices=("model-signing",), default="model-signing")
    parser.add_argument("-o", "--output", metavar="FILE", default="model.sig")
    parser.add_argument(
        "--private-key", metavar="KEY", help="PEM (MODELSEAL_PASSPHRASE if encrypted)"
    )
    parser.add_argument("--home", metavar="DIR", help="instead of $MODELSEAL_HOME")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from modelseal.attest.model_signing import write_oms_bundle

    root = Path(args.directory)
    if not root.is_dir():
        raise InputError(f"not a directory: {args.directory}")
    home = None
    if args.private_key:
        key = _load_key(Path(args.private_key))
    else:
        from modelseal._cli._home import open_home

        home = open_home(args)
        key = home.issuing_key
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(
            "model-signing key bundles need an ECDSA key (init --algorithm ecdsa-p256)"
        )
    ignore = []
    output = Path(args.output).resolve()
    if output.is_relative_to(root.resolve()):
        ignore.append(output.relative_to(root.resolve()).as_posix())
    try:
        bundle = write_oms_bundle(root, key, ignore=ignore)
    finally:
        if home is not None:
            home.close()
    write_atomic(os.fspath(output), json.dumps(bundle) + "\n")
    echo(f"wrote {args.output}: OpenSSF model-signing bundle over {root}")
    return EXIT_OK


def _load_key(path: Path) -> object:
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    passphrase = os.environ.get("MODELSEAL_PASSPHRASE")
    try:
        return serialization.load_pem_private_key(data, None)
    except TypeError:  # encrypted
        if not passphrase:
            raise InputError(f"{path} is encrypted: set MODELSEAL_PASSPHRASE") from None
    except ValueError:
        raise InputError(f"{path} is not a PEM private key") from None
    try:
        return serialization.load_pem_private_key(data, passphrase.encode())
    except ValueError:
        raise InputError(f"wrong passphrase for {path}") from None
