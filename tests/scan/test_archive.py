"""Container scanners and the zip reader: they see what PyTorch sees, and never raise."""

from __future__ import annotations

import bz2
import functools
import gzip
import importlib.util
import io
import lzma
import pickle
import struct
import sys
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.formats import FormatError
from modelseal.formats import zip as zipfmt
from modelseal.scan.archive import scanners
from modelseal.scan.compressed import CompressedScanner, inner_name
from modelseal.scan.interface import MAX_DEPTH, ScanContext, Scanner
from modelseal.scan.model import Finding, Verdict, verdict_of
from modelseal.scan.sevenzip import SevenZipScanner
from modelseal.scan.tar import TarScanner
from modelseal.scan.zip import ZipScanner

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
PICKLESCAN = Path("/work/shared/testdata/picklescan")


class Payload:
    """Pickled by the tests only (never loaded): its pickle names os.system."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("true",))


PAYLOAD = pickle.dumps(Payload(), protocol=4)  # starts with b"\x80\x04"


@dataclass
class Recorder:
    """A fake dispatcher: records every member's bytes; recurses into zips and tars."""

    members: list[tuple[str, bytes]] = field(default_factory=list)
    chunk: int = 1024

    def __call__(self, stream: BinaryIO, size: int, name: str, ctx: ScanContext) -> list[Finding]:
        parts = []
        left = size
        while left > 0:
            part = stream.read(min(self.chunk, left))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        data = b"".join(parts)
        self.members.append((name, data))
        child = ScanContext(f"{ctx.display}!{name}", name, ctx.depth + 1, None, None, self)
        inner: Scanner | None = None
        if data[:4] == zipfmt.SIG_LOCAL:
            inner = ZipScanner()
        elif data[257:262] == b"ustar":
            inner = TarScanner()
        if inner is None:
            return []
        return [f.within(name) for f in inner.scan(io.BytesIO(data), len(data), child)]

    def data(self, name: str) -> bytes:
        found = [data for member, data in self.members if member == name]
        assert found, f"{name} not delivered; got {[m for m, _ in self.members]}"
        return found[-1]


def ctx_for(recorder: Recorder, name: str = "x", depth: int = 0) -> ScanContext:
    return ScanContext(name, name, depth, None, None, recorder)


def scan(scanner: Scanner, data: bytes, name: str = "x") -> tuple[list[Finding], Recorder]:
    recorder = Recorder()
    findings = scanner.scan(io.BytesIO(data), len(data), ctx_for(recorder, name))
    return findings, recorder


def rules(findings: list[Finding]) -> dict[str, Verdict]:
    return {f.rule: f.verdict for f in findings}


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def central_offset(data: bytes) -> int:
    return data.rindex(zipfmt.SIG_CENTRAL)  # single-entry test zips


def set_u16(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<H", value) + data[offset + 2 :]


def set_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4 :]


# ------------------------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_reader_matches_zipfile_for_every_method(method: int) -> None:
    members = {"a/data.pkl": pickle.dumps(list(range(5000))), "b.txt": b"hello " * 3000}
    data = make_zip(members, method)
    file = io.BytesIO(data)
    entries = list(zipfmt.iter_entries(file, len(data)))
    assert [e.name for e in entries] == list(members)
    assert all(e.method == method for e in entries)
    for entry in entries:
        assert zipfmt.read_entry(file, entry) == members[entry.name]


def test_reader_reads_in_small_pieces_and_seeks_stored_entries() -> None:
    blob = bytes(range(256)) * 40
    data = make_zip({"blob": blob, "z": blob}, zipfile.ZIP_STORED)
    file = io.BytesIO(data)
    entry = next(zipfmt.iter_entries(file, len(data)))
    stream = zipfmt.open_entry(file, entry)
    assert stream.seekable()
    assert stream.read(3) == blob[:3]
    stream.seek(1000)
    assert stream.read(5) == blob[1000:1005]
    assert stream.tell() == 1005
    deflated = make_zip({"blob": blob}, zipfile.ZIP_DEFLATED)
    dfile = io.BytesIO(deflated)
    stream = zipfmt.open_entry(dfile, next(zipfmt.iter_entries(dfile, len(deflated))))
    assert not stream.seekable()
    assert b"".join(iter(lambda: stream.read(7), b"")) == blob


