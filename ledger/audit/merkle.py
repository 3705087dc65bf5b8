"""RFC 9162 Merkle trees: roots and proofs from stored perfect-subtree hashes, and the append builder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ledger.audit.leaf import node_hash
from ledger.audit.merkle_proofs import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    consistency_proof_length,
    inclusion_proof_length,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "GetNode",
    "Node",
    "ProofError",
    "TreeBuilder",
    "consistency_proof",
    "consistency_proof_length",
    "consistency_proof_nodes",
    "consistency_proof_reference",
    "inclusion_proof",
    "inclusion_proof_length",
    "inclusion_proof_nodes",
    "inclusion_proof_reference",
    "perfect_subtrees",
    "root",
    "root_from_subtrees",
    "subtree_ranges",
    "verify_consistency",
    "verify_inclusion",
]

#: A perfect subtree (level, index): the 2**level leaves [index * 2**level, (index + 1) * 2**level).
Node = tuple[int, int]
#: Returns the stored hash of a perfect subtree, given its level and index.
GetNode = Callable[[int, int], bytes]


# --- reference definitions (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1), O(n) hashes per call ---------------


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH: the root of the tree whose leaves have these leaf hashes (the recursive definition)."""
    return _mth(leaf_hashes, 0, len(leaf_hashes)) if leaf_hashes else EMPTY_ROOT


def inclusion_proof_reference(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]): the inclusion proof of leaf ``index``, leaf to root (the definition)."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf index {index} is not in a tree of size {len(leaf_hashes)}")
    return _path(leaf_hashes, index, 0, len(leaf_hashes))


def consistency_proof_reference(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof from size ``old_size`` (the definition).

    Empty when ``old_size`` is 0 or the whole tree; RFC 9162 defines PROOF only for 0 < m < n.
    """
    if not 0 <= old_size <= len(leaf_hashes):
        raise ValueError(f"no consistency proof from size {old_size} to size {len(leaf_hashes)}")
    if old_size in (0, len(leaf_hashes)):
        return []
    return _subproof(leaf_hashes, old_size, 0, len(leaf_hashes), whole=True)


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` >= 2): where RFC 9162 splits."""
    return 1 << ((size - 1).bit_length() - 1)


def _mth(h: Sequence[bytes], lo: int, hi: int) -> bytes:
    if hi - lo == 1:
        return h[lo]
    mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))  # _split, inlined: tests call this a lot
    return node_hash(_mth(h, lo, mid), _mth(h, mid, hi))


def _path(h: Sequence[bytes], index: int, lo: int, hi: int) -> list[bytes]:
    if hi - lo == 1:
        return []
    mid = lo + _split(hi - lo)
    if index < mid:
        return [*_path(h, index, lo, mid), _mth(h, mid, hi)]
    return [*_path(h, index, mid, hi), _mth(h, lo, mid)]


def _subproof(h: Sequence[bytes], m: int, lo: int, hi: int, *, whole: bool) -> list[bytes]:
    # ``m`` counts the old tree's leaves from ``lo``. ``whole`` is the RFC's flag b, true while
    # [lo, hi) starts at leaf 0: if the old tree ends at ``hi`` then, this subtree's hash is the
    # old root, which the verifier already has, so it is left out.
    if m == hi - lo:
        return [] if whole else [_mth(h, lo, hi)]
    k = _split(hi - lo)
    if m <= k:
        return [*_subproof(h, m, lo, lo + k, whole=whole), _mth(h, lo + k, hi)]
    return [*_subproof(h, m - k, lo + k, hi, whole=False), _mth(h, lo, lo + k)]


# --- perfect subtrees --------------------------------------------------------------------------------


def perfect_subtrees(start: int, end: int) -> list[Node]:
    """The fewest perfect subtrees (level, index) that tile the leaves [start, end), left to right.

    For a range that is a node of some RFC 9162 tree (every range a root or a proof needs), the
    subtrees come largest first and the range's hash is their hashes folded from the right:
    ``node_hash(h0, node_hash(h1, ... node_hash(h_{k-2}, h_{k-1})))``.
    """
    _check_count("start", start)
    _check_count("end", end)
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            # A subtree at ``level`` must start at a multiple of 2**level.
            level = min(level, (start & -start).bit_length() - 1)
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def subtree_ranges(size: int) -> list[Node]:
    """The perfect subtrees (level, index) that tile a tree of ``size`` leaves, largest first.

    One per set bit of ``size``: these are the hashes TreeBuilder keeps as its frontier.
    """
    _check_count("tree size", size)
    return perfect_subtrees(0, size)


def _fold(nodes: Sequence[Node], get: GetNode) -> bytes:
    level, index = nodes[-1]
    h = get(level, index)
    for level, index in reversed(nodes[:-1]):
        h = node_hash(get(level, index), h)
    return h


def root_from_subtrees(size: int, get: GetNode) -> bytes:
    """The root of the tree of ``size`` leaves, from at most popcount(size) stored subtree hashes."""
    _check_count("tree size", size)
    return _fold(perfect_subtrees(0, size), get) if size else EMPTY_ROOT


