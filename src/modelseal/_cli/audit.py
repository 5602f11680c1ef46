"""``modelseal audit``: how open a release really is, under which terms, and how documented."""

from __future__ import annotations

import argparse
import os
import sys

from modelseal._cli._output import echo, write_atomic
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError

FORMATS = ("text", "json", "md", "html", "cyclonedx")
OSAID_ORDER = ("closed", "restricted-weights", "open-weights", "open-source-ai")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "audit",
        help="openness (OSI OSAID 1.0, MOF), licence and documentation audit of a release",
        description="Audit a release directory in Hugging Face layout, offline: inventory its "
        "components, identify the licence from its text (with the restrictions it imposes), "
        "give the OSI Open Source AI Definition verdict and the Model Openness Framework class, "
        "and check the model card and data documentation against the Hugging Face card, EU AI "
        "Act Annexes XI and XII, the AI Office training-content template and California AB "
        "2013. Every verdict cites its rule. An assessment, not legal advice or certification.",
    )
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=FORMATS,
        default="text",
        help="text (default), json, md (Markdown), html (one self-contained page) or "
        "cyclonedx (CycloneDX 1.6 ML-BOM)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    parser.add_argument(
        "--mof",
        metavar="FILE.yml",
        help="a Model Openness Framework description adding or overriding facts the "
        "directory cannot show (e.g. datasets published elsewhere under CC-BY-4.0)",
    )
    parser.add_argument(
        "--require-osaid",
        choices=OSAID_ORDER,
        metavar="VERDICT",
        help=f"exit 1 unless the OSAID verdict is at least VERDICT ({' < '.join(OSAID_ORDER)})",
    )
    parser.add_argument(
        "--require-mof-class",
        type=int,
        choices=(1, 2, 3),
        metavar="N",
        help="exit 1 unless the release reaches MOF class N (3 is the lowest, 1 the highest)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from modelseal.audit.api import audit_release
    from modelseal.audit.render import render

    if not os.path.isdir(args.directory):
        raise InputError(f"not a directory: {args.directory}")
    if args.output is not None and os.path.isdir(args.output):
        raise InputError(f"--output {args.output} is a directory")
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status("auditing") as status:
            report = audit_release(
                args.directory, mof=args.mof, progress=lambda s: status.update(s)
            )
    else:
        report = audit_release(args.directory, mof=args.mof)
    text = render(report, args.output_format)
    if args.output is not None:
        write_atomic(args.output, text)
    else:
        echo(text.rstrip("\n"))
    failed = False
    if args.require_osaid is not None:
        failed |= OSAID_ORDER.index(str(report.osaid.verdict)) < OSAID_ORDER.index(
            args.require_osaid
        )
    if args.require_mof_class is not None:
        reached = report.mof.classification
        failed |= reached == 0 or reached > args.require_mof_class
    return EXIT_FAILED if failed else EXIT_OK