def test_zip64_records_and_extra_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    members = {"data.pkl": PAYLOAD, "big.bin": b"\0" * 5000}
    buffer = io.BytesIO()
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 16)  # every size and offset goes to zip64
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, blob in members.items():
            with archive.open(name, "w", force_zip64=True) as out:
                out.write(blob)
    data = buffer.getvalue()
    assert zipfmt.SIG_EOCD64 in data
    assert zipfmt.SIG_EOCD64_LOCATOR in data
    file = io.BytesIO(data)
    directory = zipfmt.find_central_directory(file, len(data))
    assert directory.zip64
    entries = list(zipfmt.iter_entries(file, len(data)))
    raw = data[directory.offset : directory.offset + directory.size]
    assert b"\xff\xff\xff\xff" in raw  # the central sizes really were in the zip64 extra
    assert {e.name: zipfmt.read_entry(file, e) for e in entries} == members
    findings, recorder = scan(ZipScanner(), data)
    assert findings == []
    assert recorder.data("data.pkl") == PAYLOAD


def test_prepended_stub_is_followed() -> None:
    data = b"#!/bin/sh\nexit 0\n" + make_zip({"data.pkl": PAYLOAD})
    file = io.BytesIO(data)
    directory = zipfmt.find_central_directory(file, len(data))
    assert directory.shift == 17
    (entry,) = zipfmt.iter_entries(file, len(data))
    assert zipfmt.read_entry(file, entry) == PAYLOAD


@pytest.mark.parametrize(
    ("name", "unsafe"),
    [
        ("archive/data.pkl", False),
        ("a..b/c", False),
        ("../evil", True),
        ("a/../../evil", True),
        ("/abs", True),
        ("C:/x", True),
        ("a\\b", True),
        ("..\\x", True),
        ("a\x00b", True),
    ],
)
def test_name_problem(name: str, unsafe: bool) -> None:
    assert (zipfmt.name_problem(name) is not None) is unsafe


def test_names_decode_as_cp437_or_utf8() -> None:
    assert zipfmt.decode_name("é".encode(), zipfmt.FLAG_UTF8) == "é"
    assert zipfmt.decode_name(b"\x82", 0) == "é"  # cp437


def test_nested_buffer_is_capped() -> None:
    with pytest.raises(FormatError, match="cap"):
        zipfmt.buffer_stream(io.BytesIO(b"x"), zipfmt.MAX_IN_MEMORY + 1)
    with pytest.raises(FormatError, match="truncated"):
        zipfmt.buffer_stream(io.BytesIO(b"abc"), 10)


# -------------------------------------------------------------------------- loader tricks


def test_pickle_named_data_txt_reaches_the_dispatcher() -> None:
    body = pickle.dumps(Payload())
    findings, recorder = scan(ZipScanner(), make_zip({"archive/data.txt": body}))
    assert findings == []
    assert recorder.members == [("archive/data.txt", body)]


def test_bad_crc_is_ignored_like_pytorch() -> None:
    data = bytearray(make_zip({"data.pkl": PAYLOAD + b"padding"}))
    where = data.index(b"padding")
    data[where] ^= 0xFF  # corrupt one stored data byte; the CRC is left as it was
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(bytes(data))).read("data.pkl")
    findings, recorder = scan(ZipScanner(), bytes(data))
    assert findings == []
    assert recorder.data("data.pkl") == bytes(data[where - len(PAYLOAD) : where + 7])


