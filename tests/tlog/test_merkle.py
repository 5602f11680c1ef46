"""RFC 9162 Merkle proofs: the transparency-dev/merkle vectors, exhaustive small trees, and
properties (any change to a proof, index, size or root makes verification fail)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelseal.errors import InputError, VerificationError
from modelseal.tlog.hashing import EMPTY_ROOT, leaf_hash, node_hash
from modelseal.tlog.merkle import (
    MerkleTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    is_valid_subtree,
    root,
    root_from_inclusion,
    subtree_consistency_proof,
    subtree_hash,
    subtree_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

# --------------------------------------------------------------------------------------------
# transparency-dev/merkle test vectors

_REPO = Path(__file__).resolve().parents[2]
_DEFAULT_VECTORS = next(
    (
        base / "shared" / "testdata" / "merkle-vectors"
        for base in (_REPO.parent, _REPO)
        if (base / "shared" / "testdata" / "merkle-vectors").is_dir()
    ),
    _REPO.parent / "shared" / "testdata" / "merkle-vectors",
)
VECTORS = Path(os.environ.get("MODELSEAL_MERKLE_VECTORS", str(_DEFAULT_VECTORS)))
VECTOR_FILES = sorted(VECTORS.rglob("*.json")) if VECTORS.is_dir() else []


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _kind(case: dict[str, Any]) -> str:
    """Which proof a vector file checks, from its fields."""
    if "treeSize" in case:
        return "inclusion"
    if "size1" in case:
        return "consistency"
    if "leafIdx" in case:
        return "subtreeinclusion"
    if "size" in case and "start" in case:
        return "subtreeconsistency"
    raise AssertionError(f"unknown vector fields {sorted(case)}")


def _check_vector(kind: str, case: dict[str, Any]) -> None:
    proof = [_b64(h) for h in case["proof"] or []]
    if kind == "inclusion":
        verify_inclusion(
            case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), proof, _b64(case["root"])
        )
    elif kind == "consistency":
        verify_consistency(
            case["size1"], case["size2"], proof, _b64(case["root1"]), _b64(case["root2"])
        )
    elif kind == "subtreeinclusion":
        verify_subtree_inclusion(
            case["leafIdx"],
            case["start"],
            case["end"],
            _b64(case["leafHash"]),
            proof,
            _b64(case["root"]),
        )
    elif kind == "subtreeconsistency":
        verify_subtree_consistency(
            case["start"],
            case["end"],
            case["size"],
            proof,
            _b64(case["root1"]),
            _b64(case["root2"]),
        )
    else:
        raise AssertionError(f"unknown vector kind {kind}")


@pytest.mark.parametrize(
    "path",
    VECTOR_FILES or [None],
    ids=[str(p.relative_to(VECTORS)) for p in VECTOR_FILES] or ["absent"],
)
def test_vector(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"no merkle vectors at {VECTORS} (set MODELSEAL_MERKLE_VECTORS)")
    case = json.loads(path.read_text())
    kind = _kind(case)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            _check_vector(kind, case)
    else:
        _check_vector(kind, case)


def test_vectors_cover_every_kind() -> None:
    if VECTORS != _DEFAULT_VECTORS or not VECTOR_FILES:
        pytest.skip(f"not the full vector set: {VECTORS}")
    kinds = {_kind(json.loads(p.read_text())) for p in VECTOR_FILES}
    assert kinds == {"inclusion", "consistency", "subtreeinclusion", "subtreeconsistency"}
    assert len(VECTOR_FILES) >= 500


# --------------------------------------------------------------------------------------------
# Known answers

RFC6962_ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
RFC6962_ROOT = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_rfc6962_root() -> None:
    leaves = [leaf_hash(e) for e in RFC6962_ENTRIES]
    assert root(leaves).hex() == RFC6962_ROOT
    assert MerkleTree(leaves).root().hex() == RFC6962_ROOT


def test_small_trees_by_hand() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert root([]) == EMPTY_ROOT
    assert root([a]) == a
    assert root([a, b]) == node_hash(a, b)
    assert root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert inclusion_proof(2, [a, b, c]) == [node_hash(a, b)]
    assert inclusion_proof(0, [a, b, c]) == [b, c]
    assert consistency_proof(2, [a, b, c]) == [c]
    assert consistency_proof(1, [a, b, c]) == [b, c]
    assert consistency_proof(3, [a, b, c]) == []


# --------------------------------------------------------------------------------------------
# Exhaustive generation and verification

N = 300
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(N)]
TREE = MerkleTree(LEAVES)
ROOTS = [TREE.root(n) for n in range(N + 1)]


def test_tree_roots_match_the_reference() -> None:
    for n in range(N + 1):
        assert ROOTS[n] == root(LEAVES[:n])


def test_every_inclusion_proof_up_to_300_verifies() -> None:
    for n in range(1, N + 1):
        for i in range(n):
            verify_inclusion(i, n, LEAVES[i], TREE.inclusion_proof(i, n), ROOTS[n])


def test_every_consistency_proof_up_to_300_verifies() -> None:
    for n in range(1, N + 1):
        for m in range(1, n + 1):
            verify_consistency(m, n, TREE.consistency_proof(m, n), ROOTS[m], ROOTS[n])


def test_reference_generation_matches_the_tree() -> None:
    for n in range(1, 65):
        leaves = LEAVES[:n]
        for i in range(n):
            assert inclusion_proof(i, leaves) == TREE.inclusion_proof(i, n)
        for m in range(1, n + 1):
            assert consistency_proof(m, leaves) == TREE.consistency_proof(m, n)
    for n, i, m in [(300, 0, 1), (300, 299, 299), (257, 128, 129), (255, 100, 64), (129, 5, 96)]:
        assert inclusion_proof(i, LEAVES[:n]) == TREE.inclusion_proof(i, n)
        assert consistency_proof(m, LEAVES[:n]) == TREE.consistency_proof(m, n)


def _valid_subtrees(n: int) -> list[tuple[int, int]]:
    return [(s, e) for e in range(1, n + 1) for s in range(e) if is_valid_subtree(s, e)]


VALID_SUBTREES = _valid_subtrees(N)


def test_every_subtree_proof_up_to_100_verifies() -> None:
    for n in range(1, 101):
        for start, end in _valid_subtrees(n):
            node = TREE.subtree_hash(start, end)
            proof = TREE.subtree_consistency_proof(start, end, n)
            verify_subtree_consistency(start, end, n, proof, node, ROOTS[n])
            if n == end:  # each subtree once for inclusion
                for i in range(start, end):
                    proof = TREE.subtree_inclusion_proof(i, start, end)
                    verify_subtree_inclusion(i, start, end, LEAVES[i], proof, node)


def test_reference_subtree_generation_matches_the_tree() -> None:
    for n in range(1, 33):
        leaves = LEAVES[:n]
        for start, end in _valid_subtrees(n):
            assert subtree_hash(start, end, leaves) == TREE.subtree_hash(start, end)
            assert subtree_consistency_proof(start, end, leaves) == (
                TREE.subtree_consistency_proof(start, end, n)
            )
            for i in range(start, end):
                assert subtree_inclusion_proof(i, start, end, leaves) == (
                    TREE.subtree_inclusion_proof(i, start, end)
                )


def test_valid_subtrees() -> None:
    assert is_valid_subtree(0, 5)
    assert is_valid_subtree(4, 8)
    assert is_valid_subtree(8, 11)  # 3 leaves: start must be a multiple of 4
    assert not is_valid_subtree(2, 5)
    assert not is_valid_subtree(3, 3)
    assert not is_valid_subtree(2, 1)
    assert not is_valid_subtree(-1, 0)


# --------------------------------------------------------------------------------------------
# Each failure has its own reason


def _reason(call: Callable[[], object]) -> str:
    with pytest.raises(ProofError) as info:
        call()
    return str(info.value)


def test_inclusion_failure_reasons() -> None:
    proof = TREE.inclusion_proof(3, 5)
    assert len(proof) == 3
    assert "index 7 is not below tree size 5" in _reason(
        lambda: verify_inclusion(7, 5, LEAVES[3], proof, ROOTS[5])
    )
    assert "proof has 2 hashes, expected 3" in _reason(
        lambda: verify_inclusion(3, 5, LEAVES[3], proof[:2], ROOTS[5])
    )
    assert "calculated root differs from the expected root" in _reason(
        lambda: verify_inclusion(3, 5, LEAVES[3], proof, ROOTS[4])
    )
    assert "a 32-byte root is required" in _reason(
        lambda: verify_inclusion(3, 5, LEAVES[3], proof, ROOTS[5][:31])
    )
    assert "a 32-byte leaf hash is required" in _reason(
        lambda: verify_inclusion(3, 5, b"x", proof, ROOTS[5])
    )
    assert "proof hash 1 has 31 bytes" in _reason(
        lambda: verify_inclusion(3, 5, LEAVES[3], [proof[0], proof[1][:31], proof[2]], ROOTS[5])
    )
    assert "index -1 is negative" in _reason(
        lambda: verify_inclusion(-1, 5, LEAVES[3], proof, ROOTS[5])
    )
    assert "is not below tree size 0" in _reason(lambda: root_from_inclusion(0, 0, LEAVES[0], []))


def test_consistency_failure_reasons() -> None:
    proof = TREE.consistency_proof(3, 7)
    assert "first tree size 8 is larger than second tree size 7" in _reason(
        lambda: verify_consistency(8, 7, proof, ROOTS[3], ROOTS[7])
    )
    assert "the empty tree" in _reason(lambda: verify_consistency(0, 7, [], EMPTY_ROOT, ROOTS[7]))
    assert f"proof has {len(proof) - 1} hashes, expected {len(proof)}" in _reason(
        lambda: verify_consistency(3, 7, proof[1:], ROOTS[3], ROOTS[7])
    )
    assert "calculated first root differs" in _reason(
        lambda: verify_consistency(3, 7, proof, ROOTS[2], ROOTS[7])
    )
    assert "calculated root differs from the expected root" in _reason(
        lambda: verify_consistency(3, 7, proof, ROOTS[3], ROOTS[6])
    )
    assert "two different roots for the same tree size 4" in _reason(
        lambda: verify_consistency(4, 4, [], ROOTS[4], ROOTS[3])
    )
    assert "proof has 1 hashes, expected 0" in _reason(
        lambda: verify_consistency(4, 4, [ROOTS[1]], ROOTS[4], ROOTS[4])
    )
    assert "a 32-byte root (first) is required" in _reason(
        lambda: verify_consistency(3, 7, proof, b"", ROOTS[7])
    )


def test_subtree_failure_reasons() -> None:
    node = TREE.subtree_hash(4, 8)
    proof = TREE.subtree_inclusion_proof(5, 4, 8)
    assert "not a valid subtree" in _reason(
        lambda: verify_subtree_inclusion(5, 3, 8, LEAVES[5], proof, node)
    )
    assert "index 9 is outside the subtree [4, 8)" in _reason(
        lambda: verify_subtree_inclusion(9, 4, 8, LEAVES[5], proof, node)
    )
    consistency = TREE.subtree_consistency_proof(4, 8, 11)
    assert "ends past tree size 7" in _reason(
        lambda: verify_subtree_consistency(4, 8, 7, consistency, node, ROOTS[7])
    )
    assert "calculated root differs" in _reason(
        lambda: verify_subtree_consistency(4, 8, 11, consistency, node, ROOTS[10])
    )
    assert "calculated subtree root differs" in _reason(
        lambda: verify_subtree_consistency(
            8, 11, 13, TREE.subtree_consistency_proof(8, 11, 13), ROOTS[3], ROOTS[13]
        )
    )
    assert "empty subtree" in _reason(
        lambda: verify_subtree_consistency(2, 2, 4, [], ROOTS[1], ROOTS[4])
    )
    verify_subtree_consistency(2, 2, 4, [], EMPTY_ROOT, ROOTS[4])


def test_proof_error_is_a_verification_error() -> None:
    assert issubclass(ProofError, VerificationError)


def test_bad_generation_arguments_are_input_errors() -> None:
    with pytest.raises(InputError, match="index 5 is not below tree size 5"):
        inclusion_proof(5, LEAVES[:5])
    with pytest.raises(InputError):
        consistency_proof(0, LEAVES[:5])
    with pytest.raises(InputError):
        consistency_proof(6, LEAVES[:5])
    with pytest.raises(InputError):
        root([b"short"])
    with pytest.raises(InputError):
        TREE.inclusion_proof(0, N + 1)
    with pytest.raises(InputError):
        subtree_consistency_proof(1, 3, LEAVES[:4])
    with pytest.raises(InputError):
        subtree_inclusion_proof(3, 0, 2, LEAVES[:4])
    with pytest.raises(InputError):
        MerkleTree().append(b"short")


# --------------------------------------------------------------------------------------------
# Properties: any change makes the proof fail


def _altered(proof: Sequence[bytes], position: int, bit: int) -> list[bytes]:
    changed = list(proof)
    value = bytearray(changed[position])
    value[bit // 8] ^= 1 << (bit % 8)
    changed[position] = bytes(value)
    return changed


sizes = st.integers(min_value=1, max_value=N)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=sizes)
def test_inclusion_proofs_resist_tampering(data: st.DataObject, n: int) -> None:
    i = data.draw(st.integers(0, n - 1), label="index")
    proof = TREE.inclusion_proof(i, n)
    verify_inclusion(i, n, LEAVES[i], proof, ROOTS[n])
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(ProofError):
            verify_inclusion(i, n, LEAVES[i], _altered(proof, position, bit), ROOTS[n])
        with pytest.raises(ProofError):
            verify_inclusion(i, n, LEAVES[i], proof[:-1], ROOTS[n])
    with pytest.raises(ProofError):
        verify_inclusion(i, n, LEAVES[i], [*proof, ROOTS[n]], ROOTS[n])
    bit = data.draw(st.integers(0, 255), label="root bit")
    with pytest.raises(ProofError):
        verify_inclusion(i, n, LEAVES[i], proof, _altered([ROOTS[n]], 0, bit)[0])
    with pytest.raises(ProofError):
        verify_inclusion(i, n, _altered([LEAVES[i]], 0, bit)[0], proof, ROOTS[n])
    j = data.draw(st.integers(0, N).filter(lambda j: j != i), label="wrong index")
    with pytest.raises(ProofError):
        verify_inclusion(j, n, LEAVES[i], proof, ROOTS[n])
    # Another size, checked against the genuine root of that size.
    m = data.draw(sizes.filter(lambda m: m != n and m > i), label="wrong size")
    with pytest.raises(ProofError):
        verify_inclusion(i, m, LEAVES[i], proof, ROOTS[m])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=sizes)
def test_consistency_proofs_resist_tampering(data: st.DataObject, n: int) -> None:
    m = data.draw(st.integers(1, n), label="size1")
    proof = TREE.consistency_proof(m, n)
    verify_consistency(m, n, proof, ROOTS[m], ROOTS[n])
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(ProofError):
            verify_consistency(m, n, _altered(proof, position, bit), ROOTS[m], ROOTS[n])
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof[:-1], ROOTS[m], ROOTS[n])
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof[1:], ROOTS[m], ROOTS[n])
    with pytest.raises(ProofError):
        verify_consistency(m, n, [*proof, ROOTS[1]], ROOTS[m], ROOTS[n])
    bit = data.draw(st.integers(0, 255), label="root bit")
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, _altered([ROOTS[m]], 0, bit)[0], ROOTS[n])
    with pytest.raises(ProofError):
        verify_consistency(m, n, proof, ROOTS[m], _altered([ROOTS[n]], 0, bit)[0])
    # Other sizes, checked against the genuine roots of those sizes.
    m2 = data.draw(st.integers(1, n).filter(lambda x: x != m), label="wrong size1")
    with pytest.raises(ProofError):
        verify_consistency(m2, n, proof, ROOTS[m2], ROOTS[n])
    n2 = data.draw(st.integers(m, N).filter(lambda x: x != n), label="wrong size2")
    with pytest.raises(ProofError):
        verify_consistency(m, n2, proof, ROOTS[m], ROOTS[n2])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(min_value=2, max_value=N))
def test_subtree_proofs_resist_tampering(data: st.DataObject, n: int) -> None:
    start, end = data.draw(st.sampled_from([s for s in VALID_SUBTREES if s[1] <= n]))
    node = TREE.subtree_hash(start, end)
    proof = TREE.subtree_consistency_proof(start, end, n)
    verify_subtree_consistency(start, end, n, proof, node, ROOTS[n])
    bit = data.draw(st.integers(0, 255), label="bit")
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        with pytest.raises(ProofError):
            verify_subtree_consistency(
                start, end, n, _altered(proof, position, bit), node, ROOTS[n]
            )
        with pytest.raises(ProofError):
            verify_subtree_consistency(start, end, n, proof[:-1], node, ROOTS[n])
    with pytest.raises(ProofError):
        verify_subtree_consistency(start, end, n, [*proof, node], node, ROOTS[n])
    with pytest.raises(ProofError):
        verify_subtree_consistency(start, end, n, proof, _altered([node], 0, bit)[0], ROOTS[n])
    with pytest.raises(ProofError):
        verify_subtree_consistency(start, end, n, proof, node, _altered([ROOTS[n]], 0, bit)[0])

    i = data.draw(st.integers(start, end - 1), label="index")
    inclusion = TREE.subtree_inclusion_proof(i, start, end)
    verify_subtree_inclusion(i, start, end, LEAVES[i], inclusion, node)
    with pytest.raises(ProofError):
        verify_subtree_inclusion(i, start, end, LEAVES[i], inclusion, _altered([node], 0, bit)[0])
    if inclusion:
        position = data.draw(st.integers(0, len(inclusion) - 1), label="inclusion position")
        with pytest.raises(ProofError):
            verify_subtree_inclusion(
                i, start, end, LEAVES[i], _altered(inclusion, position, bit), node
            )


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(-5, 2**70),
    size=st.integers(-5, 2**70),
    proof=st.lists(st.binary(min_size=0, max_size=40), max_size=80),
    leaf=st.binary(min_size=0, max_size=40),
    root_hash=st.binary(min_size=0, max_size=40),
)
def test_verifiers_only_raise_proof_error(
    index: int, size: int, proof: list[bytes], leaf: bytes, root_hash: bytes
) -> None:
    """Hostile arguments never crash a verifier: they verify or raise ProofError."""
    calls: list[Callable[[], None]] = [
        lambda: verify_inclusion(index, size, leaf, proof, root_hash),
        lambda: verify_consistency(index, size, proof, leaf, root_hash),
        lambda: verify_subtree_inclusion(index, index, size, leaf, proof, root_hash),
        lambda: verify_subtree_consistency(index, size, size, proof, leaf, root_hash),
        lambda: verify_subtree_consistency(0, index, size, proof, leaf, root_hash),
    ]
    for call in calls:
        with contextlib.suppress(ProofError):
            call()


# --------------------------------------------------------------------------------------------
# Speed: a 2^20-leaf inclusion proof (20 hashes) verifies in well under a millisecond


def test_verify_inclusion_at_a_million_leaves_is_fast() -> None:
    size, index = 1 << 20, 123_457
    proof = [leaf_hash(i.to_bytes(4, "big")) for i in range(20)]
    expected = root_from_inclusion(index, size, LEAVES[0], proof)
    runs = 2000
    began = time.perf_counter()
    for _ in range(runs):
        verify_inclusion(index, size, LEAVES[0], proof, expected)
    per_call = (time.perf_counter() - began) / runs
    assert per_call < 0.5e-3, f"verify_inclusion took {per_call * 1e6:.0f} us"
