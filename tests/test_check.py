"""Property tests: every kind of tampering with a release is detected by a check."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.errors import UnsafePathError
from modelseal.release import check_release, hash_release

from .conftest import write_tree

name = st.text(alphabet="abcdefghij_.-0123456789", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..") and not s.endswith(("~", ".swp", ".swo")) and s[0] != "."
)
rel_path = st.lists(name, min_size=1, max_size=3).map("/".join)
trees = st.dictionaries(rel_path, st.binary(max_size=300), min_size=1, max_size=8).filter(
    # no path may be both a file and a directory
    lambda d: not any(other.startswith(p + "/") for p in d for other in d)
)

MUTATIONS = ["flip", "truncate", "append", "add", "remove", "rename", "relink"]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(files=trees, mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_any_single_change_is_detected(
    files: dict[str, bytes], mutation: str, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_tree(Path(tmp) / "release", files)
        targets = sorted(files)
        link_target = targets[0]
        os.symlink(link_target, root / "zz-link")
        jobs = data.draw(st.integers(min_value=1, max_value=3), label="jobs")
        expected = hash_release(root, jobs=jobs)

        victim = data.draw(st.sampled_from(targets), label="victim")
        path = root / victim
        content = files[victim]
        kind, changed = "modified", victim
        if mutation == "flip" and content:
            i = data.draw(st.integers(0, len(content) - 1), label="offset")
            bit = data.draw(st.integers(0, 7), label="bit")
            mutated = bytearray(content)
            mutated[i] ^= 1 << bit
            path.write_bytes(bytes(mutated))
        elif mutation == "truncate" and content:
            keep = data.draw(st.integers(0, len(content) - 1), label="keep")
            path.write_bytes(content[:keep])
        elif mutation in ("append", "flip", "truncate"):
            path.write_bytes(content + data.draw(st.binary(min_size=1, max_size=3)))
        elif mutation == "add":
            kind, changed = "added", "new-file.bin"
            (root / changed).write_bytes(data.draw(st.binary(max_size=20), label="new"))
        elif mutation == "remove":
            kind = "removed"
            path.unlink()
            if victim == link_target:  # the link would dangle: retarget it to keep it legal
                (root / "zz-link").unlink()
                kind, changed = "removed-two", victim
        elif mutation == "rename":
            kind = "renamed"
            path.rename(root / "renamed-file.bin")
        elif mutation == "relink":
            kind, changed = "modified", "zz-link"
            (root / "zz-link").unlink()
            other = "other-target.bin"
            (root / other).write_bytes(files[link_target])  # same bytes, other file
            os.symlink(other, root / "zz-link")

        if mutation == "rename" and victim == link_target:
            # the link now dangles: the check refuses the release outright
            with pytest.raises(UnsafePathError, match="dangling"):
                check_release(root, expected, jobs=jobs)
            return
        result, actual = check_release(root, expected, jobs=jobs)
        assert not result.ok
        assert actual.root != expected.root
        if kind == "modified":
            assert changed in result.modified
        elif kind == "added":
            assert result.added == ("new-file.bin",)
        elif kind == "removed":
            assert result.removed == (victim,) or any(a == victim for a, _ in result.renamed)
        elif kind == "removed-two":
            assert victim in result.removed
            assert "zz-link" in result.removed
        elif kind == "renamed":
            assert (victim, "renamed-file.bin") in result.renamed or (
                victim in result.removed  # a twin with the same bytes may take the pairing
                or any(old == victim for old, _ in result.renamed)
            )


@settings(max_examples=40, deadline=None)
@given(files=trees)
def test_unchanged_tree_always_checks_clean(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_tree(Path(tmp) / "release", files)
        expected = hash_release(root, jobs=1)
        result, _ = check_release(root, expected, jobs=2)
        assert result.ok, result.lines()