def test_local_central_name_mismatch_is_reported_and_scanned() -> None:
    data = make_zip({"data.pkl": PAYLOAD})
    data = data.replace(b"data.pkl", b"datp.xyz", 1)  # the local header name only
    file = io.BytesIO(data)
    (entry,) = zipfmt.iter_entries(file, len(data))
    assert zipfmt.read_local_header(file, len(data), entry).name_differs(entry)
    assert zipfmt.open_entry(file, entry).name_differs
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.name-mismatch": Verdict.SUSPICIOUS}
    assert findings[0].symbol == "datp.xyz"
    assert recorder.data("data.pkl") == PAYLOAD


@pytest.mark.parametrize("flag", [0x2, 0x4, 0x8, 0x800, 0x2 | 0x8 | 0x800])
def test_harmless_flag_bits_are_tolerated(flag: int) -> None:
    data = make_zip({"data.pkl": PAYLOAD})
    data = set_u16(set_u16(data, 6, flag), central_offset(data) + 8, flag)
    findings, recorder = scan(ZipScanner(), data)
    assert findings == []
    assert recorder.data("data.pkl") == PAYLOAD


@pytest.mark.parametrize("flag", [0x1, 0x20, 0x40])
def test_encryption_flag_on_plain_data_is_scanned(flag: int) -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        data = make_zip({"data.pkl": PAYLOAD}, method)
        data = set_u16(set_u16(data, 6, flag), central_offset(data) + 8, flag)
        findings, recorder = scan(ZipScanner(), data)
        assert rules(findings) == {"zip.encrypted-flag": Verdict.SUSPICIOUS}
        assert recorder.data("data.pkl") == PAYLOAD


def test_really_encrypted_entry_is_malformed_and_not_delivered() -> None:
    data = bytearray(make_zip({"secret.bin": b"attack at dawn " * 100}, zipfile.ZIP_DEFLATED))
    start = 30 + len("secret.bin")
    csize = struct.unpack_from("<I", data, 18)[0]
    for i in range(start, start + csize):  # "encrypt": scramble the compressed bytes
        data[i] = (data[i] * 7 + 13) & 0xFF
    data = bytearray(set_u16(set_u16(bytes(data), 6, 1), central_offset(bytes(data)) + 8, 1))
    findings, recorder = scan(ZipScanner(), bytes(data))
    assert rules(findings) == {"zip.encrypted": Verdict.MALFORMED}
    assert recorder.members == []
    file = io.BytesIO(bytes(data))
    (entry,) = zipfmt.iter_entries(file, len(data))
    with pytest.raises(FormatError, match="encrypted"):
        zipfmt.open_entry(file, entry)


def test_unreadable_first_member_does_not_hide_the_rest() -> None:
    data = make_zip({"junk.bin": b"j" * 100, "data.pkl": PAYLOAD, "z.bin": b"zz"})
    data = b"XXXX" + data[4:]  # break the first local header signature
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.bad-entry": Verdict.MALFORMED}
    assert findings[0].location.member == "junk.bin"
    assert recorder.data("data.pkl") == PAYLOAD
    assert recorder.data("z.bin") == b"zz"


def test_unsupported_method_is_a_bad_entry() -> None:
    data = make_zip({"a.bin": b"a", "data.pkl": PAYLOAD})
    data = set_u16(set_u16(data, 8, 99), data.index(zipfmt.SIG_CENTRAL) + 10, 99)
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.bad-entry": Verdict.MALFORMED}
    assert "method 99" in findings[0].message
    assert recorder.data("data.pkl") == PAYLOAD


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compressed_members_are_delivered(method: int) -> None:
    body = PAYLOAD + bytes(range(256)) * 100
    findings, recorder = scan(ZipScanner(), make_zip({"m/data.pkl": body, "v": b"3"}, method))
    assert findings == []
    assert recorder.data("m/data.pkl") == body
    assert recorder.data("v") == b"3"


def test_damaged_member_keeps_what_came_before() -> None:
    body = PAYLOAD + bytes(range(256)) * 100
    data = make_zip({"data.pkl": body}, zipfile.ZIP_DEFLATED)
    data = set_u32(data, central_offset(data) + 24, len(body) + 5000)  # declares more than it has
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.bad-entry": Verdict.MALFORMED}
    assert recorder.data("data.pkl") == body


