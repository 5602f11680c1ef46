"""``modelseal card init``: write a draft model card from what the audit detects."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from modelseal._cli._output import echo, write_atomic
from modelseal.errors import EXIT_OK, InputError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "card",
        help="model card tools (init: write a draft card from what the audit detects)",
        description="Model card tools.",
    )
    sub = parser.add_subparsers(dest="card_command", metavar="SUBCOMMAND", required=True)
    init = sub.add_parser(
        "init",
        help="write a draft README.md model card pre-filled from the audit",
        description="Write a draft model card (YAML metadata and every section the "
        "documentation checks look for) pre-filled with what `modelseal audit` detects: "
        "licence, architecture, parameter count, context length, compute estimate, files. "
        "Everything else is a clear [More Information Needed] placeholder. Never overwrites "
        "an existing card without --force.",
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--force", action="store_true", help="replace an existing README.md")
    init.add_argument(
        "-o", "--output", metavar="FILE", help="write the draft to FILE instead of DIR/README.md"
    )
    init.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> int:
    from modelseal.audit.api import audit_release
    from modelseal.audit.draft import draft_card, write_draft

    root = Path(args.directory)
    if not root.is_dir():
        raise InputError(f"not a directory: {args.directory}")
    report = audit_release(root)
    text = draft_card(report, root)
    if args.output is not None:
        if os.path.exists(args.output) and not args.force:
            raise InputError(f"{args.output} exists; not overwriting it", hint="pass --force")
        write_atomic(args.output, text)
        echo(f"wrote a draft model card to {args.output}")
    else:
        target = write_draft(root, text, force=args.force)
        echo(f"wrote a draft model card to {target}")
    echo("fill in every [More Information Needed], then run `modelseal audit` again")
    return EXIT_OK
