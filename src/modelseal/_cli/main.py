"""Entry point: the argument parser, command dispatch and the one place errors are shown.

Exit codes: 0 ok, 1 verification failure / findings, 2 usage error, 3 internal error.

Each command lives in its own module with ``register(subparsers)`` (cheap: arguments only) and
``run(args) -> int`` (imports what the command needs), so ``modelseal --version`` and a scan of
a thousand small files do not pay for the rest of the tool. argparse, not click: it is in the
standard library and imports in a quarter of the time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from modelseal._version import __version__
from modelseal.errors import EXIT_INTERNAL, EXIT_USAGE, Error

COMMAND_MODULES = (
    "init",
    "hash",
    "scan",
    "audit",
    "card",
    "certify",
    "verify",
    "revoke",
    "sign",
    "log",
    "gateway",
    "receipt",
)


def _formatter(prog: str) -> argparse.HelpFormatter:
    # argparse builds a formatter for every add_argument; without an explicit width it imports
    # shutil just to ask for the terminal size
    try:
        width = max(60, min(120, os.get_terminal_size().columns - 2))
    except OSError:
        width = 100
    return argparse.HelpFormatter(prog, width=width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(
        prog="modelseal",
        description="modelseal: trust infrastructure for open-weight AI models. Know what a "
        "release is, that it is safe to load, certify it and run it guarded.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"modelseal {__version__}")
    parser.add_argument("--debug", action="store_true", help="show a traceback on failure")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"modelseal._cli.{name}").register(commands)
    return parser


def _traceback() -> None:
    import traceback

    traceback.print_exc()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (also when used as a library call)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        args = build_parser().parse_args(args_list)
        result: int = args.run(args)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Error as exc:
        if debug:
            _traceback()
        _err(f"error: {exc.diagnostics()}")
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_INTERNAL
    except OSError as exc:
        if debug:
            _traceback()
        _err(f"error: {exc}")
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 -- the one top-level net: a bug exits 3
        if debug:
            _traceback()
        _err(f"internal error: {type(exc).__name__}: {exc}")
        _err("this is a bug in modelseal; run again with --debug for a traceback")
        return EXIT_INTERNAL
    return result


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
