"""ONNX models: external-data path escapes and custom operator domains (scanning.md §2.2 #16, §4.3).

The ModelProto is walked as a stream with :class:`modelseal.formats.protobuf.ProtoReader`, so a
model with gigabytes of embedded initializers costs a skip, not memory. Field numbers are those
of ``onnx/onnx.proto`` (checked against onnx 1.23):

- ModelProto: graph 7, opset_import 8, training_info 20, functions 25
- TrainingInfoProto: initialization 1, algorithm 2 (graphs)
- GraphProto: node 1, initializer 5, sparse_initializer 15
- NodeProto: attribute 5, domain 7
- AttributeProto: t 5, g 6, tensors 10, graphs 11, sparse_tensor 22, sparse_tensors 23
- SparseTensorProto: values 1, indices 2
- FunctionProto: node 7, opset_import 9, domain 10, attribute_proto 11
- TensorProto: name 8, external_data 13 (StringStringEntryProto key 1 / value 2), data_location 14
- OperatorSetIdProto: domain 1

Every ``external_data`` ``location`` is checked, whatever ``data_location`` says (protobuf merges
repeated occurrences of a singular message, so the two may come from different places).
Rules: ``onnx.external-data-escape`` (dangerous: absolute path, ``..``, backslash, NUL, or a
resolved path, symlinks followed, outside the model's directory; CVE-2022-25882, CVE-2024-27318),
``onnx.external-data-link`` (suspicious: a symlink or hard link inside the directory),
``onnx.external-data-missing`` (suspicious), ``onnx.custom-domain`` (suspicious: custom
operators load native code), ``onnx.bad-protobuf`` (malformed).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats.protobuf import LEN, Field, ProtoReader
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Location, Severity, Verdict

STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training", "com.microsoft"}
)
MAX_STRING = 1 << 16
MAX_NAME = 4096
MAX_FINDINGS = 1000
MAX_SEEN = 10_000  # distinct locations / domains remembered
_DRIVE = re.compile(r"^[A-Za-z]:")
TOO_LONG = "\0<location longer than 64 KiB>"  # stands for a location we refuse to read


def _lexical_escape(location: str) -> str | None:
    """Why ``location`` can name a file outside the model directory, judged by text alone."""
    if not location:
        return None
    if location == TOO_LONG:
        return "is too long to check (over 64 KiB)"
    if "\0" in location:
        return "contains a NUL byte"
    if "\\" in location:
        return "contains a backslash"
    if location.startswith("/") or _DRIVE.match(location):
        return "is an absolute path"
    if ".." in location.split("/"):
        return "has a '..' component"
    return None


@dataclass
class _Checker:
    base: str | None  # the model's directory on disk, when there is one

    def check(self, location: str, tensor: str, offset: int) -> Finding | None:
        where = Location(offset=offset)
        why = _lexical_escape(location)
        if why is not None:
            return _escape(location, tensor, f"external data location {why}", where)
        if not location:
            return _suspicious(
                "onnx.external-data-missing", location, tensor, "empty location", where
            )
        if self.base is None:
            return None
        base_real = os.path.realpath(self.base)
        target = os.path.join(self.base, location)
        real = os.path.realpath(target)
        if os.path.commonpath([real, base_real]) != base_real:
            return _escape(location, tensor, "external data resolves outside the model dir", where)
        try:
            info = os.stat(real)
        except (OSError, ValueError):
            return _suspicious(
                "onnx.external-data-missing", location, tensor, "file does not exist", where
            )
        if not stat.S_ISREG(info.st_mode):
            return _suspicious(
                "onnx.external-data-missing", location, tensor, "not a regular file", where
            )
        if real != os.path.normpath(os.path.join(base_real, location)):
            return _suspicious("onnx.external-data-link", location, tensor, "via a symlink", where)
        if info.st_nlink > 1:
            return _suspicious(
                "onnx.external-data-link", location, tensor, "file has several hard links", where
            )
        return None


def _escape(location: str, tensor: str, why: str, where: Location) -> Finding:
    return Finding(
        "onnx.external-data-escape",
        Verdict.DANGEROUS,
        Severity.HIGH,
        f"tensor {tensor!r}: {why}: {location[:200]!r}",
        location[:200],
        where,
    )


def _suspicious(rule: str, location: str, tensor: str, why: str, where: Location) -> Finding:
    message = f"tensor {tensor!r}: external data {location[:200]!r}: {why}"
    return Finding(rule, Verdict.SUSPICIOUS, Severity.MEDIUM, message, location[:200], where)


@dataclass
class _Walk:
    """Checks each external-data location as it is met; collects domain uses (bounded)."""

    reader: ProtoReader
    checker: _Checker
    findings: list[Finding] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # locations already checked
    domains: dict[str, int] = field(default_factory=dict)  # used domain -> first offset
    local_domains: set[str] = field(default_factory=set)  # domains of model-local functions

    def location(self, location: str, tensor: str, offset: int) -> None:
        if location in self.seen or len(self.findings) >= MAX_FINDINGS:
            return
        if len(self.seen) < MAX_SEEN:
            self.seen.add(location)
        finding = self.checker.check(location, tensor, offset)
        if finding is not None:
            self.findings.append(finding)

    def string(self, f: Field, cap: int = MAX_STRING) -> str | None:
        if f.wire_type != LEN or f.value > cap:
            return None
        return self.reader.read_payload(f, cap).decode("utf-8", "surrogateescape")

    def children(
        self, end: int, depth: int, table: dict[int, Callable[[Field, int], None]]
    ) -> None:
        for f in self.reader.fields(end, depth):
            handler = table.get(f.number)
            if handler is not None:
                handler(f, depth + 1)

    def sub(self, kind: Callable[[int, int], None]) -> Callable[[Field, int], None]:
        def handler(f: Field, depth: int) -> None:
            if f.wire_type == LEN:  # protobuf skips a field whose wire type does not match
                kind(f.end, depth)

        return handler

    def model(self, end: int, depth: int) -> None:
        table = {
            7: self.sub(self.graph),
            8: self.sub(self.opset),
            20: self.sub(self.training),
            25: self.sub(self.function),
        }
        self.children(end, depth, table)

    def training(self, end: int, depth: int) -> None:
        self.children(end, depth, {1: self.sub(self.graph), 2: self.sub(self.graph)})

    def graph(self, end: int, depth: int) -> None:
        self.children(
            end,
            depth,
            {1: self.sub(self.node), 5: self.sub(self.tensor), 15: self.sub(self.sparse)},
        )

    def node(self, end: int, depth: int) -> None:
        self.children(end, depth, {5: self.sub(self.attribute), 7: self.domain_use})

    def attribute(self, end: int, depth: int) -> None:
        tensor, graph, sparse = self.sub(self.tensor), self.sub(self.graph), self.sub(self.sparse)
        self.children(
            end, depth, {5: tensor, 6: graph, 10: tensor, 11: graph, 22: sparse, 23: sparse}
        )

    def sparse(self, end: int, depth: int) -> None:
        self.children(end, depth, {1: self.sub(self.tensor), 2: self.sub(self.tensor)})

    def function(self, end: int, depth: int) -> None:
        def local(f: Field, _depth: int) -> None:
            name = self.string(f)
            if name is not None and len(self.local_domains) < MAX_SEEN:
                self.local_domains.add(name)

        table = {
            7: self.sub(self.node),
            9: self.sub(self.opset),
            10: local,
            11: self.sub(self.attribute),
        }
        self.children(end, depth, table)

    def opset(self, end: int, depth: int) -> None:
        self.children(end, depth, {1: self.domain_use})

    def domain_use(self, f: Field, _depth: int) -> None:
        name = self.string(f)
        domain = name if name is not None else "<over-long domain>"
        if len(self.domains) < MAX_SEEN:
            self.domains.setdefault(domain, f.offset)

    def tensor(self, end: int, depth: int) -> None:
        name = "?"
        found: list[tuple[str, int]] = []

        def set_name(f: Field, _depth: int) -> None:
            nonlocal name
            name = self.string(f, MAX_NAME) or name

        def entry(f: Field, entry_depth: int) -> None:
            if f.wire_type != LEN:
                return
            key: str | None = None
            value: str | None = None
            for g in self.reader.fields(f.end, entry_depth):
                if g.number == 1:
                    key = self.string(g)
                elif g.number == 2:
                    value = self.string(g)
                    if value is None and g.wire_type == LEN:
                        value = TOO_LONG
            if key == "location" and value is not None:
                found.append((value, f.offset))

        # data_location (14) is not consulted: every location is checked
        self.children(end, depth, {8: set_name, 13: entry})
        for location, offset in found:
            self.location(location, name, offset)


class OnnxScanner(Scanner):
    """ONNX ModelProto: external-data locations and custom operator domains."""

    format = "onnx"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        on_disk = ctx.depth == 0 and ctx.file_path is not None
        base = (
            os.path.dirname(os.path.abspath(ctx.file_path)) if on_disk and ctx.file_path else None
        )
        walk = _Walk(ProtoReader(stream, size), _Checker(base))
        findings = walk.findings
        try:
            walk.model(size, 0)
        except FormatError as exc:
            findings.append(
                Finding(
                    "onnx.bad-protobuf",
                    Verdict.MALFORMED,
                    Severity.MEDIUM,
                    f"not a valid ONNX protobuf: {exc.message}",
                    None,
                    Location(offset=exc.offset),
                )
            )
        for domain, offset in walk.domains.items():
            if domain in STANDARD_DOMAINS or domain in walk.local_domains:
                continue
            findings.append(
                Finding(
                    "onnx.custom-domain",
                    Verdict.SUSPICIOUS,
                    Severity.MEDIUM,
                    f"operator domain {domain[:200]!r} is not a standard ONNX domain "
                    "(custom operators load native code)",
                    domain[:200],
                    Location(offset=offset),
                )
            )
        return findings


__all__ = ["STANDARD_DOMAINS", "OnnxScanner"]
