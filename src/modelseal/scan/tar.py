"""Tar archives, read as a stream by the stdlib (never extracted; regular members only).

Every regular member goes back to the dispatcher through :meth:`ScanContext.member`, which sniffs
its content; members hidden after an end-of-archive marker are still followed.

========================  ==========  ======================================================
rule                      verdict     why
========================  ==========  ======================================================
``tar.unsafe-path``       dangerous   absolute, ``..``, backslash or NUL member name or link
                                      target
``tar.bad-entry``         malformed   a member that cannot be fully read
``tar.bad-archive``       malformed   the archive cannot be fully read
``tar.too-many-members``  malformed   more than ``MAX_MEMBERS`` members: the rest unchecked
``archive.too-deep``      malformed   containers nested deeper than ``MAX_DEPTH``
========================  ==========  ======================================================
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO, cast

from modelseal.formats import zip as zipfmt
from modelseal.scan._members import READ_ERRORS, Limited, deliver, finding, too_deep
from modelseal.scan.interface import ScanContext, Scanner
from modelseal.scan.model import Finding, Verdict

MAX_MEMBERS = 100_000  # tar members followed


class TarScanner(Scanner):
    """Tar archives, read as a stream by the stdlib (never extracted; regular members only)."""

    format = "tar"

    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        if deep := too_deep(ctx):
            return deep
        findings: list[Finding] = []
        try:
            # ignore_zeros: members hidden after an end-of-archive marker are still seen
            with tarfile.open(
                fileobj=Limited(stream, size), mode="r|", ignore_zeros=True
            ) as archive:
                for index, info in enumerate(archive):
                    if index >= MAX_MEMBERS:
                        findings.append(
                            finding(
                                "tar.too-many-members",
                                Verdict.MALFORMED,
                                f"more than {MAX_MEMBERS} members: the rest were not checked",
                            )
                        )
                        break
                    findings += self._member(archive, info, index, ctx)
        except READ_ERRORS as exc:
            message = f"tar archive cannot be fully read: {exc}"[:300]
            findings.append(finding("tar.bad-archive", Verdict.MALFORMED, message))
        return findings

    @staticmethod
    def _member(
        archive: tarfile.TarFile, info: tarfile.TarInfo, index: int, ctx: ScanContext
    ) -> list[Finding]:
        findings: list[Finding] = []
        names = [("member name", info.name)]
        if info.issym() or info.islnk():
            names.append(("link target", info.linkname))
        for what, name in names:
            if (why := zipfmt.name_problem(name)) is not None:
                findings.append(
                    finding(
                        "tar.unsafe-path",
                        Verdict.DANGEROUS,
                        f"{what} {why}: extraction could write outside its directory",
                        symbol=name,
                        member=info.name,
                        index=index,
                    )
                )
        if info.isreg():
            member = archive.extractfile(info)
            if member is not None:
                # forward only: in stream mode the member's seekable() itself raises
                forward = Limited(cast(BinaryIO, member), info.size)
                findings += deliver(ctx, forward, info.size, info.name, "tar.bad-entry", index)
        return findings


__all__ = ["TarScanner"]