def test_duplicate_names() -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("data.pkl", b"benign")
            archive.writestr("data.pkl", PAYLOAD)
    findings, recorder = scan(ZipScanner(), buffer.getvalue())
    assert rules(findings) == {"zip.duplicate-name": Verdict.SUSPICIOUS}
    assert [data for name, data in recorder.members] == [b"benign", PAYLOAD]


@pytest.mark.parametrize("name", ["../evil.pkl", "/abs.pkl", "a\\..\\b.pkl"])
def test_unsafe_names_are_dangerous_and_still_scanned(name: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), PAYLOAD)
    data = buffer.getvalue().replace(b"a/../b.pkl", b"a\\..\\b.pkl")  # zipfile turns \ into /
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.unsafe-path": Verdict.DANGEROUS}
    assert findings[0].symbol == name
    assert recorder.data(name) == PAYLOAD


def test_nested_zip_is_scanned_and_depth_is_capped() -> None:
    inner = make_zip({"data.pkl": PAYLOAD}, zipfile.ZIP_DEFLATED)
    findings, recorder = scan(ZipScanner(), make_zip({"inner.zip": inner}, zipfile.ZIP_DEFLATED))
    assert findings == []
    assert recorder.data("data.pkl") == PAYLOAD
    nested = inner
    for level in range(MAX_DEPTH + 1):
        nested = make_zip({f"level{level}.zip": nested}, zipfile.ZIP_DEFLATED)
    findings, recorder = scan(ZipScanner(), nested)
    assert rules(findings) == {"archive.too-deep": Verdict.MALFORMED}
    assert findings[0].location.member.count("!") == MAX_DEPTH - 1
    assert "data.pkl" not in [name for name, _ in recorder.members]


def test_deflate_inflating_beyond_its_declared_size_is_a_bomb() -> None:
    data = make_zip({"bomb.bin": b"\0" * (4 << 20)}, zipfile.ZIP_DEFLATED)
    data = set_u32(data, central_offset(data) + 24, 1000)  # declares 1000 bytes
    file = io.BytesIO(data)
    (entry,) = zipfmt.iter_entries(file, len(data))
    stream = zipfmt.open_entry(file, entry)
    assert stream.read(5000) == b"\0" * 1000  # never more than declared
    with pytest.raises(zipfmt.ZipBombError):
        stream.read(1)
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.bomb": Verdict.DANGEROUS}
    assert recorder.data("bomb.bin") == b"\0" * 1000


def test_declared_ratio_bomb_is_refused_before_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipfmt, "BOMB_MIN_SIZE", 1 << 20)
    data = make_zip({"bomb.bin": b"\0" * (2 << 20), "data.pkl": PAYLOAD}, zipfile.ZIP_DEFLATED)
    file = io.BytesIO(data)
    bomb = next(zipfmt.iter_entries(file, len(data)))
    with pytest.raises(zipfmt.ZipBombError):
        zipfmt.open_entry(file, bomb)
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.bomb": Verdict.DANGEROUS}
    assert [name for name, _ in recorder.members] == ["data.pkl"]


def test_overlapping_entries_are_reported() -> None:
    data = make_zip({"a.bin": b"x" * 100})
    cd = central_offset(data)
    record = data[cd : data.index(zipfmt.SIG_EOCD)]
    twin = record.replace(b"a.bin", b"b.bin")
    eocd = data.index(zipfmt.SIG_EOCD)
    end = bytearray(data[eocd:])
    struct.pack_into("<HHI", end, 8, 2, 2, len(record) * 2)
    patched = data[:cd] + record + twin + bytes(end)
    findings, recorder = scan(ZipScanner(), patched)
    assert rules(findings) == {
        "zip.overlap": Verdict.SUSPICIOUS,
        "zip.name-mismatch": Verdict.SUSPICIOUS,  # b.bin's local header says a.bin
    }
    assert [name for name, _ in recorder.members] == ["a.bin", "b.bin"]


