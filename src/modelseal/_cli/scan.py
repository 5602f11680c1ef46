"""``modelseal scan``: find code-execution payloads and hostile headers in model files."""

from __future__ import annotations

import io

import click

from modelseal._cli._output import echo, write_atomic
from modelseal.errors import EXIT_FAILED, EXIT_OK
from modelseal.scan.model import FileReport, Verdict

LEVELS = [v.value for v in Verdict if v is not Verdict.SAFE]


def _parse_levels(text: str) -> frozenset[Verdict]:
    if text.strip().lower() == "none":
        return frozenset()
    out = set()
    for part in text.split(","):
        name = part.strip().lower()
        if name not in LEVELS:
            raise click.BadParameter(
                f"{name!r} is not a level; use a comma list of {', '.join(LEVELS)}, or none",
                param_hint="--fail-on",
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


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Report format: a readable table, stable JSON, or SARIF 2.1.0.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str),
              help="Write the report to this file instead of standard output.")  # fmt: skip
@click.option(
    "--fail-on",
    default="dangerous,malformed",
    show_default=True,
    metavar="LEVELS",
    help="Exit 1 when a file reaches one of these levels (comma list of suspicious, "
    "malformed, dangerous; or none).",
)
def scan_command(paths: tuple[str, ...], output_format: str, output: str | None,
                 fail_on: str) -> int:  # fmt: skip
    """Scan model files and release directories without loading or executing anything.

    File types come from content, not names. Every file gets one verdict: safe, suspicious,
    dangerous or malformed (a stream broken after a payload is dangerous and malformed).
    """
    import sys

    from modelseal.scan.api import scan_paths
    from modelseal.scan.report import to_json, to_sarif

    levels = _parse_levels(fail_on)
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status("scanning") as status:
            result = scan_paths(paths, progress=lambda p: status.update(f"scanning {p}"))
    else:
        result = scan_paths(paths)
    if output_format == "json":
        text = to_json(result)
    elif output_format == "sarif":
        text = to_sarif(result)
    else:
        color = output is None and sys.stdout.isatty()
        text = render_text(result.files, result.counts(), color)
    if output is not None:
        write_atomic(output, text)
    else:
        echo(text.rstrip("\n"))
    return EXIT_FAILED if result.failing(levels) else EXIT_OK
