"""safetensors files: strict header validation (scanning.md §4.1).

Only the 8-byte length and the JSON header are read; the tensor bytes are checked by size
arithmetic alone. Any rule violation of :func:`modelseal.formats.safetensors.parse_header` is a
``malformed`` finding ``safetensors.<kind>`` (``safetensors.header-too-large``,
``safetensors.overlap``, ``safetensors.gap``, ``safetensors.trailing-bytes``,
``safetensors.duplicate-key``, ``safetensors.unknown-field``, …): a parser differential or a
polyglot makes every byte of the file untrustworthy.

``__metadata__`` values are attacker text and are never rendered. One holding Jinja2 markup
with sandbox-escape markers (see :func:`modelseal.scan.templates.check_chat_template`) is
``safetensors.metadata-ssti`` (suspicious): a tool that renders metadata would run it.
"""

from __future__ import annotations

from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats.safetensors import parse_header
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Location, Severity, Verdict, malformed
from modelseal.scan.templates import UNPARSABLE, check_chat_template


class SafetensorsScanner(Scanner):
    """Validates the safetensors header; a valid file gives no findings."""

    format = "safetensors"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        try:
            header = parse_header(stream, size)
        except FormatError as e:
            return [malformed("safetensors", e)]
        findings: list[Finding] = []
        for index, (key, value) in enumerate(header.metadata.items()):
            if "{{" not in value and "{%" not in value:
                continue
            for marker, why in check_chat_template(value):
                if marker != UNPARSABLE:
                    findings.append(
                        Finding(
                            "safetensors.metadata-ssti",
                            Verdict.SUSPICIOUS,
                            Severity.MEDIUM,
                            f"__metadata__[{key[:80]!r}] holds a Jinja2 template using {marker}: "
                            f"{why}",
                            key[:200],
                            Location(offset=8, index=index),
                        )
                    )
        return findings


__all__ = ["SafetensorsScanner"]
