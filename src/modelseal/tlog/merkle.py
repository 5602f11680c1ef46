"""RFC 9162 section 2.1 Merkle tree proofs: generation (reference) and verification.

Generation works on a list of leaf hashes (``leaf_hash(entry)`` of each entry)::

    root(leaves)                          MTH(D[n])                         section 2.1.1
    inclusion_proof(m, leaves)            PATH(m, D[n])                     section 2.1.3.1
    consistency_proof(m, leaves)          PROOF(m, D[n])                    section 2.1.4.1
    subtree_inclusion_proof(...)          inclusion in the subtree [start, end)
    subtree_consistency_proof(...)        SUBTREE_PROOF(start, end, D[n])

These module functions are the literal O(n) definitions, for tests and small logs;
:class:`MerkleTree` keeps the hashes of complete subtrees in memory and answers the same
questions in O(log^2 n) hashes.

Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2, and the subtree proofs of the Merkle
Tree Certificates draft, draft-ietf-plants-merkle-tree-certs sections 4.3-4.4) raises
:class:`ProofError`, whose message names the check that failed (a wrong proof length, an
index outside the tree, a root that does not match, ...). A *subtree* ``[start, end)`` is
valid when ``start < end`` and ``start`` is a multiple of the smallest power of two that is at
least ``end - start``: it is then a node, or a left-aligned part of a node, of every tree that
contains it.

Generation with impossible arguments (an index past the end, ...) raises
:class:`~modelseal.errors.InputError`: that is a bad request, not bad bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from modelseal.errors import InputError, VerificationError
from modelseal.tlog.hashing import EMPTY_ROOT, HASH_SIZE, node_hash, split_point

__all__ = [
    "MerkleTree",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "is_valid_subtree",
    "root",
    "root_from_inclusion",
    "subtree_consistency_proof",
    "subtree_hash",
    "subtree_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify; the message says why."""


# --------------------------------------------------------------------------------------------
# Shared helpers


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a non-empty subtree: ``start`` is a multiple of the smallest
    power of two that is at least ``end - start``."""
    if not 0 <= start < end:
        return False
    width = end - start
    ceiling = 1 << (width - 1).bit_length()  # smallest power of two >= width
    return start % ceiling == 0


def _subtree_problem(start: int, end: int) -> str | None:
    if start < 0:
        return f"subtree start {start} is negative"
    if start >= end:
        return f"subtree [{start}, {end}) is empty or reversed"
    if not is_valid_subtree(start, end):
        ceiling = 1 << (end - start - 1).bit_length()
        return (
            f"[{start}, {end}) is not a valid subtree: start {start} is not a multiple of {ceiling}"
        )
    return None


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProofError(f"a {HASH_SIZE}-byte {what} is required, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"a {HASH_SIZE}-byte {what} is required, got {len(value)} bytes")


def _check_proof(proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise ProofError(f"proof has {len(proof)} hashes, expected {expected}")
    for i, value in enumerate(proof):
        if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
            size = len(value) if isinstance(value, bytes | bytearray | memoryview) else "no"
            raise ProofError(f"proof hash {i} has {size} bytes, expected {HASH_SIZE}")


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise ProofError(f"{what} {value} is negative")


def _same(calculated: bytes, expected: bytes) -> bool:
    return bytes(calculated) == bytes(expected)


# --------------------------------------------------------------------------------------------
# Reference generation over a list of leaf hashes (RFC 9162 sections 2.1.1, 2.1.3.1, 2.1.4.1)


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]), iteratively: merge complete subtrees like a binary counter."""
    if hi <= lo:
        return EMPTY_ROOT
    stack: list[bytes] = []  # hashes of complete subtrees, largest first
    for count in range(hi - lo):
        value = leaves[lo + count]
        while count & 1:  # each trailing one bit of count closes a complete subtree
            value = node_hash(stack.pop(), value)
            count >>= 1
        stack.append(value)
    value = stack.pop()
    while stack:
        value = node_hash(stack.pop(), value)
    return value


def _leaf_list(leaf_hashes: Sequence[bytes]) -> Sequence[bytes]:
    for i, value in enumerate(leaf_hashes):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise InputError(f"leaf hash {i} is not {HASH_SIZE} bytes")
    return leaf_hashes


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the given leaf hashes; the empty tree has ``EMPTY_ROOT``."""
    leaves = _leaf_list(leaf_hashes)
    return _mth(leaves, 0, len(leaves))


def subtree_hash(start: int, end: int, leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[start:end]), the hash of the subtree ``[start, end)``."""
    leaves = _leaf_list(leaf_hashes)
    if not 0 <= start <= end <= len(leaves):
        raise InputError(f"[{start}, {end}) is not within a tree of size {len(leaves)}")
    return _mth(leaves, start, end)


