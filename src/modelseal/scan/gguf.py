"""GGUF files: header validation and Jinja2 SSTI in chat templates (scanning.md §4.2, §2.2 #15).

The header goes through the bounded reader :func:`modelseal.formats.gguf.parse_gguf`; any rule
violation is a ``malformed`` finding ``gguf.<kind>`` (``gguf.overlap``, ``gguf.bad-alignment``,
``gguf.array-too-long``, …). Bytes after the padded data section are ``gguf.trailing-bytes``
(suspicious: llama.cpp ignores them, so they can carry a polyglot).

``tokenizer.chat_template`` and every ``tokenizer.chat_template.*`` are rendered by llama.cpp,
llama-cpp-python (CVE-2024-34359), vLLM and SGLang (CVE-2026-5760) with Jinja2, sometimes
unsandboxed. :func:`check_chat_template` parses a template into a Jinja2 AST (never compiling
or rendering it) and walks it for sandbox-escape markers: ``gguf.chat-template-ssti``
(dangerous, the marker as symbol) or ``gguf.chat-template-unparsable`` (suspicious).
"""

from __future__ import annotations

from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats.gguf import parse_gguf
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Location, Severity, Verdict, malformed
from modelseal.scan.templates import MAX_TEMPLATES, UNPARSABLE, check_chat_template


def _is_template_key(key: str) -> bool:
    return key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template.")


class GgufScanner(Scanner):
    """Validates the GGUF header and inspects chat templates; never reads the tensor data."""

    format = "gguf"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        try:
            parsed = parse_gguf(stream, size)
        except FormatError as e:
            return [malformed("gguf", e)]
        findings: list[Finding] = []
        if parsed.trailing_bytes:
            end = size - parsed.trailing_bytes
            findings.append(
                Finding(
                    "gguf.trailing-bytes",
                    Verdict.SUSPICIOUS,
                    Severity.MEDIUM,
                    f"{parsed.trailing_bytes} bytes after the tensor data (room for a polyglot)",
                    None,
                    Location(offset=end),
                )
            )
        templates = [kv for kv in parsed.kvs if _is_template_key(kv.key)]
        for kv in templates[:MAX_TEMPLATES]:
            findings.extend(_template_findings(kv.key, kv.value, kv.offset))
        if len(templates) > MAX_TEMPLATES:
            kv = templates[MAX_TEMPLATES]
            message = f"{len(templates)} chat templates: only the first {MAX_TEMPLATES} checked"
            where = Location(offset=kv.offset)
            findings.append(
                Finding(
                    "gguf.chat-template-unparsable",
                    Verdict.SUSPICIOUS,
                    Severity.MEDIUM,
                    message,
                    kv.key,
                    where,
                )
            )
        return findings


def _template_findings(key: str, value: object, offset: int) -> list[Finding]:
    where = Location(offset=offset)
    if not isinstance(value, str):
        message = f"{key} is not a string"
        return [
            Finding(
                "gguf.chat-template-unparsable",
                Verdict.SUSPICIOUS,
                Severity.MEDIUM,
                message,
                key,
                where,
            )
        ]
    out: list[Finding] = []
    for marker, why in check_chat_template(value):
        if marker == UNPARSABLE:
            out.append(
                Finding(
                    "gguf.chat-template-unparsable",
                    Verdict.SUSPICIOUS,
                    Severity.MEDIUM,
                    f"{key}: {why}",
                    key,
                    where,
                )
            )
        else:
            out.append(
                Finding(
                    "gguf.chat-template-ssti",
                    Verdict.DANGEROUS,
                    Severity.HIGH,
                    f"{key}: {why}",
                    marker,
                    where,
                )
            )
    return out


__all__ = ["GgufScanner"]
