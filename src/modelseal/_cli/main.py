"""Entry point: the command group, lazy sub-command loading and the one place errors are shown.

Exit codes: 0 ok, 1 verification failure / findings, 2 usage error, 3 internal error.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from modelseal._version import __version__
from modelseal.errors import EXIT_INTERNAL, EXIT_USAGE, Error

# name -> (module, attribute); modules are imported only when their command runs, so
# `modelseal --version` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "hash": ("modelseal._cli.hash", "hash_command"),
    "scan": ("modelseal._cli.scan", "scan_command"),
}


class _State:
    debug = False


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command = getattr(module, target[1])
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="modelseal")
@click.option("--debug", is_flag=True, help="Show a traceback when something fails.")
def cli(debug: bool) -> None:
    """modelseal: trust infrastructure for open-weight AI models.

    Know what a release is, that it is safe to load, certify it and run it guarded.
    """
    _State.debug = debug


def _traceback() -> None:
    import traceback

    traceback.print_exc()


def _err(text: str) -> None:
    click.echo(text, err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (also when used as a library call)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _State.debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="modelseal", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except click.Abort:
        _err("aborted")
        return 130
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Error as exc:
        if _State.debug:
            _traceback()
        _err(f"error: {exc.diagnostics()}")
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_INTERNAL
    except OSError as exc:
        if _State.debug:
            _traceback()
        _err(f"error: {exc}")
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 -- the one top-level net: a bug exits 3
        if _State.debug:
            _traceback()
        _err(f"internal error: {type(exc).__name__}: {exc}")
        _err("this is a bug in modelseal; run again with --debug for a traceback")
        return EXIT_INTERNAL
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
