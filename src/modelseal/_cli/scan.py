"""``modelseal scan``: find code-execution payloads and hostile headers in model files."""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import TYPE_CHECKING

from modelseal._cli._output import echo, write_atomic
from modelseal.errors import EXIT_FAILED, EXIT_OK, InputError

if TYPE_CHECKING:
    from modelseal.scan.model import FileReport, Verdict

LEVELS = ("suspicious", "malformed", "dangerous")


def _parse_levels(text: str) -> frozenset[Verdict]:
    from modelseal.scan.model import Verdict

    if text.strip().lower() == "none":
        return frozenset()
    out = set()
    for part in text.split(","):
        name = part.strip().lower()
        if name not in LEVELS:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a level; use a comma list of {', '.join(LEVELS)}, or none"
            )
        out.add(Verdict(name))
    return frozenset(out)


def render_text(reports: tuple[FileReport, ...], counts: dict[str, int], color: bool) -> str:
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, width=120, no_color=not color)
    styles = {"safe": "green", "suspicious": "yellow", "malformed": "magenta", "dangerous": "red"}
    table = Table(show_lines=False, header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("format")
    table.add_column("verdict")
    table.add_column("findings", overflow="fold")
    for report in reports:
        verdict = report.verdict.value
        shown = sorted(v.value for v in report.verdicts)
        label = " + ".join(shown) if len(shown) > 1 else verdict
        first = report.findings[0] if report.findings else None
        summary = ""
        if first is not None:
            summary = f"{first.rule}: {first.symbol or first.message}"
            if len(report.findings) > 1:
                summary += f" (+{len(report.findings) - 1} more)"
        table.add_row(report.path, report.format, f"[{styles[verdict]}]{label}[/]", summary)
    console.print(table)
    for report in reports:
        if not report.findings:
            continue
        console.print(f"\n[bold]{report.path}[/] ({report.format}, {report.verdict.value})")
        for f in report.findings:
            loc = f.location
            where = ", ".join(
                part
                for part in (
                    f"member {loc.member}" if loc.member else "",
                    f"offset {loc.offset}" if loc.offset is not None else "",
                    f"op #{loc.index}" if loc.index is not None else "",
                )
                if part
            )
            console.print(
                f"  [{styles[f.verdict.value]}]{f.verdict.value:<10}[/] {f.rule}"
                + (f"  [bold]{f.symbol}[/]" if f.symbol else "")
                + (f"  ({where})" if where else ""),
                highlight=False,
            )
            console.print(f"             {f.message}", highlight=False, markup=False)
    summary = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    console.print(f"\nscanned {len(reports)} file(s): {summary or 'nothing'}")
    return buffer.getvalue()


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "scan",
        help="scan model files for code-execution payloads and hostile headers",
        description="Scan model files and release directories without loading or executing "
        "anything. File types come from content, not names. Every file gets one verdict: safe, "
        "suspicious, dangerous or malformed (a stream broken after a payload is dangerous and "
        "malformed).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=("text", "json", "sarif"),
        default="text",
        help="a readable table (default), JSON, or SARIF 2.1.0",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the report to FILE instead of standard output"
    )
    parser.add_argument(
        "--fail-on",
        type=_parse_levels,
        default="dangerous,malformed",
        metavar="LEVELS",
        help="exit 1 when a file reaches one of these levels "
        "(comma list of suspicious, malformed, dangerous; or none; default "
        "dangerous,malformed)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from modelseal.scan.api import scan_paths
    from modelseal.scan.report import to_json, to_sarif

    if args.output is not None and os.path.isdir(args.output):
        raise InputError(f"--output {args.output} is a directory")
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status("scanning") as status:
            result = scan_paths(args.paths, progress=lambda p: status.update(f"scanning {p}"))
    else:
        result = scan_paths(args.paths)
    if args.output_format == "json":
        text = to_json(result)
    elif args.output_format == "sarif":
        text = to_sarif(result)
    else:
        color = args.output is None and sys.stdout.isatty()
        text = render_text(result.files, result.counts(), color)
    if args.output is not None:
        write_atomic(args.output, text)
    else:
        echo(text.rstrip("\n"))
    return EXIT_FAILED if result.failing(args.fail_on) else EXIT_OK
