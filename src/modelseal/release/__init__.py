"""A model release on disk: walking it, hashing it, its manifest and root digest.

>>> from modelseal.release import hash_release
>>> manifest = hash_release("path/to/model")          # doctest: +SKIP
>>> manifest.root                                       # doctest: +SKIP
'sha256:…'
"""

from modelseal.release.build import ProgressHook, check_release, hash_release, verify_release
from modelseal.release.cache import DigestCache, modelseal_home
from modelseal.release.hashing import ALGORITHMS, default_jobs
from modelseal.release.ignore import DEFAULT_IGNORES, IgnoreRules
from modelseal.release.manifest import FileEntry, Manifest, ManifestDiff, diff

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
