"""Content sniffing and the scanner registry: which scanner reads which bytes.

Formats come from content (magic bytes, a trial parse for protocol-0 pickles), never from the
name: a pickle named ``.safetensors`` is still a pickle, and is reported as a masquerade. The
name is used only for formats without a magic number (ONNX) and to refuse unrecognised content
in a file whose name promises a model format.
"""

from __future__ import annotations

import importlib
import io
import os
import re
import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO

from modelseal.formats import FormatError
from modelseal.formats.pickle import PickleReader
from modelseal.scan.interface import MAX_DEPTH, ScanContext, Scanner
from modelseal.scan.model import Finding, Severity, Verdict

HEAD = 4096

# format -> (module, class); imported on first use so a scan loads only what it needs
REGISTRY: dict[str, tuple[str, str]] = {
    "pickle": ("modelseal.scan.pickle", "PickleScanner"),
    "zip": ("modelseal.scan.zip", "ZipScanner"),
    "7z": ("modelseal.scan.sevenzip", "SevenZipScanner"),
    "tar": ("modelseal.scan.tar", "TarScanner"),
    "gzip": ("modelseal.scan.compressed", "GzipScanner"),
    "bzip2": ("modelseal.scan.compressed", "Bzip2Scanner"),
    "xz": ("modelseal.scan.compressed", "XzScanner"),
    "zlib": ("modelseal.scan.compressed", "ZlibScanner"),
    "npy": ("modelseal.scan.numpy", "NpyScanner"),
    "safetensors": ("modelseal.scan.safetensors", "SafetensorsScanner"),
    "gguf": ("modelseal.scan.gguf", "GgufScanner"),
    "hdf5": ("modelseal.scan.keras", "KerasH5Scanner"),
    "onnx": ("modelseal.scan.onnx", "OnnxScanner"),
}

# Formats recognised but with nothing executable to check.
INERT = {"other", "ggml", "torch-storage"}

# Names that promise a model format: unrecognised content under them is malformed.
MODEL_SUFFIXES: tuple[str, ...] = (
    ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".dill", ".bin", ".npy", ".npz",
    ".safetensors", ".gguf", ".h5", ".hdf5", ".keras", ".onnx", ".msgpack",
)  # fmt: skip
PICKLE_SUFFIXES: tuple[str, ...] = (
    ".pkl",
    ".pickle",
    ".pt",
    ".pth",
    ".ckpt",
    ".joblib",
    ".dill",
    ".bin",
)
PICKLE_SUFFIXES += (".dat", ".data", ".p", ".sav", ".model")
_TORCH_STORAGE = re.compile(r"(^|/)(data|\.data)/[^/]+$")

