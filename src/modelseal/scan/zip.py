"""Zip archives (PyTorch, npz, Keras v3, plain zip), read from the central directory.

Every member goes back to the dispatcher through :meth:`ScanContext.member`, which sniffs its
content: a pickle named ``data.txt`` is scanned as a pickle (CVE-2025-1889). Nothing is ever
extracted to disk. The zip reader is our own (:mod:`modelseal.formats.zip`) so that the archive
is read the way PyTorch reads it: CRC ignored (CVE-2025-10156), local names not trusted
(CVE-2025-1944), odd flag bits tolerated (CVE-2025-1945), and one unreadable member does not hide
the others (modelscan #354). A member that fails to read becomes a finding, and the scan goes on
with the next member; what the member scanner found before the failure is kept.

Findings (research notes §2.2 items 10, 14, 17):

=========================  ==========  ====================================================
rule                       verdict     why
=========================  ==========  ====================================================
``zip.unsafe-path``        dangerous   absolute, ``..``, backslash or NUL member name
``zip.name-mismatch``      suspicious  local header name differs from the central one
``zip.duplicate-name``     suspicious  two central entries with the same name
``zip.encrypted``          malformed   encrypted entry: its contents cannot be checked
``zip.encrypted-flag``     suspicious  encryption flag on data that reads as plain (0x1 trick)
``zip.bad-entry``          malformed   an entry that cannot be read
``zip.bad-archive``        malformed   no readable central directory
``zip.count-mismatch``     suspicious  end record entry count differs from the directory
``zip.overlap``            suspicious  entries share bytes (overlapping-entry zip bombs)
``zip.bomb``               dangerous   inflates beyond its declared size or an absurd ratio
``zip.torchscript-code``   suspicious  TorchScript ``code/`` source (dangerous with exec-like
                                       calls: CVE-2025-32434)
``archive.too-deep``       malformed   containers nested deeper than ``MAX_DEPTH``
=========================  ==========  ====================================================

A Keras v3 ``.keras`` zip also gets its ``config.json`` checked by
:func:`modelseal.scan.keras.check_keras_config`.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats import zip as zipfmt
from modelseal.scan._members import READ_ERRORS, deliver, finding, random_access, too_deep
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Verdict

MAX_CODE_BYTES = 16 << 20  # a TorchScript source file read for the pattern check
MAX_CODE_FILES = 1000
MAX_KERAS_CONFIG = 64 << 20

# TorchScript source that calls out of the sandbox TorchScript is meant to be.
TORCHSCRIPT_DANGER: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("os.system", re.compile(rb"\bos\s*\.\s*system\b")),
    ("os.popen", re.compile(rb"\bos\s*\.\s*popen\b")),
    ("subprocess", re.compile(rb"\bsubprocess\b")),
    ("eval", re.compile(rb"\beval\s*\(")),
    ("exec", re.compile(rb"\bexec\s*\(")),
    ("__import__", re.compile(rb"\b__import__\b")),
    ("__builtins__", re.compile(rb"\b__builtins__\b")),
    ("open", re.compile(rb"\bopen\s*\(")),
    ("socket", re.compile(rb"\bsocket\b")),
)
_TORCHSCRIPT_CODE = re.compile(r"(?:^|/)code/(?:.+/)?[^/]+\.py$")
_TORCHSCRIPT_CONSTANTS = re.compile(r"(?:^|/)constants\.pkl$")


class ZipScanner(Scanner):
    """Zip archives (PyTorch, npz, Keras v3, plain zip), read from the central directory."""

    format = "zip"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        if deep := too_deep(ctx):
            return deep
        try:
            file = random_access(stream, size)
        except READ_ERRORS as exc:
            return [finding("zip.bad-archive", Verdict.MALFORMED, str(exc))]
        return _ZipScan(file, size, ctx).run()


class _ZipScan:
    def __init__(self, file: BinaryIO, size: int, ctx: ScanContext) -> None:
        self.file, self.size, self.ctx = file, size, ctx
        self.findings: list[Finding] = []
        self.spans: list[tuple[int, int, zipfmt.ZipEntry]] = []
        self.inflated = 0  # bytes declared by the compressed entries opened so far
        self.inflate_budget = max(zipfmt.BOMB_MIN_SIZE, zipfmt.BOMB_RATIO * size)

    def add(
        self,
        rule: str,
        verdict: Verdict,
        message: str,
        entry: zipfmt.ZipEntry | None = None,
        *,
        symbol: str | None = None,
        offset: int | None = None,
    ) -> None:
        member, index = (entry.name, entry.index) if entry is not None else (None, None)
        self.findings.append(
            finding(
                rule, verdict, message, symbol=symbol, member=member, offset=offset, index=index
            )
        )

    def run(self) -> list[Finding]:
        entries: list[zipfmt.ZipEntry] = []
        try:
            directory = zipfmt.find_central_directory(self.file, self.size)
            for entry in zipfmt.iter_entries(self.file, self.size, directory):
                entries.append(entry)
        except FormatError as exc:
            self.add("zip.bad-archive", Verdict.MALFORMED, str(exc), offset=exc.offset)
        else:
            if directory.count not in (len(entries), len(entries) & 0xFFFF):
                self.add(
                    "zip.count-mismatch",
                    Verdict.SUSPICIOUS,
                    f"end record declares {directory.count} entries, directory holds "
                    f"{len(entries)}",
                )
        self._check_names(entries)
        for entry in entries:
            self._entry(entry)
        self._check_overlaps()
        self._check_torchscript(entries)
        self._check_keras(entries)
        return self.findings

    def _check_names(self, entries: list[zipfmt.ZipEntry]) -> None:
        seen: set[bytes] = set()
        for entry in entries:
            if (why := zipfmt.name_problem(entry.name)) is not None:
                self.add(
                    "zip.unsafe-path",
                    Verdict.DANGEROUS,
                    f"member name {why}: extraction could write outside its directory",
                    entry,
                    symbol=entry.name,
                )
            if entry.raw_name in seen:
                self.add(
                    "zip.duplicate-name",
                    Verdict.SUSPICIOUS,
                    "member name appears more than once: loaders disagree on which one wins",
                    entry,
                    symbol=entry.name,
                )
            seen.add(entry.raw_name)

    def _entry(self, entry: zipfmt.ZipEntry) -> None:
        try:
            local = zipfmt.read_local_header(self.file, self.size, entry)
        except FormatError as exc:
            self.add("zip.bad-entry", Verdict.MALFORMED, f"entry cannot be read: {exc}", entry)
            return
        self.spans.append((entry.header_offset, local.data_offset + entry.compressed_size, entry))
        if local.name_differs(entry):
            local_name = zipfmt.decode_name(local.raw_name, local.flags)
            self.add(
                "zip.name-mismatch",
                Verdict.SUSPICIOUS,
                f"local header names {local_name!r}: stdlib zipfile refuses, PyTorch loads it",
                entry,
                symbol=local_name,
            )
        if entry.is_dir:
            return
        if entry.method != zipfmt.STORED:
            self.inflated += entry.uncompressed_size
            if self.inflated > self.inflate_budget:
                self.add(
                    "zip.bomb",
                    Verdict.DANGEROUS,
                    f"entries inflate to more than {self.inflate_budget} bytes in total",
                    entry,
                )
                return
        if entry.encrypted:
            self._flagged(entry)
            return
        try:
            stream = zipfmt.open_entry(self.file, entry, size=self.size)
        except zipfmt.ZipBombError as exc:
            self.add("zip.bomb", Verdict.DANGEROUS, str(exc), entry)
            return
        except FormatError as exc:
            self.add("zip.bad-entry", Verdict.MALFORMED, f"entry cannot be read: {exc}", entry)
            return
        self.findings += deliver(
            self.ctx, stream, entry.uncompressed_size, entry.name, "zip.bad-entry", entry.index
        )

    def _flagged(self, entry: zipfmt.ZipEntry) -> None:
        """An entry with a flag bit PyTorch treats as encryption: read it as plain if it is."""
        try:
            data = zipfmt.read_entry(self.file, entry, size=self.size, allow_encrypted=True)
        except zipfmt.ZipBombError as exc:
            self.add("zip.bomb", Verdict.DANGEROUS, str(exc), entry)
            return
        except FormatError:
            self.add(
                "zip.encrypted",
                Verdict.MALFORMED,
                f"entry is encrypted (flags {entry.flags:#x}): its contents cannot be checked",
                entry,
            )
            return
        self.add(
            "zip.encrypted-flag",
            Verdict.SUSPICIOUS,
            f"flag bits {entry.flags:#x} mark the entry encrypted or patched, yet its data "
            "reads as plain: PyTorch refuses it, older loaders ignore the flag and load it",
            entry,
        )
        self.findings += deliver(
            self.ctx, io.BytesIO(data), len(data), entry.name, "zip.bad-entry", entry.index
        )

    def _check_overlaps(self) -> None:
        self.spans.sort(key=lambda span: (span[0], span[1]))
        reach = 0
        for start, end, entry in self.spans:
            if start < reach:
                self.add(
                    "zip.overlap",
                    Verdict.SUSPICIOUS,
                    "entry data overlaps another entry (a zip-bomb construction)",
                    entry,
                    offset=start,
                )
                return
            reach = max(reach, end)

    def _readable(self, entry: zipfmt.ZipEntry, cap: int) -> bytes | None:
        try:
            return zipfmt.read_entry(self.file, entry, size=self.size, cap=cap)
        except FormatError:
            return None  # already reported while scanning the entry

    def _check_torchscript(self, entries: list[zipfmt.ZipEntry]) -> None:
        """TorchScript archives carry Python source that torch.jit.load compiles (§2.2 item 14)."""
        code = [e for e in entries if _TORCHSCRIPT_CODE.search(e.name) and not e.is_dir]
        if not code:
            return
        constants = any(_TORCHSCRIPT_CONSTANTS.search(e.name) for e in entries)
        self.add(
            "zip.torchscript-code",
            Verdict.SUSPICIOUS,
            f"TorchScript archive ({len(code)} code files"
            f"{', constants.pkl' if constants else ''}): torch.jit.load runs this code",
            code[0],
            symbol=code[0].name,
        )
        for entry in code[:MAX_CODE_FILES]:
            text = self._readable(entry, MAX_CODE_BYTES)
            if text is None:
                continue
            for symbol, pattern in TORCHSCRIPT_DANGER:
                if (match := pattern.search(text)) is not None:
                    self.add(
                        "zip.torchscript-code",
                        Verdict.DANGEROUS,
                        f"TorchScript code calls {symbol}",
                        entry,
                        symbol=symbol,
                        offset=match.start(),
                    )

    def _check_keras(self, entries: list[zipfmt.ZipEntry]) -> None:
        """A Keras v3 ``.keras`` zip: root config.json plus metadata.json or model.weights.h5."""
        names = {e.name for e in entries}
        if "config.json" not in names or not names & {"metadata.json", "model.weights.h5"}:
            return
        try:
            from modelseal.scan.keras import check_keras_config
        except ImportError:  # pragma: no cover - the Keras checks ship with this package
            return
        for entry in entries:
            if entry.name == "config.json":
                data = self._readable(entry, MAX_KERAS_CONFIG)
                if data is not None:
                    self.findings += check_keras_config(data, entry.name)


__all__ = ["TORCHSCRIPT_DANGER", "ZipScanner"]
