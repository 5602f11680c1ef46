"""Release-relative paths: validation, normalisation and their manifest spelling.

Inside modelseal a release path is a ``str`` in POSIX form, relative to the release root, as
Python spells file names (``os.fsdecode``: bytes that are not UTF-8 become lone surrogates via
``surrogateescape``). That keeps every name lossless and deterministic on every platform.

In a manifest a path is written as its UTF-8 text. A name that is not valid UTF-8 is written with
its undecodable bytes shown as ``\\xNN`` in ``path`` (for people) and its exact bytes, base64, in
``path_bytes`` (for machines); the exact bytes are what is compared and what orders entries.
"""

from __future__ import annotations

import base64
import binascii
import os

from modelseal.errors import ManifestError


def path_bytes(path: str) -> bytes:
    """The exact bytes of a release path (the sort key of manifest entries)."""
    return os.fsencode(path)


def is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display(path: str) -> str:
    """A printable spelling of a path (undecodable bytes as ``\\xNN``)."""
    if is_utf8(path):
        return path
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def to_wire(path: str) -> dict[str, str]:
    """The manifest fields that spell ``path``."""
    if is_utf8(path):
        return {"path": path}
    raw = os.fsencode(path)
    return {"path": display(path), "path_bytes": base64.b64encode(raw).decode("ascii")}


def from_wire(text: object, raw_b64: object | None) -> str:
    """Parse the manifest spelling of a path back to a validated release path."""
    if not isinstance(text, str):
        raise ManifestError(f"manifest entry path must be a string, got {type(text).__name__}")
    if raw_b64 is None:
        path = text
        if not is_utf8(path):
            raise ManifestError(f"manifest path {display(path)!r} is not valid Unicode text")
    else:
        if not isinstance(raw_b64, str):
            raise ManifestError("manifest entry path_bytes must be a base64 string")
        try:
            raw = base64.b64decode(raw_b64.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ManifestError(f"manifest entry path_bytes is not base64: {exc}") from exc
        path = os.fsdecode(raw)
        if is_utf8(path):
            raise ManifestError(
                f"manifest entry {text!r} has path_bytes although its name is valid UTF-8"
            )
        if display(path) != text:
            raise ManifestError(
                f"manifest entry path {text!r} does not match its path_bytes ({display(path)!r})"
            )
    check_relative(path)
    return path


def check_relative(path: str) -> None:
    """Refuse anything but a normalised, relative POSIX path that stays inside the root."""
    problem = relative_path_problem(path)
    if problem:
        raise ManifestError(f"manifest path {display(path)!r} is not allowed: {problem}")


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe release-relative path, or ``None`` when it is."""
    if not path:
        return "empty path"
    if "\x00" in path:
        return "contains a NUL byte"
    if path.startswith("/"):
        return "absolute path"
    if "\\" in path:
        return "contains a backslash (paths are POSIX)"
    parts = path.split("/")
    for part in parts:
        if part == "..":
            return "contains '..'"
        if part in ("", "."):
            return "not normalised (empty or '.' segment)"
    return None


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name
