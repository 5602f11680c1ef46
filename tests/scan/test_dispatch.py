"""Content sniffing and end-to-end dispatch: a payload is found whatever wraps it or names it."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from modelseal.scan.api import scan_paths
from modelseal.scan.dispatch import sniff
from modelseal.scan.model import Verdict

EVIL = b"cos\nsystem\n(S'true'\ntR."
BENIGN = b"\x80\x04K\x01."


def _tar(data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("inner/model.pkl")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", data)
    return out.getvalue()


WRAPPERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("model.pkl.gz", gzip.compress),
    "bzip2": ("model.pkl.bz2", bz2.compress),
    "xz": ("model.pkl.xz", lzma.compress),
    "zlib": ("model.joblib", zlib.compress),
    "tar": ("model.tar", _tar),
    "tar.gz": ("model.tar.gz", lambda d: gzip.compress(_tar(d))),
    "zip": ("model.pt", _zip),
    "zip in zip": ("nested.zip", lambda d: _zip(_zip(d))),
}


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_payload_found_through_every_wrapper(wrapper: str, tmp_path: Path) -> None:
    name, wrap = WRAPPERS[wrapper]
    evil = tmp_path / "evil" / name
    evil.parent.mkdir()
    evil.write_bytes(wrap(EVIL))
    benign = tmp_path / "benign" / name
    benign.parent.mkdir()
    benign.write_bytes(wrap(BENIGN))
    (report,) = scan_paths([evil]).files
    assert Verdict.DANGEROUS in report.verdicts, report
    assert any(f.symbol == "os.system" and f.location.member for f in report.findings)
    (twin,) = scan_paths([benign]).files
    assert twin.verdicts == {Verdict.SAFE}, twin


@pytest.mark.parametrize(
    ("head", "name", "fmt"),
    [
        (EVIL, "config.json", "pickle"),
        (b"\x80\x05\x95", "x", "pickle"),
        (b'{"a": 1}', "model.pkl", "other"),
        (b"# README\n", "README.md", "other"),
        (b"[PAD]\n[UNK]\n", "vocab.txt", "other"),
        (b"licence text here\nmore\n", "LICENSE", "other"),
        (b"PK\x03\x04rest", "a.bin", "zip"),
        (b"GGUF\x03\x00\x00\x00", "a", "gguf"),
        (b"\x93NUMPY\x01\x00", "a", "npy"),
        (b"\x08\x07\x12\x04", "model.onnx", "onnx"),
        (zlib.compress(b"hello" * 100)[:64], "x.joblib", "zlib"),
        (b"x^ is not zlib text\n", "notes.txt", "other"),
    ],
)
def test_sniffing_is_by_content(head: bytes, name: str, fmt: str) -> None:
    assert sniff(head, 10_000, name) == fmt


def test_masquerading_pickle_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(BENIGN)
    (report,) = scan_paths([path]).files
    assert report.format == "pickle"
    assert any(f.rule == "pickle.masquerade" for f in report.findings)


def test_torch_storage_members_are_not_unpickled(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", BENIGN)
        zf.writestr("archive/data/0", b"\x80\x02" + bytes(64))  # raw floats that look like PROTO
    path = tmp_path / "model.pt"
    path.write_bytes(out.getvalue())
    (report,) = scan_paths([path]).files
    assert report.verdicts == {Verdict.SAFE}, report
