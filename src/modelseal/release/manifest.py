"""The release manifest: per-file path, size and digest, and the root digest over all of them.

Wire format (JSON)::

    {
      "version": 1,
      "algorithm": "sha256",
      "root": "sha256:<hex>",
      "files": [{"path": "config.json", "size": 612, "digest": "<hex>"}, ...],
      "ignore": ["/.git/", ...],
      "generator": {"name": "modelseal", "version": "0.1.0"}
    }

A file entry may also carry ``link`` (the entry is a symbolic link to another file of the release;
its size and digest are those of the target) and ``path_bytes`` (see :mod:`.paths`).

The **root digest** is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of the list
of ``{path, size, algorithm, digest}`` objects (plus ``link`` / ``path_bytes`` where present),
sorted by the exact bytes of the path. Names and sizes are covered, so a rename changes the root.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelseal._version import __version__
from modelseal.errors import ManifestError
from modelseal.release import paths

MANIFEST_VERSION = 1
_HEX = re.compile(r"\A[0-9a-f]+\Z")
DIGEST_HEX_LENGTH = {"sha256": 64, "blake3": 64}


def canonical_json(value: Any) -> bytes:
    """RFC 8785-style canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a release."""

    path: str
    size: int
    digest: str
    link: str | None = None

    def wire(self, algorithm: str) -> dict[str, Any]:
        """The entry as it enters the root digest (``algorithm`` included)."""
        out: dict[str, Any] = paths.to_wire(self.path)
        out["size"] = self.size
        out["algorithm"] = algorithm
        out["digest"] = self.digest
        if self.link is not None:
            out["link"] = self.link
        return out

    @property
    def sort_key(self) -> bytes:
        return paths.path_bytes(self.path)


def root_digest(algorithm: str, files: Iterable[FileEntry]) -> str:
    items = [entry.wire(algorithm) for entry in sorted(files, key=lambda e: e.sort_key)]
    return "sha256:" + hashlib.sha256(canonical_json(items)).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """The exact identity of a release: every file's path, size and digest."""

    algorithm: str
    files: tuple[FileEntry, ...]
    ignore: tuple[str, ...] = ()
    generator: Mapping[str, str] = field(
        default_factory=lambda: {"name": "modelseal", "version": __version__}
    )

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.files, key=lambda e: e.sort_key))
        object.__setattr__(self, "files", ordered)
        seen: set[str] = set()
        for entry in ordered:
            if entry.path in seen:
                raise ManifestError(f"duplicate path in manifest: {paths.display(entry.path)!r}")
            seen.add(entry.path)

    @property
    def root(self) -> str:
        return root_digest(self.algorithm, self.files)

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files)

    def by_path(self) -> dict[str, FileEntry]:
        return {entry.path: entry for entry in self.files}

    def to_dict(self) -> dict[str, Any]:
        files = []
        for entry in self.files:
            item = entry.wire(self.algorithm)
            del item["algorithm"]
            files.append(item)
        return {
            "version": MANIFEST_VERSION,
            "algorithm": self.algorithm,
            "root": self.root,
            "files": files,
            "ignore": list(self.ignore),
            "generator": dict(self.generator),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: str | bytes) -> Manifest:
        """Parse and validate a manifest; any defect raises :class:`ManifestError`."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors.
            raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: object) -> Manifest:
        if not isinstance(doc, dict):
            raise ManifestError("manifest must be a JSON object")
        version = doc.get("version", MANIFEST_VERSION)
        if version != MANIFEST_VERSION or isinstance(version, bool):
            raise ManifestError(f"unsupported manifest version {version!r}")
        algorithm = doc.get("algorithm")
        if not isinstance(algorithm, str) or algorithm not in DIGEST_HEX_LENGTH:
            raise ManifestError(
                f"unsupported manifest algorithm {algorithm!r} "
                f"(known: {', '.join(sorted(DIGEST_HEX_LENGTH))})"
            )
        raw_files = doc.get("files")
        if not isinstance(raw_files, list):
            raise ManifestError("manifest 'files' must be a list")
        entries = [_entry_from_dict(item, algorithm, i) for i, item in enumerate(raw_files)]
        ignore = doc.get("ignore", [])
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise ManifestError("manifest 'ignore' must be a list of strings")
        generator = doc.get("generator", {})
        if not isinstance(generator, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in generator.items()
        ):
            raise ManifestError("manifest 'generator' must map strings to strings")
        manifest = cls(algorithm, tuple(entries), tuple(ignore), dict(generator))
        claimed = doc.get("root")
        if claimed is not None and claimed != manifest.root:
            raise ManifestError(
                f"manifest root {claimed!r} does not match its file list "
                f"(computed {manifest.root}); the manifest was edited or corrupted"
            )
        return manifest


def _entry_from_dict(item: object, algorithm: str, index: int) -> FileEntry:
    where = f"manifest file entry #{index}"
    if not isinstance(item, dict):
        raise ManifestError(f"{where} must be an object")
    unknown = set(item) - {"path", "path_bytes", "size", "digest", "link"}
    if unknown:
        raise ManifestError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}")
    path = paths.from_wire(item.get("path"), item.get("path_bytes"))
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{where} ({paths.display(path)!r}): size must be an integer >= 0")
    digest = item.get("digest")
    if (
        not isinstance(digest, str)
        or len(digest) != DIGEST_HEX_LENGTH[algorithm]
        or not _HEX.match(digest)
    ):
        raise ManifestError(
            f"{where} ({paths.display(path)!r}): digest must be "
            f"{DIGEST_HEX_LENGTH[algorithm]} lowercase hex characters"
        )
    link = item.get("link")
    if link is not None:
        if not isinstance(link, str):
            raise ManifestError(f"{where}: link must be a string")
        problem = paths.relative_path_problem(link)
        if problem or not paths.is_utf8(link):
            raise ManifestError(f"{where}: link target {link!r} is not allowed: {problem}")
    return FileEntry(path=path, size=size, digest=digest, link=link)


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    """How an actual release differs from an expected manifest."""

    modified: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    algorithm_changed: tuple[str, str] | None = None

    @property
    def ok(self) -> bool:
        return not (
            self.modified or self.added or self.removed or self.renamed or self.algorithm_changed
        )

    def lines(self) -> list[str]:
        """One line per difference, e.g. ``modified: model.safetensors``."""
        out: list[str] = []
        if self.algorithm_changed:
            out.append(
                f"algorithm: expected {self.algorithm_changed[0]}, got {self.algorithm_changed[1]}"
            )
        out += [f"modified: {paths.display(p)}" for p in self.modified]
        out += [f"renamed: {paths.display(a)} -> {paths.display(b)}" for a, b in self.renamed]
        out += [f"removed: {paths.display(p)}" for p in self.removed]
        out += [f"added: {paths.display(p)}" for p in self.added]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "modified": [paths.display(p) for p in self.modified],
            "added": [paths.display(p) for p in self.added],
            "removed": [paths.display(p) for p in self.removed],
            "renamed": [
                {"from": paths.display(a), "to": paths.display(b)} for a, b in self.renamed
            ],
        }


def diff(expected: Manifest, actual: Manifest) -> ManifestDiff:
    """Compare two manifests of the same release, pairing removed and added files into renames."""
    if expected.algorithm != actual.algorithm:
        return ManifestDiff(algorithm_changed=(expected.algorithm, actual.algorithm))
    want, have = expected.by_path(), actual.by_path()
    modified = [p for p in want if p in have and want[p] != have[p]]
    removed = [p for p in want if p not in have]
    added = [p for p in have if p not in want]
    renamed: list[tuple[str, str]] = []
    by_content: dict[tuple[int, str, str | None], list[str]] = {}
    for p in added:
        e = have[p]
        by_content.setdefault((e.size, e.digest, e.link), []).append(p)
    still_removed: list[str] = []
    for p in removed:
        e = want[p]
        candidates = by_content.get((e.size, e.digest, e.link))
        if candidates:
            renamed.append((p, candidates.pop(0)))
        else:
            still_removed.append(p)
    matched = {new for _, new in renamed}
    return ManifestDiff(
        modified=_sorted(modified),
        added=_sorted(p for p in added if p not in matched),
        removed=_sorted(still_removed),
        renamed=tuple(sorted(renamed, key=lambda r: paths.path_bytes(r[0]))),
    )


def _sorted(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(items, key=paths.path_bytes))