def _path(m: int, leaves: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]), leaf first."""
    siblings: list[bytes] = []  # root level first
    while hi - lo > 1:
        k = split_point(hi - lo)
        if m < k:
            siblings.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            siblings.append(_mth(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    siblings.reverse()
    return siblings


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) with n = len(leaf_hashes): the audit path of leaf ``index``."""
    leaves = _leaf_list(leaf_hashes)
    if not 0 <= index < len(leaves):
        raise InputError(f"index {index} is not below tree size {len(leaves)}")
    return _path(index, leaves, 0, len(leaves))


def _subtree_proof(
    start: int, end: int, leaves: Sequence[bytes], lo: int, hi: int, known: bool
) -> list[bytes]:
    """SUBTREE_SUBPROOF(start, end, D[lo:hi], known), start/end relative to lo.

    With ``start == 0`` this is RFC 9162's SUBPROOF(end, D[lo:hi], known).
    """
    suffix: list[bytes] = []  # outermost first, reversed at the end
    while not (start == 0 and end == hi - lo):
        k = split_point(hi - lo)
        if end <= k:  # the subtree is in the left half
            suffix.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        elif start >= k:  # the subtree is in the right half
            suffix.append(_mth(leaves, lo, lo + k))
            lo, start, end = lo + k, start - k, end - k
        else:  # start == 0 < k < end: the left half lies inside the subtree
            suffix.append(_mth(leaves, lo, lo + k))
            lo, end, known = lo + k, end - k, False
    suffix.reverse()  # the innermost hash comes first
    return ([] if known else [_mth(leaves, lo, hi)]) + suffix


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(size1, D[n]) with n = len(leaf_hashes): tree size1 is a prefix of tree n.

    ``0 < size1 <= n``; the proof between equal sizes is empty.
    """
    leaves = _leaf_list(leaf_hashes)
    if not 0 < size1 <= len(leaves):
        raise InputError(f"no consistency proof from tree size {size1} to tree size {len(leaves)}")
    return _subtree_proof(0, size1, leaves, 0, len(leaves), True)


def subtree_inclusion_proof(
    index: int, start: int, end: int, leaf_hashes: Sequence[bytes]
) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the subtree ``[start, end)``."""
    leaves = _leaf_list(leaf_hashes)
    problem = _subtree_problem(start, end)
    if problem is not None or end > len(leaves):
        raise InputError(problem or f"subtree [{start}, {end}) ends past tree size {len(leaves)}")
    if not start <= index < end:
        raise InputError(f"index {index} is outside the subtree [{start}, {end})")
    return _path(index - start, leaves, start, end)


