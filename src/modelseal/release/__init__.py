"""A model release on disk: walking it, hashing it, its manifest and root digest.

>>> from modelseal.release import hash_release
>>> manifest = hash_release("path/to/model")          # doctest: +SKIP
>>> manifest.root                                       # doctest: +SKIP
'sha256:…'

Names are imported on first use, so tools that need only one part (the scanner walks release
directories) do not pay for the hash engine and the cache.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ProgressHook": "build",
    "check_release": "build",
    "hash_release": "build",
    "verify_release": "build",
    "DigestCache": "cache",
    "modelseal_home": "cache",
    "ALGORITHMS": "hashing",
    "default_jobs": "hashing",
    "DEFAULT_IGNORES": "ignore",
    "IgnoreRules": "ignore",
    "FileEntry": "manifest",
    "Manifest": "manifest",
    "ManifestDiff": "manifest",
    "diff": "manifest",
}

__all__ = [
    "ALGORITHMS",
    "DEFAULT_IGNORES",
    "DigestCache",
    "FileEntry",
    "IgnoreRules",
    "Manifest",
    "ManifestDiff",
    "ProgressHook",
    "check_release",
    "default_jobs",
    "diff",
    "hash_release",
    "modelseal_home",
    "verify_release",
]

if TYPE_CHECKING:
    from modelseal.release.build import ProgressHook, check_release, hash_release, verify_release
    from modelseal.release.cache import DigestCache, modelseal_home
    from modelseal.release.hashing import ALGORITHMS, default_jobs
    from modelseal.release.ignore import DEFAULT_IGNORES, IgnoreRules
    from modelseal.release.manifest import FileEntry, Manifest, ManifestDiff, diff


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelseal.release' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"modelseal.release.{module}"), name)
    globals()[name] = value
    return value
