"""The manifest format and its root digest, as DESIGN.md defines them."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelseal.errors import ManifestError
from modelseal.release import FileEntry, Manifest, diff

HEX_A = "a" * 64
HEX_B = "b" * 64


def independent_root(algorithm: str, entries: list[dict[str, object]]) -> str:
    """The root digest computed straight from its definition, without modelseal code."""
    items = sorted(
        ({**e, "algorithm": algorithm} for e in entries),
        key=lambda e: str(e["path"]).encode("utf-8", "surrogateescape"),
    )
    canonical = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_root_digest_matches_its_definition() -> None:
    manifest = Manifest(
        "sha256",
        (FileEntry("z.bin", 3, HEX_A), FileEntry("a/config.json", 10, HEX_B)),
    )
    expected = independent_root(
        "sha256",
        [
            {"path": "z.bin", "size": 3, "digest": HEX_A},
            {"path": "a/config.json", "size": 10, "digest": HEX_B},
        ],
    )
    assert manifest.root == expected
    assert [e.path for e in manifest.files] == ["a/config.json", "z.bin"]


def test_root_covers_names_sizes_algorithm_and_links() -> None:
    base = Manifest("sha256", (FileEntry("README.md", 5, HEX_A),))
    renamed = Manifest("sha256", (FileEntry("README2.md", 5, HEX_A),))
    resized = Manifest("sha256", (FileEntry("README.md", 6, HEX_A),))
    other_algo = Manifest("blake3", (FileEntry("README.md", 5, HEX_A),))
    linked = Manifest("sha256", (FileEntry("README.md", 5, HEX_A, link="docs/README.md"),))
    roots = {m.root for m in (base, renamed, resized, other_algo, linked)}
    assert len(roots) == 5


def test_json_roundtrip_keeps_everything() -> None:
    weird = "caf\udce9.bin"  # the Latin-1 byte 0xE9 in a name: not UTF-8
    manifest = Manifest(
        "sha256",
        (
            FileEntry("model.safetensors", 100, HEX_A),
            FileEntry("alias.safetensors", 100, HEX_A, link="model.safetensors"),
            FileEntry(weird, 1, HEX_B),
            FileEntry("日本語.txt", 2, HEX_B),
        ),
        ignore=("/.git/", "*.swp"),
    )
    text = manifest.to_json()
    doc = json.loads(text)
    weird_entry = next(e for e in doc["files"] if "path_bytes" in e)
    assert base64.b64decode(weird_entry["path_bytes"]) == b"caf\xe9.bin"
    assert weird_entry["path"] == "caf\\xe9.bin"
    assert doc["root"] == manifest.root
    again = Manifest.from_json(text)
    assert again == manifest
    assert again.root == manifest.root


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(algorithm="md5"), "unsupported manifest algorithm"),
        (lambda d: d.update(version=2), "unsupported manifest version"),
        (lambda d: d.update(files={}), "'files' must be a list"),
        (lambda d: d["files"][0].update(path="../etc/passwd"), "'..'"),
        (lambda d: d["files"][0].update(path="/etc/passwd"), "absolute path"),
        (lambda d: d["files"][0].update(path="a//b"), "not normalised"),
        (lambda d: d["files"][0].update(path="a\\b"), "backslash"),
        (lambda d: d["files"][0].update(size=-1), "size must be an integer"),
        (lambda d: d["files"][0].update(size=True), "size must be an integer"),
        (lambda d: d["files"][0].update(digest="AB" * 32), "lowercase hex"),
        (lambda d: d["files"][0].update(digest="ab"), "lowercase hex"),
        (lambda d: d["files"][0].update(extra=1), "unknown field"),
        (lambda d: d["files"][0].update(link="../x"), "link target"),
        (lambda d: d["files"].append(dict(d["files"][0])), "duplicate path"),
        (lambda d: d.update(root="sha256:" + "0" * 64), "does not match its file list"),
        (lambda d: d["files"][0].update(path_bytes="!!"), "not base64"),
        (lambda d: d["files"][0].update(path_bytes=base64.b64encode(b"a.bin").decode()), "UTF-8"),
    ],
)
def test_bad_manifests_are_refused_clearly(mutate, message) -> None:  # type: ignore[no-untyped-def]
    doc = Manifest("sha256", (FileEntry("a.bin", 1, HEX_A),)).to_dict()
    mutate(doc)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(doc))


def test_not_json_and_not_object() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json(b"\xff\xfe{")
    with pytest.raises(ManifestError, match="JSON object"):
        Manifest.from_json("[1, 2]")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json("[" * 100_000)


def test_diff_names_every_kind_of_change() -> None:
    before = Manifest(
        "sha256",
        (
            FileEntry("same", 1, HEX_A),
            FileEntry("changed", 1, HEX_A),
            FileEntry("gone", 1, "c" * 64),
            FileEntry("old-name", 7, HEX_B),
        ),
    )
    after = Manifest(
        "sha256",
        (
            FileEntry("same", 1, HEX_A),
            FileEntry("changed", 1, HEX_B),
            FileEntry("new-name", 7, HEX_B),
            FileEntry("new", 2, "d" * 64),
        ),
    )
    result = diff(before, after)
    assert not result.ok
    assert result.modified == ("changed",)
    assert result.renamed == (("old-name", "new-name"),)
    assert result.removed == ("gone",)
    assert result.added == ("new",)
    assert result.lines() == [
        "modified: changed",
        "renamed: old-name -> new-name",
        "removed: gone",
        "added: new",
    ]
    assert diff(before, before).ok


# --- property tests -----------------------------------------------------------------------

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
rel_paths = st.lists(names, min_size=1, max_size=3).map("/".join)
entries = st.builds(
    FileEntry,
    path=rel_paths,
    size=st.integers(min_value=0, max_value=2**63),
    digest=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
manifests = st.builds(
    Manifest,
    algorithm=st.sampled_from(["sha256", "blake3"]),
    files=st.lists(entries, max_size=8, unique_by=lambda e: e.path).map(tuple),
    ignore=st.lists(st.text(max_size=10), max_size=3).map(tuple),
)


@given(manifests)
def test_any_manifest_roundtrips_through_json(manifest: Manifest) -> None:
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.root == manifest.root


@given(manifests, st.permutations(range(8)))
def test_root_does_not_depend_on_entry_order(manifest: Manifest, order: list[int]) -> None:
    files = list(manifest.files)
    shuffled = [files[i] for i in order if i < len(files)]
    assert Manifest(manifest.algorithm, tuple(shuffled)).root == manifest.root


def check_parses_or_refuses(data: bytes) -> None:
    """Either a ManifestError, or a manifest that round-trips exactly (any other error fails)."""
    try:
        manifest = Manifest.from_json(data)
    except ManifestError as exc:
        message = exc.diagnostics()
        assert message
        return
    assert Manifest.from_json(manifest.to_json()) == manifest


@given(st.binary(max_size=512) | st.text(max_size=512).map(str.encode))
def test_arbitrary_bytes_parse_or_fail_with_manifest_error(data: bytes) -> None:
    check_parses_or_refuses(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "version": json_values,
            "algorithm": st.sampled_from(["sha256", "blake3"]) | json_values,
            "root": json_values,
            "files": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "path": rel_paths | json_values,
                        "size": st.integers() | json_values,
                        "digest": json_values,
                        "link": json_values,
                        "path_bytes": json_values,
                    },
                ),
                max_size=3,
            )
            | json_values,
            "ignore": json_values,
            "generator": json_values,
        },
    )
)
def test_structured_garbage_fails_only_with_manifest_error(doc: dict[str, object]) -> None:
    check_parses_or_refuses(json.dumps(doc).encode())


def test_every_public_release_name_resolves() -> None:
    import modelseal.release as release

    for name in release.__all__:
        assert getattr(release, name) is not None
    with pytest.raises(AttributeError):
        _ = release.no_such_name
