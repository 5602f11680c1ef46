"""The extension point: one :class:`Scanner` per file format.

A scanner receives a binary stream positioned at the start of its bytes, their size, and a
:class:`ScanContext`; it returns findings. The stream always supports ``read(n)``; it supports
``seek``/``tell`` only when ``stream.seekable()`` is true (a compressed zip member is read
forward only), so skip over bulk data with :func:`skip`.

A scanner never imports, unpickles or executes anything from the stream, never trusts a length
field it has not checked against ``size``, and turns every parse problem into a finding
(``malformed``), never an exception. Containers (zip, npz, 7z, ...) hand each member back to the
dispatcher through :meth:`ScanContext.member`, which sniffs the member's content and picks the
right scanner, so every member is checked whatever its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from modelseal.scan.model import Finding

# (stream, size, member name, parent context) -> findings, locations already inside ``member``
MemberScanner = Callable[[BinaryIO, int, str, "ScanContext"], list[Finding]]

MAX_DEPTH = 4  # containers inside containers deeper than this are a finding, not a recursion


class ScanContext(NamedTuple):
    """What a scanner knows about where its bytes come from."""

    display: str  # the scanned file as shown to the user, with any member path
    name: str  # the file or member name (only a hint: formats come from content)
    depth: int  # 0 for a file on disk, +1 per enclosing container
    release_dir: str | None  # the directory being scanned, for path-escape checks
    file_path: str | None  # the file on disk that holds these bytes (outermost)
    scan_member: MemberScanner

    @classmethod
    def standalone(cls, name: str = "<bytes>") -> ScanContext:
        """A context for bytes scanned on their own: members of containers are not followed."""
        return cls(name, name, 0, None, None, lambda stream, size, member, ctx: [])

    def member(self, stream: BinaryIO, size: int, name: str) -> list[Finding]:
        """Scan a container member by content; its findings come back located inside it."""
        return self.scan_member(stream, size, name, self)


class Scanner(ABC):
    """Checks one format. Subclasses set ``format`` and implement :meth:`scan`."""

    format: str  # e.g. "pickle"; also the name shown in reports

    @abstractmethod
    def scan(self, stream: BinaryIO, size: int, ctx: ScanContext) -> list[Finding]:
        """Every finding for the bytes in ``stream`` (an empty list means nothing to report)."""


def skip(stream: BinaryIO, n: int, chunk: int = 1 << 20) -> int:
    """Advance ``n`` bytes (seek when possible, else read and discard); returns bytes skipped."""
    if n <= 0:
        return 0
    if stream.seekable():
        start = stream.tell()
        end = stream.seek(n, 1)
        return end - start
    done = 0
    while done < n:
        got = stream.read(min(chunk, n - done))
        if not got:
            break
        done += len(got)
    return done
