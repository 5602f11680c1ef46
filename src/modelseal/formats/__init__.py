"""Defensive parsers for model file formats.

Nothing here imports, unpickles or executes anything from a parsed file, and no parser allocates
memory proportional to a length field before checking it against the bytes actually available.
Every parser raises :class:`modelseal.formats.FormatError` (and nothing else) on bad input.
This package depends on nothing else of modelseal.
"""

from __future__ import annotations


class FormatError(Exception):
    """The bytes do not form a valid instance of the format.

    ``offset`` is the byte offset where the problem was found, when known.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class RuleError(FormatError):
    """A violation of a named rule of the format; ``kind`` is stable (``"overlap"``), ``symbol``
    the offending field or name when there is one. Scanners turn ``kind`` into a rule id."""

    def __init__(
        self, kind: str, message: str, *, offset: int | None = None, symbol: str | None = None
    ) -> None:
        super().__init__(message, offset=offset)
        self.kind = kind
        self.symbol = symbol


__all__ = ["FormatError", "RuleError"]
