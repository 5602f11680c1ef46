"""``modelseal certify``: hash, scan, audit, seal, log, and write the seal bundle."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modelseal._cli._home import add_home_argument, open_home
from modelseal._cli._output import echo, write_atomic
from modelseal.errors import EXIT_OK, InputError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "certify",
        help="issue a seal for a release: hash, scan, audit, sign, log, write the bundle",
        description="Hash the release (its manifest), scan every file (refusing anything "
        "dangerous or malformed), audit it, sign a seal (a DSSE-signed in-toto Statement) with "
        "the issuing key, append it to the transparency log and write the seal bundle: "
        "envelope, issuer chain, inclusion proof and signed checkpoint. The full scan and audit "
        "reports, whose digests the seal carries, are written beside the bundle.",
    )
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument("-o", "--output", metavar="NAME.seal.json", help="the bundle file")
    parser.add_argument("--valid-days", type=int, default=365, metavar="N", help="default 365")
    parser.add_argument(
        "--evidence", nargs="+", default=[], metavar="FILE", help="further evidence to bind"
    )
    parser.add_argument("--log", metavar="URL", help="submit to this log server, not the local log")
    add_home_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from modelseal.seal.certify import certify

    root = Path(args.directory)
    if not root.is_dir():
        raise InputError(f"not a directory: {args.directory}")
    output = Path(args.output or f"{root.resolve().name}.seal.json")
    if output.is_dir():
        raise InputError(f"--output {output} is a directory")
    home = open_home(args)
    try:
        if sys.stderr.isatty():
            from rich.console import Console

            with Console(stderr=True).status("certifying") as status:
                result = certify(
                    root,
                    home,
                    valid_days=args.valid_days,
                    evidence=args.evidence,
                    log_url=args.log,
                    progress=lambda s: status.update(s),
                )
        else:
            result = certify(
                root, home, valid_days=args.valid_days, evidence=args.evidence, log_url=args.log
            )
    finally:
        home.close()
    stem = os.fspath(output).removesuffix(".json").removesuffix(".seal")
    write_atomic(f"{stem}.scan.json", result.scan_report.decode() + "\n")
    write_atomic(f"{stem}.audit.json", result.audit_report.decode())
    write_atomic(os.fspath(output), result.bundle.to_json())
    echo(f"sealed {result.root}")
    echo(f"  serial   {result.serial}")
    echo(f"  log      entry {result.log_index} of {result.bundle.tlog.origin}")
    echo(f"  bundle   {output} (reports: {stem}.scan.json, {stem}.audit.json)")
    return EXIT_OK