def subtree_consistency_proof(start: int, end: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """SUBTREE_PROOF(start, end, D[n]): the subtree ``[start, end)`` is part of tree n."""
    leaves = _leaf_list(leaf_hashes)
    problem = _subtree_problem(start, end)
    if problem is not None or end > len(leaves):
        raise InputError(problem or f"subtree [{start}, {end}) ends past tree size {len(leaves)}")
    return _subtree_proof(start, end, leaves, 0, len(leaves), True)


# --------------------------------------------------------------------------------------------
# An in-memory tree with cached complete subtrees


class MerkleTree:
    """Leaf hashes plus the hash of every complete (power-of-two, aligned) subtree.

    Appending is amortised O(1) hashes; roots and proofs for any earlier size cost
    O(log^2 n) hashes, because complete subtrees never change once they exist.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        # _levels[h][i] is the hash of the complete subtree [i * 2^h, (i + 1) * 2^h).
        self._levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append(value)

    def __len__(self) -> int:
        return len(self._levels[0])

    def __repr__(self) -> str:
        return f"MerkleTree(size={len(self)})"

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def append(self, leaf_hash: bytes) -> int:
        """Add one leaf hash; returns its index."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise InputError(f"a leaf hash must be {HASH_SIZE} bytes")
        index = len(self._levels[0])
        self._levels[0].append(leaf_hash)
        value, level, position = leaf_hash, 0, index
        while position & 1:
            value = node_hash(self._levels[level][position - 1], value)
            level, position = level + 1, position >> 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(value)
        return index

    def _hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for any range of stored leaves."""
        width = hi - lo
        if width <= 0:
            return EMPTY_ROOT
        if width & (width - 1) == 0 and lo % width == 0:
            return self._levels[width.bit_length() - 1][lo // width]
        k = split_point(width)
        return node_hash(self._hash(lo, lo + k), self._hash(lo + k, hi))

    def _size(self, size: int | None) -> int:
        if size is None:
            return len(self)
        if not 0 <= size <= len(self):
            raise InputError(f"tree size {size} is not within 0..{len(self)}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first ``size`` leaves (default: all)."""
        return self._hash(0, self._size(size))

    def subtree_hash(self, start: int, end: int) -> bytes:
        if not 0 <= start <= end <= len(self):
            raise InputError(f"[{start}, {end}) is not within a tree of size {len(self)}")
        return self._hash(start, end)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        siblings: list[bytes] = []
        while hi - lo > 1:
            k = split_point(hi - lo)
            if m < k:
                siblings.append(self._hash(lo + k, hi))
                hi = lo + k
            else:
                siblings.append(self._hash(lo, lo + k))
                lo, m = lo + k, m - k
        siblings.reverse()
        return siblings

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size])."""
        n = self._size(size)
        if not 0 <= index < n:
            raise InputError(f"index {index} is not below tree size {n}")
        return self._path(index, 0, n)

    def _subproof(self, start: int, end: int, n: int) -> list[bytes]:
        lo, hi, known = 0, n, True
        suffix: list[bytes] = []
        while not (start == 0 and end == hi - lo):
            k = split_point(hi - lo)
            if end <= k:
                suffix.append(self._hash(lo + k, hi))
                hi = lo + k
            elif start >= k:
                suffix.append(self._hash(lo, lo + k))
                lo, start, end = lo + k, start - k, end - k
            else:
                suffix.append(self._hash(lo, lo + k))
                lo, end, known = lo + k, end - k, False
        suffix.reverse()
        return ([] if known else [self._hash(lo, hi)]) + suffix

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[size2]); ``0 < size1 <= size2``."""
        n = self._size(size2)
        if not 0 < size1 <= n:
            raise InputError(f"no consistency proof from tree size {size1} to tree size {n}")
        return self._subproof(0, size1, n)

    def subtree_inclusion_proof(self, index: int, start: int, end: int) -> list[bytes]:
        problem = _subtree_problem(start, end)
        if problem is not None or end > len(self):
            raise InputError(problem or f"subtree [{start}, {end}) ends past tree size {len(self)}")
        if not start <= index < end:
            raise InputError(f"index {index} is outside the subtree [{start}, {end})")
        return self._path(index - start, start, end)

    def subtree_consistency_proof(
        self, start: int, end: int, size: int | None = None
    ) -> list[bytes]:
        n = self._size(size)
        problem = _subtree_problem(start, end)
        if problem is not None or end > n:
            raise InputError(problem or f"subtree [{start}, {end}) ends past tree size {n}")
        return self._subproof(start, end, n)