_MAGIC: list[tuple[bytes, int, str]] = [
    (b"PK\x03\x04", 0, "zip"),
    (b"PK\x05\x06", 0, "zip"),
    (b"PK\x07\x08", 0, "zip"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7z"),
    (b"\x1f\x8b", 0, "gzip"),
    (b"BZh", 0, "bzip2"),
    (b"\xfd7zXZ\x00", 0, "xz"),
    (b"\x93NUMPY", 0, "npy"),
    (b"GGUF", 0, "gguf"),
    (b"\x89HDF\r\n\x1a\n", 0, "hdf5"),
    (b"ustar", 257, "tar"),
    (b"lmgg", 0, "ggml"),
    (b"fmgg", 0, "ggml"),
    (b"tjgg", 0, "ggml"),
]
_PICKLE_STARTS = set(b"(c}])NIKJLSVXUTFGMlditp")


def sniff(head: bytes, size: int, name: str) -> str:
    """The format of bytes that start with ``head`` (``"other"`` when none applies)."""
    for magic, offset, fmt in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if size >= 10 and len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"\x80" and head[1:2] and 2 <= head[1] <= 5:
        return "pickle"
    zlib_header = head[:1] == b"\x78" and len(head) > 2 and (head[0] << 8 | head[1]) % 31 == 0
    if zlib_header and _trial_zlib(head):
        return "zlib"
    if head[:1] and head[0] in _PICKLE_STARTS and _trial_pickle(head):
        return "pickle"
    if name.lower().endswith(".onnx"):
        return "onnx"
    return "other"


def _trial_zlib(head: bytes) -> bool:
    """Whether ``head`` starts a zlib stream (joblib's compressed files have no other magic)."""
    try:
        zlib.decompressobj().decompress(head, 64)
    except zlib.error:
        return False
    return True


def _trial_pickle(head: bytes) -> bool:
    """Whether ``head`` parses as protocol 0/1 opcodes up to a STOP or for a good while."""
    reader = PickleReader(io.BytesIO(head), len(head))
    count = 0
    try:
        for count in range(64):
            op = reader.next_op()
            if op.name == "STOP":
                return count > 0
            if reader.at_end():
                return count >= 8
    except FormatError as exc:
        # ran off the end of the sniffed bytes after a few good opcodes: a pickle with a big
        # payload (or a broken one), not text
        return count >= 2 and exc.message.startswith("pickle truncated")
    return True


def _scanner(fmt: str) -> Scanner | None:
    target = REGISTRY.get(fmt)
    if target is None:
        return None
    try:
        module = importlib.import_module(target[0])
    except ModuleNotFoundError:  # a format whose scanner is not built in this install
        return None
    scanner = getattr(module, target[1])()
    assert isinstance(scanner, Scanner)
    return scanner


_CACHE: dict[str, Scanner | None] = {}


def scanner_for(fmt: str) -> Scanner | None:
    if fmt not in _CACHE:
        _CACHE[fmt] = _scanner(fmt)
    return _CACHE[fmt]


class _Prefixed(io.RawIOBase):
    """A forward-only stream: ``head`` (already read) followed by the rest of ``inner``."""

    def __init__(self, head: bytes, inner: BinaryIO) -> None:
        self._head = head
        self._inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                out = self._head + self._inner.read()
                self._head = b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            if len(out) < n:
                out += self._inner.read(n - len(out))
            return out
        return self._inner.read(n)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _peek(stream: BinaryIO, size: int) -> tuple[bytes, BinaryIO]:
    if stream.seekable():
        start = stream.tell()
        head = stream.read(HEAD)
        if size <= len(head):  # the whole thing is in hand: no second read
            return head, io.BytesIO(head[:size])
        stream.seek(start)
        return head, stream
    head = stream.read(HEAD)
    return head, _Prefixed(head, stream)  # type: ignore[return-value]


def _finding(rule: str, verdict: Verdict, severity: Severity, message: str) -> Finding:
    return Finding(rule, verdict, severity, message)


def scan_bytes(stream: BinaryIO, size: int, ctx: ScanContext) -> tuple[str, list[Finding]]:
    """Sniff and scan; returns the detected format and the findings."""
    if ctx.depth > 0 and _TORCH_STORAGE.search(ctx.name):
        return "torch-storage", []  # raw tensor bytes: torch reads them by offset, never parses
    head, stream = _peek(stream, size)
    fmt = sniff(head, size, ctx.name)
    lowered = ctx.name.lower()
    findings: list[Finding] = []
    if fmt in INERT:
        if lowered.endswith(MODEL_SUFFIXES) and size > 0:
            findings.append(
                _finding(
                    "file.unrecognised",
                    Verdict.MALFORMED,
                    Severity.MEDIUM,
                    "content matches no known model format although the name says it is "
                    "one: it cannot be checked",
                )
            )
        return fmt, findings
    if (
        fmt == "pickle"
        and not lowered.endswith(PICKLE_SUFFIXES)
        and "." in os.path.basename(lowered)
    ):
        findings.append(
            _finding(
                "pickle.masquerade",
                Verdict.SUSPICIOUS,
                Severity.HIGH,
                f"a pickle named {os.path.basename(ctx.name)!r}: loaders that trust the "
                "extension will unpickle it",
            )
        )
    scanner = scanner_for(fmt)
    if scanner is None:
        findings.append(
            _finding(
                "file.unsupported",
                Verdict.MALFORMED,
                Severity.MEDIUM,
                f"{fmt} content, but no scanner for it is available",
            )
        )
        return fmt, findings
    findings.extend(scanner.scan(stream, size, ctx))
    return fmt, findings


def scan_member(stream: BinaryIO, size: int, name: str, parent: ScanContext) -> list[Finding]:
    """The :data:`~modelseal.scan.interface.MemberScanner` containers call for each member."""
    if parent.depth + 1 > MAX_DEPTH:
        return [
            _finding(
                "archive.too-deep",
                Verdict.MALFORMED,
                Severity.MEDIUM,
                f"containers nested more than {MAX_DEPTH} deep: not followed",
            ).within(name)
        ]
    ctx = ScanContext(
        display=f"{parent.display}!{name}",
        name=name,
        depth=parent.depth + 1,
        release_dir=parent.release_dir,
        file_path=parent.file_path,
        scan_member=scan_member,
    )
    _, findings = scan_bytes(stream, size, ctx)
    return [f.within(name) for f in findings]


def root_context(display: str, file_path: str, release_dir: str | None) -> ScanContext:
    return ScanContext(
        display=display,
        name=os.path.basename(file_path),
        depth=0,
        release_dir=release_dir,
        file_path=file_path,
        scan_member=scan_member,
    )


Progress = Callable[[str], None]
