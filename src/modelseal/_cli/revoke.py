"""``modelseal revoke`` and ``modelseal crl``: signed, logged revocation of seals."""

from __future__ import annotations

import argparse

from modelseal._cli._home import add_home_argument, open_home
from modelseal._cli._output import echo, write_atomic
from modelseal.errors import EXIT_OK, InputError


def _serial(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seal serial (a positive integer)")
    return int(text)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "revoke",
        help="revoke a seal: a signed revocation, also appended to the log",
        description="Revoke the seal with SERIAL: the CA registry records it, and a revocation "
        "statement signed by the issuing key is appended to the transparency log so nobody "
        "can revoke (or hide a revocation) in secret. `modelseal crl` then lists it.",
    )
    parser.add_argument("serial", type=_serial, metavar="SERIAL")
    parser.add_argument(
        "--reason",
        required=True,
        metavar="R",
        help="the revocation reason: superseded, key-compromise, ca-compromise, "
        "affiliation-changed, cessation-of-operation, certificate-hold, privilege-withdrawn, "
        "unspecified",
    )
    parser.add_argument("--comment", default="", help="free text, logged with the revocation")
    parser.add_argument("--log", metavar="URL", help="submit to this log server, not the local log")
    add_home_argument(parser)
    parser.set_defaults(run=run_revoke)

    crl = commands.add_parser(
        "crl",
        help="write the current signed revocation list",
        description="Write the X.509 revocation list of every revoked seal serial, signed by "
        "the issuing key, for offline verifiers (`modelseal verify --crl FILE`).",
    )
    crl.add_argument("-o", "--output", metavar="FILE", default="revoked.crl")
    crl.add_argument("--valid-days", type=int, default=7, metavar="N", help="default 7")
    add_home_argument(crl)
    crl.set_defaults(run=run_crl)


def run_revoke(args: argparse.Namespace) -> int:
    from modelseal.seal.revoke import revoke

    home = open_home(args)
    try:
        if home.registry.issued(args.serial) is None:
            raise InputError(f"no seal with serial {args.serial} was issued by this CA")
        index = revoke(home, args.serial, args.reason, comment=args.comment, log_url=args.log)
    finally:
        home.close()
    echo(f"revoked seal {args.serial} ({args.reason}); log entry {index}")
    return EXIT_OK


def run_crl(args: argparse.Namespace) -> int:
    from modelseal.seal.revoke import current_crl

    if args.valid_days < 1:
        raise InputError("--valid-days must be at least 1")
    home = open_home(args)
    try:
        data = current_crl(home, valid_days=args.valid_days)
        count = len(home.registry.revoked())
    finally:
        home.close()
    write_atomic(args.output, data.decode())
    echo(f"wrote {args.output}: {count} revoked seal(s), valid {args.valid_days} day(s)")
    return EXIT_OK