# --------------------------------------------------------------------------------------------
# Verification


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` gives for ``leaf_hash`` at ``index`` in a tree of ``size``.

    RFC 9162 section 2.1.3.2, with the proof length checked first: the path splits into the
    "inner" part below the level where the paths to ``index`` and ``size - 1`` meet (siblings
    on either side, as the bits of ``index`` say) and the "border" part above it (left
    siblings only, one per set bit of ``index`` there).
    """
    _check_size(index, "index")
    _check_size(size, "tree size")
    if index >= size:
        raise ProofError(f"index {index} is not below tree size {size}")
    _check_hash(leaf_hash, "leaf hash")
    inner = (index ^ (size - 1)).bit_length()
    _check_proof(proof, inner + (index >> inner).bit_count())
    value = bytes(leaf_hash)
    for level, sibling in enumerate(proof):
        if level < inner and not (index >> level) & 1:
            value = node_hash(value, bytes(sibling))
        else:
            value = node_hash(bytes(sibling), value)
    return value


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``."""
    _check_hash(root, "root")
    calculated = root_from_inclusion(index, size, leaf_hash, proof)
    if not _same(calculated, root):
        raise ProofError(
            f"inclusion proof of leaf {index} in tree size {size}: "
            "calculated root differs from the expected root"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size1`` leaves with ``root1`` is a prefix of the tree of
    ``size2`` leaves with ``root2`` (RFC 9162 section 2.1.4.2).

    Equal sizes need an empty proof and equal roots (compared as given, without a length
    check: nothing is hashed, as in transparency-dev/merkle, whose vectors expect this). A
    consistency proof from the empty tree is refused: every tree extends it, so there is
    nothing to prove.
    """
    _check_size(size1, "first tree size")
    _check_size(size2, "second tree size")
    if size1 > size2:
        raise ProofError(f"first tree size {size1} is larger than second tree size {size2}")
    if size1 == 0:
        raise ProofError("first tree size is 0: the empty tree has no consistency proof")
    if size1 == size2:
        _check_proof(proof, 0)
        if not _same(root1, root2):
            raise ProofError(f"two different roots for the same tree size {size1}")
        return
    _check_hash(root1, "root (first)")
    _check_hash(root2, "root (second)")

    fn, sn = size1 - 1, size2 - 1
    inner = (fn ^ sn).bit_length()
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    seeded = size1 == 1 << shift  # a complete subtree: its root is root1, not in the proof
    _check_proof(proof, (0 if seeded else 1) + inner - shift + (fn >> inner).bit_count())

    path = [bytes(root1), *map(bytes, proof)] if seeded else [bytes(h) for h in proof]
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if not _same(fr, root1):
        raise ProofError(
            f"consistency proof {size1} -> {size2}: calculated first root differs from "
            "the expected root"
        )
    if not _same(sr, root2):
        raise ProofError(
            f"consistency proof {size1} -> {size2}: calculated root differs from the expected root"
        )


def verify_subtree_inclusion(
    index: int,
    start: int,
    end: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    subtree_root: bytes,
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the subtree ``[start, end)`` whose hash is
    ``subtree_root``: an inclusion proof of ``index - start`` in a tree of ``end - start``."""
    _check_size(index, "index")
    _check_size(start, "subtree start")
    _check_size(end, "subtree end")
    problem = _subtree_problem(start, end)
    if problem is not None:
        raise ProofError(problem)
    if not start <= index < end:
        raise ProofError(f"index {index} is outside the subtree [{start}, {end})")
    _check_hash(subtree_root, "subtree root")
    calculated = root_from_inclusion(index - start, end - start, leaf_hash, proof)
    if not _same(calculated, subtree_root):
        raise ProofError(
            f"inclusion proof of leaf {index} in subtree [{start}, {end}): "
            "calculated root differs from the expected root"
        )


def _subtree_proof_length(start: int, end: int, size: int) -> int:
    """The number of hashes in SUBTREE_PROOF(start, end, D[size]), O(log size)."""
    count, known = 0, True
    while not (start == 0 and end == size):
        k = split_point(size)
        count += 1
        if end <= k:
            size = k
        elif start >= k:
            start, end, size = start - k, end - k, size - k
        else:
            end, size, known = end - k, size - k, False
    return count + (0 if known else 1)


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    proof: Sequence[bytes],
    subtree_root: bytes,
    root: bytes,
) -> None:
    """Check that the subtree ``[start, end)`` with hash ``subtree_root`` is part of the tree of
    ``size`` leaves with ``root`` (MTC draft section 4.4.3; with ``start == 0`` this is RFC 9162
    consistency). An empty subtree (``start == end <= size``) is part of every tree: it needs
    an empty proof and the hash of the empty tree, and ``root`` is not looked at. The whole
    tree (``[0, size)``) needs an empty proof and ``subtree_root == root``; these two cases
    hash nothing, so, as in transparency-dev/merkle, the roots are not length-checked."""
    _check_size(start, "subtree start")
    _check_size(end, "subtree end")
    _check_size(size, "tree size")
    if start > end:
        raise ProofError(f"subtree start {start} is larger than its end {end}")
    if end > size:
        raise ProofError(f"subtree [{start}, {end}) ends past tree size {size}")
    if start == end:
        _check_proof(proof, 0)
        if not _same(subtree_root, EMPTY_ROOT):
            raise ProofError("an empty subtree must have the hash of the empty tree")
        return
    problem = _subtree_problem(start, end)
    if problem is not None:
        raise ProofError(problem)
    if start == 0 and end == size:
        _check_proof(proof, 0)
        if not _same(subtree_root, root):
            raise ProofError(f"two different roots for the same tree [0, {size})")
        return
    _check_hash(subtree_root, "subtree root")
    _check_hash(root, "root")
    _check_proof(proof, _subtree_proof_length(start, end, size))

    # fn, sn, tn: the subtree's first leaf, its last leaf and the tree's last leaf, climbing
    # one level per right shift. fr rebuilds the subtree hash, sr the tree root.
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        while fn != sn:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    else:
        while fn != sn and sn & 1:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    hashes = [bytes(h) for h in proof]
    if fn == sn:
        fr = sr = bytes(subtree_root)
    else:
        fr = sr = hashes.pop(0)
    for c in hashes:
        if tn == 0:
            raise ProofError("subtree consistency proof is too long")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not sn & 1:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if tn != 0:
        raise ProofError("subtree consistency proof is too short")
    if not _same(fr, subtree_root):
        raise ProofError(
            f"subtree consistency proof [{start}, {end}) -> {size}: calculated subtree root "
            "differs from the expected root"
        )
    if not _same(sr, root):
        raise ProofError(
            f"subtree consistency proof [{start}, {end}) -> {size}: calculated root differs "
            "from the expected root"
        )
