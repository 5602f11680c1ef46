"""Container scanners, one module per format; this module lists them.

================================  =================================================
module                            scanner
================================  =================================================
:mod:`modelseal.scan.zip`         :class:`ZipScanner` (PyTorch, npz, Keras v3, zip)
:mod:`modelseal.scan.sevenzip`    :class:`SevenZipScanner` (py7zr, loaded on use)
:mod:`modelseal.scan.tar`         :class:`TarScanner`
:mod:`modelseal.scan.compressed`  :class:`CompressedScanner` (gzip, bzip2, xz)
================================  =================================================

Every member of every archive goes back to the dispatcher through :meth:`ScanContext.member`,
which sniffs its content; nothing is ever extracted to disk. A member that fails to read becomes
a finding and the scan goes on with the next one; what the member scanner found before the
failure is kept (:mod:`modelseal.scan._members`). Each module's docstring lists its rules;
all of them report ``archive.too-deep`` (malformed) for containers nested deeper than
``MAX_DEPTH``. The dispatcher imports the modules on its own (``dispatch.REGISTRY``), not this one.
"""

from __future__ import annotations

from modelseal.scan.compressed import Bzip2Scanner, CompressedScanner, GzipScanner, XzScanner
from modelseal.scan.interface import Scanner
from modelseal.scan.sevenzip import SevenZipScanner
from modelseal.scan.tar import TarScanner
from modelseal.scan.zip import ZipScanner


def scanners() -> list[Scanner]:
    """One instance of every container scanner."""
    return [
        ZipScanner(),
        SevenZipScanner(),
        TarScanner(),
        GzipScanner(),
        Bzip2Scanner(),
        XzScanner(),
    ]


__all__ = [
    "Bzip2Scanner",
    "CompressedScanner",
    "GzipScanner",
    "SevenZipScanner",
    "TarScanner",
    "XzScanner",
    "ZipScanner",
    "scanners",
]