# --- proofs from perfect subtrees ----------------------------------------------------------------------
# A proof is planned first as one list of perfect subtrees per proof hash, so that a store can fetch
# every node a proof needs in one query (the *_nodes functions) and then compute it.


def _inclusion_plan(index: int, size: int) -> list[list[Node]]:
    # Walk PATH from the root down; the ranges it hashes are siblings of the path. Only the first
    # right-hand sibling (on the right edge) can be imperfect: after the first step left, the walk
    # stays inside a perfect subtree, so the plan holds O(log n) nodes.
    plan: list[list[Node]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            plan.append(perfect_subtrees(mid, hi))
            hi = mid
        else:
            plan.append(perfect_subtrees(lo, mid))
            lo = mid
    plan.reverse()  # proofs list hashes from the leaf up
    return plan


def _consistency_plan(old_size: int, size: int) -> list[list[Node]]:
    # SUBPROOF walked from the root down, as in _subproof (``m`` counts old leaves from ``lo``).
    if old_size in (0, size):
        return []
    plan: list[list[Node]] = []
    m, lo, hi, whole = old_size, 0, size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            plan.append(perfect_subtrees(lo + k, hi))
            hi = lo + k
        else:
            plan.append(perfect_subtrees(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        plan.append(perfect_subtrees(lo, hi))
    plan.reverse()
    return plan


def _distinct(plan: list[list[Node]]) -> list[Node]:
    return list(dict.fromkeys(node for nodes in plan for node in nodes))


def inclusion_proof_nodes(index: int, size: int) -> list[Node]:
    """The perfect subtrees ``inclusion_proof(index, size, get)`` reads (at most 2·log2(size))."""
    _check_leaf(index, size)
    return _distinct(_inclusion_plan(index, size))


def consistency_proof_nodes(old_size: int, size: int) -> list[Node]:
    """The perfect subtrees ``consistency_proof(old_size, size, get)`` reads (O(log size))."""
    _check_sizes(old_size, size)
    return _distinct(_consistency_plan(old_size, size))


def inclusion_proof(index: int, size: int, get: GetNode) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves, leaf to root.

    Equal to ``inclusion_proof_reference`` but computed from O(log size) perfect-subtree hashes.
    """
    _check_leaf(index, size)
    return [_fold(nodes, get) for nodes in _inclusion_plan(index, size)]


def consistency_proof(old_size: int, size: int, get: GetNode) -> list[bytes]:
    """The RFC 9162 consistency proof from size ``old_size`` to ``size`` (empty if 0 or equal).

    Equal to ``consistency_proof_reference`` but computed from O(log size) perfect-subtree hashes.
    """
    _check_sizes(old_size, size)
    return [_fold(nodes, get) for nodes in _consistency_plan(old_size, size)]


def _check_count(name: str, value: object) -> None:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _check_leaf(index: int, size: int) -> None:
    _check_count("leaf index", index)
    _check_count("tree size", size)
    if index >= size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")


def _check_sizes(old_size: int, size: int) -> None:
    _check_count("old size", old_size)
    _check_count("tree size", size)
    if old_size > size:
        raise ValueError(f"old size {old_size} is larger than tree size {size}")


# --- appending ---------------------------------------------------------------------------------------


class TreeBuilder:
    """Appends leaf hashes to a tree, reporting every perfect subtree each append completes.

    The state is the frontier: the hashes of ``subtree_ranges(size)``, largest first. Appending
    merges the new leaf with the frontier's smallest subtrees while their sizes match, like a
    binary counter carrying, so it costs one node hash amortised (at most log2(size) at once).
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        _check_count("tree size", size)
        if len(frontier) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} frontier hash(es), got {len(frontier)}"
            )
        for i, h in enumerate(frontier):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise ValueError(f"frontier[{i}] must be a {HASH_SIZE}-byte hash")
        self._size = size
        self._frontier = list(frontier)

    @classmethod
    def from_subtrees(cls, size: int, get: GetNode) -> TreeBuilder:
        """The builder for a stored tree of ``size`` leaves, reading popcount(size) subtree hashes."""
        return cls(size, [get(level, index) for level, index in subtree_ranges(size)])

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def frontier(self) -> list[bytes]:
        """The hashes of ``subtree_ranges(size)``, largest first (a copy)."""
        return list(self._frontier)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf; returns the perfect subtrees (level, index, hash) it completes.

        The first is always the leaf itself, (0, its index, ``leaf_hash``); each next one is its
        parent, while the leaf completes it.
        """
        if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        index = self._size
        frontier = self._frontier
        completed = [(0, index, leaf_hash)]
        h = leaf_hash
        level = 0
        carry = index
        while carry & 1:  # the subtree to the left, of the same size, is complete: merge
            h = node_hash(frontier.pop(), h)
            carry >>= 1
            level += 1
            completed.append((level, carry, h))
        frontier.append(h)
        self._size = index + 1
        return completed

    def root(self) -> bytes:
        """The root of the tree of ``size`` leaves (EMPTY_ROOT for none)."""
        frontier = self._frontier
        if not frontier:
            return EMPTY_ROOT
        h = frontier[-1]
        for left in reversed(frontier[:-1]):
            h = node_hash(left, h)
        return h
