"""Opening $MODELSEAL_HOME for the commands that sign (certify, revoke, crl, sign, log serve)."""

from __future__ import annotations

import argparse
from typing import Any


def add_home_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", metavar="DIR", help="instead of $MODELSEAL_HOME")


def open_home(args: argparse.Namespace) -> Any:
    from modelseal._cli.init import home_path
    from modelseal.ca.home import open_home as open_
    from modelseal.ca.keys import passphrase_from_env_or_prompt

    path = home_path(args)
    return open_(path, passphrase_from_env_or_prompt(f"passphrase for {path}: "))
