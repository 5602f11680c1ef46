"""Which paths of a release directory are not part of the release.

Patterns are shell globs (``fnmatch``, case-sensitive) with gitignore-like anchoring:

- ``name`` (no slash) matches that name at any depth, file or directory;
- ``name/`` (trailing slash) matches directories only;
- ``/path`` or ``a/b`` (a slash at the start or inside) is anchored at the release root and
  matched against the whole relative path.

A matched directory is skipped with everything under it. The default list covers version-control
metadata, editor and OS litter and the huggingface_hub download cache; it deliberately does *not*
cover ``__pycache__`` or ``*.pyc``: a stale byte-code file next to remote code can be executed
instead of the source, so it must be bound by the manifest like any other file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import translate

DEFAULT_IGNORES: tuple[str, ...] = (
    # version control metadata
    ".git/",
    ".hg/",
    ".svn/",
    # OS litter
    ".DS_Store",
    "._*",
    "Thumbs.db",
    "desktop.ini",
    # editor litter
    "*.swp",
    "*.swo",
    "*~",
    ".#*",
    ".idea/",
    ".vscode/",
    ".ipynb_checkpoints/",
    # huggingface_hub's local-dir download metadata
    "/.cache/huggingface/",
)


def escape(path: str) -> str:
    """An anchored pattern that matches exactly ``path`` (a release-relative path)."""
    return "/" + re.sub(r"([*?\[])", r"[\1]", path)


class IgnoreRules:
    """A compiled list of ignore patterns (all patterns of one kind share one regex)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(patterns))
        groups: dict[tuple[bool, bool], list[str]] = {}
        for pattern in self.patterns:
            body = pattern.rstrip("/")
            if not body.strip("/"):
                continue
            key = ("/" in body, pattern.endswith("/"))  # (anchored, directories only)
            groups.setdefault(key, []).append(translate(body.lstrip("/")))
        self._regexes = {
            key: re.compile("|".join(f"(?:{r})" for r in regexes))
            for key, regexes in groups.items()
        }

    @classmethod
    def default(cls, extra: Iterable[str] = ()) -> IgnoreRules:
        return cls((*DEFAULT_IGNORES, *extra))

    def matches(self, relpath: str, name: str, *, is_dir: bool) -> bool:
        """Whether the entry ``relpath`` (whose last component is ``name``) is ignored."""
        for (anchored, dir_only), regex in self._regexes.items():
            if dir_only and not is_dir:
                continue
            if regex.match(relpath if anchored else name):
                return True
        return False