def test_truncated_archive_is_malformed() -> None:
    data = make_zip({"data.pkl": PAYLOAD, "b": b"b" * 500})
    for cut in (len(data) // 2, len(data) - 5, 10, 0):
        findings, _ = scan(ZipScanner(), data[:cut])
        assert rules(findings) == {"zip.bad-archive": Verdict.MALFORMED}, cut


def test_count_mismatch_is_suspicious() -> None:
    data = make_zip({"a": b"a", "b": b"b"})
    eocd = data.index(zipfmt.SIG_EOCD)
    data = set_u16(set_u16(data, eocd + 8, 1), eocd + 10, 1)
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.count-mismatch": Verdict.SUSPICIOUS}
    assert [name for name, _ in recorder.members] == ["a", "b"]


def test_torchscript_archive_is_suspicious_or_dangerous() -> None:
    benign = {
        "archive/code/__torch__/m.py": b"def forward(self, x):\n    return torch.relu(x)\n",
        "archive/constants.pkl": pickle.dumps(()),
        "archive/data.pkl": pickle.dumps({}),
    }
    findings, recorder = scan(ZipScanner(), make_zip(benign, zipfile.ZIP_DEFLATED))
    assert rules(findings) == {"zip.torchscript-code": Verdict.SUSPICIOUS}
    assert verdict_of(findings) is Verdict.SUSPICIOUS
    assert len(recorder.members) == 3
    evil = dict(benign)
    evil["archive/code/__torch__/m.py"] = b"def forward(self, x):\n    os.system('id')\n"
    findings, _ = scan(ZipScanner(), make_zip(evil, zipfile.ZIP_DEFLATED))
    assert verdict_of(findings) is Verdict.DANGEROUS
    danger = [f for f in findings if f.verdict is Verdict.DANGEROUS]
    assert [f.symbol for f in danger] == ["os.system"]
    assert danger[0].location.member == "archive/code/__torch__/m.py"
    assert danger[0].location.offset == evil["archive/code/__torch__/m.py"].index(b"os.system")


def test_plain_python_file_outside_code_is_not_torchscript() -> None:
    findings, _ = scan(ZipScanner(), make_zip({"src/tool.py": b"import os\nos.system('x')\n"}))
    assert findings == []


@pytest.mark.skipif(
    importlib.util.find_spec("modelseal.scan.keras") is None,
    reason="modelseal.scan.keras (check_keras_config) is not written yet",
)
def test_keras_v3_config_is_checked() -> None:
    lambda_layer = (
        b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda",'
        b' "config": {"function": {"class_name": "__lambda__", "config": {"code": "AA=="}}}}]}}'
    )
    keras = {"config.json": lambda_layer, "metadata.json": b"{}", "model.weights.h5": b""}
    findings, recorder = scan(ZipScanner(), make_zip(keras, zipfile.ZIP_DEFLATED))
    assert verdict_of(findings) is Verdict.DANGEROUS
    assert any(f.rule.startswith("keras.") for f in findings)
    assert recorder.data("config.json") == lambda_layer
    plain = {"config.json": lambda_layer}  # not a .keras layout: left to the dispatcher
    findings, _ = scan(ZipScanner(), make_zip(plain))
    assert findings == []


# --------------------------------------------------------------------- 7z, tar, compressed


def test_sevenzip_members_are_delivered() -> None:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writestr(PAYLOAD, "model/data.pkl")
        archive.writestr(b"hello", "readme.txt")
    data = buffer.getvalue()
    findings, recorder = scan(SevenZipScanner(), data)
    assert findings == []
    assert recorder.data("model/data.pkl") == PAYLOAD
    assert recorder.data("readme.txt") == b"hello"
    findings, _ = scan(SevenZipScanner(), data[: len(data) // 2])
    assert rules(findings) == {"7z.bad-archive": Verdict.MALFORMED}


def test_sevenzip_unsafe_name_is_dangerous() -> None:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.set_encoded_header_mode(False)
        archive.writestr(b"x", "evil_.pkl")
        archive.writestr(PAYLOAD, "data.pkl")
    data = bytearray(buffer.getvalue())
    old, new = "evil_.pkl".encode("utf-16-le"), "../e1.pkl".encode("utf-16-le")
    data[data.index(old) : data.index(old) + len(old)] = new
    offset, length = struct.unpack_from("<QQ", data, 12)  # fix the 7z header CRCs
    struct.pack_into("<I", data, 28, zlib.crc32(data[32 + offset : 32 + offset + length]))
    struct.pack_into("<I", data, 8, zlib.crc32(data[12:32]))
    findings, recorder = scan(SevenZipScanner(), bytes(data))
    assert rules(findings) == {"7z.unsafe-path": Verdict.DANGEROUS}
    assert findings[0].symbol == "../e1.pkl"
    assert recorder.members == [("data.pkl", PAYLOAD)]


def make_tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_tar_members_are_delivered() -> None:
    findings, recorder = scan(TarScanner(), make_tar({"a/data.pkl": PAYLOAD, "b.txt": b"b"}))
    assert findings == []
    assert recorder.members == [("a/data.pkl", PAYLOAD), ("b.txt", b"b")]


def test_tar_unsafe_names_and_links() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../evil.pkl")
        info.size = len(PAYLOAD)
        archive.addfile(info, io.BytesIO(PAYLOAD))
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    findings, recorder = scan(TarScanner(), buffer.getvalue())
    assert [(f.rule, f.symbol) for f in findings] == [
        ("tar.unsafe-path", "../evil.pkl"),
        ("tar.unsafe-path", "/etc/passwd"),
    ]
    assert verdict_of(findings) is Verdict.DANGEROUS
    assert recorder.members == [("../evil.pkl", PAYLOAD)]


def test_tar_members_after_end_marker_are_seen() -> None:
    first = make_tar({"a.txt": b"a"})
    hidden = make_tar({"data.pkl": PAYLOAD})
    _, recorder = scan(TarScanner(), first + hidden)
    assert recorder.data("data.pkl") == PAYLOAD


def test_truncated_tar_is_malformed() -> None:
    data = make_tar({"data.pkl": PAYLOAD * 100})
    findings, recorder = scan(TarScanner(), data[:2000])
    assert rules(findings) == {
        "tar.bad-entry": Verdict.MALFORMED,  # the member is cut short
        "tar.bad-archive": Verdict.MALFORMED,  # and so is the archive
    }
    assert [name for name, _ in recorder.members] == ["data.pkl"]


@pytest.mark.parametrize(
    ("fmt", "compress", "name"),
    [
        ("gzip", gzip.compress, "model.tar.gz"),
        ("bzip2", bz2.compress, "model.tar.bz2"),
        ("xz", lzma.compress, "model.tar.xz"),
    ],
)
def test_compressed_tar_reaches_the_dispatcher(
    fmt: str, compress: Callable[[bytes], bytes], name: str
) -> None:
    tar = make_tar({"m/data.pkl": PAYLOAD})
    findings, recorder = scan(CompressedScanner(fmt), compress(tar), name)
    assert findings == []
    assert recorder.members[0] == ("model.tar", tar)
    assert recorder.data("m/data.pkl") == PAYLOAD


def test_gzip_concatenated_members_and_padding() -> None:
    data = gzip.compress(PAYLOAD[:10]) + gzip.compress(PAYLOAD[10:]) + b"\0" * 8
    findings, recorder = scan(CompressedScanner("gzip"), data, "data.pkl.gz")
    assert findings == []
    assert recorder.members == [("data.pkl", PAYLOAD)]


def test_gzip_damage_after_the_payload_keeps_the_payload() -> None:
    data = gzip.compress(PAYLOAD) + b"garbage!"
    findings, recorder = scan(CompressedScanner("gzip"), data, "x.gz")
    assert rules(findings) == {"gzip.bad-stream": Verdict.MALFORMED}
    assert recorder.data("x") == PAYLOAD
    findings, recorder = scan(CompressedScanner("xz"), lzma.compress(PAYLOAD * 50)[:-30], "x.xz")
    assert rules(findings) == {"xz.bad-stream": Verdict.MALFORMED}
    assert recorder.data("x").startswith(PAYLOAD)


def test_compressed_bomb_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipfmt, "BOMB_MIN_SIZE", 1 << 20)
    monkeypatch.setattr(zipfmt, "BOMB_RATIO", 10)
    data = gzip.compress(PAYLOAD + b"\0" * (8 << 20))
    findings, recorder = scan(CompressedScanner("gzip"), data, "x.gz")
    assert rules(findings) == {"gzip.bomb": Verdict.DANGEROUS}
    delivered = recorder.data("x")
    assert delivered.startswith(PAYLOAD)
    assert len(delivered) <= 1 << 20


def test_non_seekable_input_is_buffered() -> None:
    class Forward(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            data = self._inner.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

    for scanner, data in (
        (ZipScanner(), make_zip({"data.pkl": PAYLOAD}, zipfile.ZIP_DEFLATED)),
        (CompressedScanner("gzip"), gzip.compress(PAYLOAD)),
        (TarScanner(), make_tar({"data.pkl": PAYLOAD})),
    ):
        recorder = Recorder()
        stream = io.BufferedReader(Forward(data))
        assert scanner.scan(stream, len(data), ctx_for(recorder, "data.pkl.gz")) == []
        assert recorder.data("data.pkl") == PAYLOAD


def test_inner_name_and_registry() -> None:
    assert inner_name("dir/model.pt.gz", "gzip") == "model.pt"
    assert inner_name("model.tgz", "gzip") == "model.tar"
    assert inner_name("x.xz", "xz") == "x"
    assert inner_name("blob", "bzip2") == "blob"
    assert inner_name("", "gzip") == "content"
    assert [s.format for s in scanners()] == ["zip", "7z", "tar", "gzip", "bzip2", "xz"]
    with pytest.raises(ValueError, match="unknown"):
        CompressedScanner("zstd")


def test_every_container_stops_at_max_depth() -> None:
    for scanner in scanners():
        recorder = Recorder()
        findings = scanner.scan(io.BytesIO(b""), 0, ctx_for(recorder, depth=MAX_DEPTH))
        assert rules(findings) == {"archive.too-deep": Verdict.MALFORMED}


# ------------------------------------------------------------------- picklescan fixtures

MALICIOUS = [
    "data/malicious1.zip",
    "data/malicious1_0x1.zip",
    "data/malicious1_0x20.zip",
    "data/malicious1_0x40.zip",
    "data/malicious1_central_directory.zip",
    "data/malicious1_wrong_ext.zip",
    "data/malicious1.7z",
    "data2/malicious1_crc.zip",
]


@pytest.mark.skipif(not PICKLESCAN.is_dir(), reason="picklescan test data not available")
@pytest.mark.parametrize("fixture", MALICIOUS)
def test_picklescan_archives_deliver_their_pickle(fixture: str) -> None:
    data = (PICKLESCAN / fixture).read_bytes()
    scanner: Scanner = SevenZipScanner() if fixture.endswith(".7z") else ZipScanner()
    findings, recorder = scan(scanner, data, fixture)
    pickles = [blob for _, blob in recorder.members if blob.startswith(b"\x80")]
    assert pickles, fixture
    assert b"builtins" in pickles[0]
    assert b"eval" in pickles[0]
    assert Verdict.MALFORMED not in {f.verdict for f in findings}


@pytest.mark.skipif(not PICKLESCAN.is_dir(), reason="picklescan test data not available")
def test_picklescan_password_protected_zip_is_malformed() -> None:
    data = (PICKLESCAN / "data/benign_password_protected.zip").read_bytes()
    findings, recorder = scan(ZipScanner(), data)
    assert rules(findings) == {"zip.encrypted": Verdict.MALFORMED}
    assert recorder.members == []


# ----------------------------------------------------------------------- property tests


def _sample_zips() -> list[bytes]:
    return [
        make_zip({"a/data.pkl": PAYLOAD, "b": b"b" * 300}, zipfile.ZIP_DEFLATED),
        make_zip({"data.pkl": PAYLOAD, "c": bytes(range(200))}, zipfile.ZIP_BZIP2),
        make_zip({"x": PAYLOAD * 3}, zipfile.ZIP_LZMA),
        make_zip({"archive/code/m.py": b"os.system('x')", "inner.zip": make_zip({"d": PAYLOAD})}),
    ]


SAMPLES = _sample_zips()


def _parse_everything(data: bytes) -> None:
    file = io.BytesIO(data)
    try:
        entries = list(zipfmt.iter_entries(file, len(data)))
    except FormatError:
        return
    for entry in entries:
        try:
            out = zipfmt.read_entry(file, entry, size=len(data), cap=1 << 20, allow_encrypted=True)
        except FormatError:
            continue
        assert len(out) == entry.uncompressed_size


@st.composite
def mutated_zips(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        where = draw(st.integers(0, len(data) - 1))
        data[where] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_zips())
def test_mutated_zips_raise_only_format_error(data: bytes) -> None:
    _parse_everything(data)
    findings, _ = scan(ZipScanner(), data)
    assert all(isinstance(f, Finding) for f in findings)


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=600))
def test_random_bytes_never_escape_the_scanners(data: bytes) -> None:
    _parse_everything(data)
    for scanner in scanners():
        scanner.scan(io.BytesIO(data), len(data), ctx_for(Recorder()))
    eocd = b"PK\x05\x06" + data[:18].ljust(18, b"\0")
    _parse_everything(data + eocd)
    scan(ZipScanner(), data + eocd)


@functools.cache
def _container_samples() -> list[tuple[Scanner, bytes]]:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writestr(PAYLOAD * 4, "data.pkl")
    tar = make_tar({"data.pkl": PAYLOAD})
    return [
        (SevenZipScanner(), buffer.getvalue()),
        (TarScanner(), tar),
        (CompressedScanner("gzip"), gzip.compress(tar, mtime=0)),
        (CompressedScanner("bzip2"), bz2.compress(tar)),
        (CompressedScanner("xz"), lzma.compress(tar)),
    ]


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_containers_never_raise(draw: st.DataObject) -> None:
    scanner, original = draw.draw(st.sampled_from(_container_samples()))
    data = bytearray(original)
    for _ in range(draw.draw(st.integers(1, 6))):
        data[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(st.integers(0, 255))
    data = data[: draw.draw(st.integers(0, len(data)))]
    findings = scanner.scan(io.BytesIO(bytes(data)), len(data), ctx_for(Recorder()))
    assert all(isinstance(f, Finding) for f in findings)


# ------------------------------------------------------------------------------ fuzzing

sys.path.insert(0, str(FUZZ))
import fuzz_zip  # noqa: E402


def test_fuzz_target_on_seeds() -> None:
    for seed in [*SAMPLES, b"", b"PK\x05\x06" + b"\0" * 18, SAMPLES[0][:50]]:
        fuzz_zip.test_one_input(seed)


@settings(max_examples=200, deadline=2000)
@given(st.one_of(st.binary(max_size=1024), mutated_zips()))
def test_fuzz_target_on_random_input(data: bytes) -> None:
    fuzz_zip.test_one_input(data)


@pytest.mark.slow
def test_dataclass_is_frozen() -> None:
    data = make_zip({"a": b"a"})
    entry = next(zipfmt.iter_entries(io.BytesIO(data), len(data)))
    with pytest.raises(AttributeError):
        entry.name = "b"  # type: ignore[misc]
    assert replace(entry, name="b").name == "b"
