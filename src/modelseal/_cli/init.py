"""``modelseal init``: create the embedded default CA, log and trust store in $MODELSEAL_HOME."""

from __future__ import annotations

import argparse

from modelseal._cli._output import echo
from modelseal.errors import EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "init",
        help="create the local certificate authority, transparency log and trust store",
        description="Create, in $MODELSEAL_HOME (default ~/.modelseal): a root CA and an issuing "
        "certificate (private keys encrypted with the passphrase from MODELSEAL_PASSPHRASE or a "
        "prompt, files mode 0600), an Ed25519 log signing key, a SQLite transparency log and a "
        "trust store with the root certificate and the log's public key. Never overwrites keys.",
    )
    parser.add_argument(
        "--algorithm",
        choices=("ecdsa-p256", "ed25519"),
        default="ecdsa-p256",
        help="the CA key algorithm (default ecdsa-p256); the log key is always Ed25519",
    )
    parser.add_argument("--home", metavar="DIR", help="instead of $MODELSEAL_HOME")
    parser.set_defaults(run=run)


def home_path(args: argparse.Namespace) -> str:
    from modelseal.release.cache import modelseal_home

    return str(args.home) if getattr(args, "home", None) else str(modelseal_home())


def run(args: argparse.Namespace) -> int:
    from modelseal.ca.home import AlreadyInitialised, init_home
    from modelseal.ca.keys import passphrase_from_env_or_prompt
    from modelseal.tlog.store import open_store

    path = home_path(args)
    passphrase = passphrase_from_env_or_prompt(
        "new passphrase for the CA and log keys: ", confirm=True
    )
    try:
        home = init_home(path, passphrase, args.algorithm)
    except AlreadyInitialised as exc:
        raise AlreadyInitialised(
            f"{path} is already initialised; its keys were left as they are", hint=exc.hint
        ) from None
    open_store(f"sqlite:///{home.log_db.resolve()}").close()  # the log exists from the start
    echo(f"initialised {path}")
    echo(f"  root certificate  {home.root_pem_path} (sha256 {home.root_fingerprint})")
    echo(f"  trust store       {home.trust_dir} (give it to verifiers: --trust DIR)")
    echo(f"  log               {home.origin}")
    return EXIT_OK
