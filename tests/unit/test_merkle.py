"""Unit tests for the RFC 9162 Merkle tree: roots, proofs from perfect subtrees, verification, builder."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from functools import cache

import pytest

import ledger.audit.merkle as merkle_module
from ledger.audit.leaf import leaf_hash, node_hash
from ledger.audit.merkle import (
    EMPTY_ROOT,
    Node,
    ProofError,
    TreeBuilder,
    consistency_proof,
    consistency_proof_length,
    consistency_proof_nodes,
    consistency_proof_reference,
    inclusion_proof,
    inclusion_proof_length,
    inclusion_proof_nodes,
    inclusion_proof_reference,
    perfect_subtrees,
    root,
    root_from_subtrees,
    subtree_ranges,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 256

# The Certificate Transparency test tree: leaf inputs, and the root after each of them.
RFC_LEAVES = [
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
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
SOME_HASH = bytes.fromhex("0123456789abcdef" * 4)


def _leaves(count: int) -> list[bytes]:
    """Distinct leaf hashes; the first eight are the RFC test leaves."""
    inputs = RFC_LEAVES + [b"leaf %d" % i for i in range(len(RFC_LEAVES), count)]
    return [leaf_hash(data) for data in inputs[:count]]


def _perfect_table(leaf_hashes: list[bytes]) -> dict[Node, bytes]:
    """Every complete perfect subtree, built level by level (independently of the code under test)."""
    table: dict[Node, bytes] = {}
    level, row = 0, list(leaf_hashes)
    while row:
        table.update(((level, i), h) for i, h in enumerate(row))
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1
    return table


LEAVES = _leaves(MAX_SIZE)
TABLE = _perfect_table(LEAVES)


@cache
def _root_at(size: int) -> bytes:
    return root(LEAVES[:size])


class CountingGet:
    """A node store for a tree of ``size`` leaves that counts reads and refuses incomplete nodes."""

    def __init__(self, table: dict[Node, bytes] | None, size: int) -> None:
        # With no table every node reads as SOME_HASH: for counting reads in huge trees.
        self.table, self.size, self.calls = table, size, 0

    def __call__(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, f"({level}, {index}) is not complete at size {self.size}"
        self.calls += 1
        return SOME_HASH if self.table is None else self.table[(level, index)]


def _flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# --- roots --------------------------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert root_from_subtrees(0, CountingGet(TABLE, 0)) == EMPTY_ROOT
    assert TreeBuilder().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_test_roots(size: int) -> None:
    assert root(LEAVES[:size]).hex() == RFC_ROOTS[size - 1]
    assert root_from_subtrees(size, CountingGet(TABLE, size)).hex() == RFC_ROOTS[size - 1]


def test_single_leaf_root_is_its_leaf_hash() -> None:
    assert root([SOME_HASH]) == SOME_HASH


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, []),
        (1, [(0, 0)]),
        (6, [(2, 0), (1, 2)]),
        (7, [(2, 0), (1, 2), (0, 6)]),
        (8, [(3, 0)]),
        (13, [(3, 0), (2, 2), (0, 12)]),
        (2**40 + 3, [(40, 0), (1, 2**39), (0, 2**40 + 2)]),
    ],
)
def test_subtree_ranges(size: int, expected: list[Node]) -> None:
    assert subtree_ranges(size) == expected


def test_perfect_subtrees_tile_any_range() -> None:
    for start in range(70):
        for end in range(start, 70):
            nodes = perfect_subtrees(start, end)
            covered = [i for level, index in nodes for i in range(index << level, (index + 1) << level)]
            assert covered == list(range(start, end))
            # Fewest: no two neighbours are the two halves of one perfect subtree.
            assert not any(a[0] == b[0] and a[1] % 2 == 0 for a, b in itertools.pairwise(nodes))
            assert len(nodes) <= 2 * (end - start).bit_length()


def test_roots_up_to_max_size_match_the_definition() -> None:
    for size in range(MAX_SIZE + 1):
        get = CountingGet(TABLE, size)
        assert root_from_subtrees(size, get) == (_root_at(size) if size else EMPTY_ROOT)
        assert get.calls == size.bit_count()


# --- exhaustive proofs ----------------------------------------------------------------------------


def _neighbour_pairs(proof: list[bytes]) -> set[int]:
    """Where to swap proof[i] and proof[i + 1]: the lowest and the highest pair (every pair would
    double the run time of the exhaustive tests for little more coverage)."""
    return {0, len(proof) - 2} if len(proof) >= 2 else set()


def _inclusion_probes(
    index: int, size: int, leaf: bytes, proof: list[bytes], tree_root: bytes
) -> Iterator[tuple[str, tuple[int, int, bytes, list[bytes], bytes]]]:
    """Wrong claims built from a valid one; every one must be rejected."""
    yield "index - 1", (index - 1, size, leaf, proof, tree_root)
    yield "index + 1", (index + 1, size, leaf, proof, tree_root)
    yield "index ^ 1", (index ^ 1, size, leaf, proof, tree_root)
    yield "index ^ 2", (index ^ 2, size, leaf, proof, tree_root)
    yield "size * 2", (index, size * 2, leaf, proof, tree_root)
    yield "size // 2", (index, size // 2, leaf, proof, tree_root)
    yield "flipped leaf", (index, size, _flip(leaf), proof, tree_root)
    yield "flipped root", (index, size, leaf, proof, _flip(tree_root))
    yield "empty-tree root", (index, size, leaf, proof, EMPTY_ROOT)
    yield "short leaf", (index, size, leaf[:31], proof, tree_root)
    yield "hash appended", (index, size, leaf, [*proof, SOME_HASH], tree_root)
    yield "root appended", (index, size, leaf, [*proof, tree_root], tree_root)
    yield "hash prepended", (index, size, leaf, [SOME_HASH, *proof], tree_root)
    yield "empty bytes appended", (index, size, leaf, [*proof, b""], tree_root)
    if size > 1:
        yield "root of size - 1", (index, size, leaf, proof, _root_at(size - 1))
    if proof:
        yield "last hash dropped", (index, size, leaf, proof[:-1], tree_root)
        yield "first hash dropped", (index, size, leaf, proof[1:], tree_root)
        yield "proof[0] is the leaf", (index, size, proof[0], [leaf, *proof[1:]], tree_root)
        yield "short proof[0]", (index, size, leaf, [proof[0][:31], *proof[1:]], tree_root)
        yield "duplicated proof[0]", (index, size, leaf, [proof[0], *proof], tree_root)
    for i in range(len(proof)):
        yield (
            f"proof[{i}] flipped",
            (index, size, leaf, [*proof[:i], _flip(proof[i]), *proof[i + 1 :]], tree_root),
        )
    for i in _neighbour_pairs(proof):
        swapped = [*proof[:i], proof[i + 1], proof[i], *proof[i + 2 :]]
        yield f"proof[{i}] and proof[{i + 1}] swapped", (index, size, leaf, swapped, tree_root)


def _consistency_probes(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> Iterator[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    """Wrong claims built from a valid non-trivial one (0 < old < new); each must be rejected."""
    yield "old - 1", (old - 1, new, old_root, new_root, proof)
    yield "old + 1", (old + 1, new, old_root, new_root, proof)
    yield "old ^ 2", (old ^ 2, new, old_root, new_root, proof)
    yield "new * 2", (old, new * 2, old_root, new_root, proof)
    yield "new // 2", (old, new // 2, old_root, new_root, proof)
    yield "flipped old root", (old, new, _flip(old_root, 4), new_root, proof)
    yield "flipped new root", (old, new, old_root, _flip(new_root, 4), proof)
    yield "swapped roots", (old, new, new_root, old_root, proof)
    yield "old root of old - 1", (old, new, _root_at(old - 1) if old > 1 else EMPTY_ROOT, new_root, proof)
    yield "new root of new - 1", (old, new, old_root, _root_at(new - 1), proof)
    yield "empty proof", (old, new, old_root, new_root, [])
    yield "old root appended", (old, new, old_root, new_root, [*proof, old_root])
    yield "new root appended", (old, new, old_root, new_root, [*proof, new_root])
    yield "old root prepended", (old, new, old_root, new_root, [old_root, *proof])
    yield "new root prepended", (old, new, old_root, new_root, [new_root, *proof])
    yield "proof[0] prepended", (old, new, old_root, new_root, [proof[0], *proof])
    yield "empty bytes prepended", (old, new, old_root, new_root, [b"", *proof])
    yield "last hash dropped", (old, new, old_root, new_root, proof[:-1])
    yield "first hash dropped", (old, new, old_root, new_root, proof[1:])
    yield "short proof[0]", (old, new, old_root, new_root, [proof[0][:31], *proof[1:]])
    for i in range(len(proof)):
        yield (
            f"proof[{i}] flipped",
            (old, new, old_root, new_root, [*proof[:i], _flip(proof[i], 4), *proof[i + 1 :]]),
        )
    for i in _neighbour_pairs(proof):
        swapped = [*proof[:i], proof[i + 1], proof[i], *proof[i + 2 :]]
        yield f"proof[{i}] and proof[{i + 1}] swapped", (old, new, old_root, new_root, swapped)


def _rejected(verify: Callable[..., None], args: tuple[object, ...]) -> bool:
    try:
        verify(*args)
    except ProofError:
        return True
    return False


def _max_reads(size: int) -> int:
    return 2 * size.bit_length()


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_exhaustive(size: int) -> None:
    tree_root = _root_at(size)
    accepted: list[str] = []
    for index in range(size):
        get = CountingGet(TABLE, size)
        proof = inclusion_proof(index, size, get)
        assert proof == inclusion_proof_reference(index, LEAVES[:size]), index
        assert len(proof) == inclusion_proof_length(index, size)
        assert get.calls == len(inclusion_proof_nodes(index, size)) <= _max_reads(size)
        verify_inclusion(index, size, LEAVES[index], proof, tree_root)
        probes = _inclusion_probes(index, size, LEAVES[index], proof, tree_root)
        accepted += [f"{index}: {desc}" for desc, args in probes if not _rejected(verify_inclusion, args)]
    assert accepted == []


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_consistency_proofs_exhaustive(size: int) -> None:
    new_root = _root_at(size)
    accepted: list[str] = []
    for old in range(size + 1):
        get = CountingGet(TABLE, size)
        proof = consistency_proof(old, size, get)
        assert proof == consistency_proof_reference(old, LEAVES[:size]), old
        assert len(proof) == consistency_proof_length(old, size)
        assert get.calls == len(consistency_proof_nodes(old, size)) <= _max_reads(size) + 1
        old_root = _root_at(old) if old else EMPTY_ROOT
        verify_consistency(old, size, old_root, new_root, proof)
        if 0 < old < size:
            probes = _consistency_probes(old, size, old_root, new_root, proof)
            accepted += [f"{old}: {desc}" for desc, args in probes if not _rejected(verify_consistency, args)]
    assert accepted == []


@pytest.mark.parametrize("size", [2**20, 2**20 + 1, 2**31 - 1, 2**40 + 12345, 2**53 - 1])
def test_proofs_read_logarithmically_many_nodes(size: int) -> None:
    # Hashes are synthetic here: only which nodes are read, and how many, is under test.
    rng = random.Random(size)
    for index in [0, 1, size // 2, size - 2, size - 1, *rng.sample(range(size), 20)]:
        get = CountingGet(None, size)
        assert len(inclusion_proof(index, size, get)) == inclusion_proof_length(index, size)
        assert get.calls <= _max_reads(size)
    for old in [1, 2, size // 3, size - 1, size, *rng.sample(range(size), 20)]:
        get = CountingGet(None, size)
        assert len(consistency_proof(old, size, get)) == consistency_proof_length(old, size)
        assert get.calls <= _max_reads(size) + 1
    get = CountingGet(None, size)
    root_from_subtrees(size, get)
    assert get.calls == size.bit_count()


def test_proofs_in_a_larger_tree_match_the_definition() -> None:
    leaves = _leaves(5000)
    builder = TreeBuilder()
    table = {(level, index): h for leaf in leaves for level, index, h in builder.append(leaf)}
    rng = random.Random(7)
    for size in [1000, 1024, 4097, 5000]:
        tree_root = root(leaves[:size])
        for index in [0, size - 1, *rng.sample(range(size), 5)]:
            proof = inclusion_proof(index, size, CountingGet(table, size))
            assert proof == inclusion_proof_reference(index, leaves[:size])
            verify_inclusion(index, size, leaves[index], proof, tree_root)
        for old in [1, size - 1, *rng.sample(range(1, size), 5)]:
            proof = consistency_proof(old, size, CountingGet(table, size))
            assert proof == consistency_proof_reference(old, leaves[:size])
            verify_consistency(old, size, root(leaves[:old]), tree_root, proof)


# --- verification edge cases -------------------------------------------------------------------------


def test_inclusion_in_an_empty_tree_is_rejected() -> None:
    with pytest.raises(ProofError, match="leaf index 0 is out of range for a tree of size 0"):
        verify_inclusion(0, 0, SOME_HASH, [], EMPTY_ROOT)


def test_inclusion_single_leaf_tree() -> None:
    verify_inclusion(0, 1, SOME_HASH, [], SOME_HASH)
    with pytest.raises(ProofError, match="root mismatch"):
        verify_inclusion(0, 1, SOME_HASH, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="must have 0 hash"):
        verify_inclusion(0, 1, SOME_HASH, [SOME_HASH], SOME_HASH)
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(1, 1, SOME_HASH, [], SOME_HASH)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 8, LEAVES[5], [], _root_at(8)), "must have 3 hash\\(es\\), got 0"),
        ((8, 8, LEAVES[5], [], _root_at(8)), "leaf index 8 is out of range for a tree of size 8"),
        ((-1, 8, LEAVES[5], [], _root_at(8)), "leaf index must be a non-negative integer, got -1"),
        ((True, 8, LEAVES[5], [], _root_at(8)), "leaf index must be a non-negative integer, got True"),
        ((0, 8.0, LEAVES[5], [], _root_at(8)), "tree size must be a non-negative integer"),
        ((5, 8, bytearray(32), [], _root_at(8)), "leaf hash must be bytes, got bytearray"),
        ((5, 8, LEAVES[5], [], b"x" * 33), "root must be 32 bytes, got 33"),
        ((5, 8, LEAVES[5], SOME_HASH, _root_at(8)), "a proof must be a sequence of hashes"),
        ((5, 8, LEAVES[5], [SOME_HASH, "ab"], _root_at(8)), "proof\\[1\\] must be bytes, got str"),
        ((5, 8, LEAVES[5], [SOME_HASH] * 3, _root_at(8)), "root mismatch: the inclusion proof of leaf 5"),
    ],
)
def test_inclusion_errors_say_why(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ProofError, match=message):
        verify_inclusion(*args)  # type: ignore[arg-type]


def test_consistency_from_the_empty_tree() -> None:
    # Size 0 is a prefix of every tree; its root can only be EMPTY_ROOT and the proof is empty.
    for size in (0, 1, 8):
        verify_consistency(0, size, EMPTY_ROOT, _root_at(size) if size else EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="from the empty tree must be empty, got 1"):
        verify_consistency(0, 8, EMPTY_ROOT, _root_at(8), [SOME_HASH])
    with pytest.raises(ProofError, match="the root of a tree of size 0 is e3b0c442"):
        verify_consistency(0, 8, SOME_HASH, _root_at(8), [])
    with pytest.raises(ProofError, match="two different roots for tree size 0"):
        verify_consistency(0, 0, EMPTY_ROOT, SOME_HASH, [])


def test_consistency_between_equal_sizes() -> None:
    verify_consistency(5, 5, _root_at(5), _root_at(5), [])
    with pytest.raises(ProofError, match="between trees of the same size must be empty, got 1"):
        verify_consistency(5, 5, _root_at(5), _root_at(5), [SOME_HASH])
    with pytest.raises(ProofError, match="two different roots for tree size 5"):
        verify_consistency(5, 5, _root_at(5), _root_at(6), [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((6, 5, _root_at(6), _root_at(5), []), "old size 6 is larger than new size 5: a log cannot shrink"),
        ((1, 0, _root_at(1), EMPTY_ROOT, []), "old size 1 is larger than new size 0"),
        ((3, 7, _root_at(3), _root_at(7), []), "from size 3 to size 7 must have 4 hash\\(es\\), got 0"),
        ((3, 7, _root_at(3), _root_at(7), [SOME_HASH] * 4), "old root mismatch"),
        ((4, 7, _root_at(4), _root_at(7), [SOME_HASH]), "new root mismatch"),
        ((-2, 7, _root_at(4), _root_at(7), []), "old size must be a non-negative integer, got -2"),
        ((4, 7, b"", _root_at(7), []), "old root must be 32 bytes, got 0"),
        ((4, 7, _root_at(4), None, []), "new root must be bytes, got NoneType"),
        ((4, 7, _root_at(4), _root_at(7), [b"\x00" * 31]), "proof\\[0\\] must be 32 bytes, got 31"),
    ],
)
def test_consistency_errors_say_why(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ProofError, match=message):
        verify_consistency(*args)  # type: ignore[arg-type]


def test_proof_generation_rejects_bad_arguments() -> None:
    get = CountingGet(TABLE, 8)
    with pytest.raises(ValueError, match="leaf index 8 is not in a tree of size 8"):
        inclusion_proof(8, 8, get)
    with pytest.raises(ValueError, match="leaf index 0 is not in a tree of size 0"):
        inclusion_proof_reference(0, [])
    with pytest.raises(ValueError, match="old size 9 is larger than tree size 8"):
        consistency_proof(9, 8, get)
    with pytest.raises(ValueError, match="no consistency proof from size 9 to size 8"):
        consistency_proof_reference(9, LEAVES[:8])
    with pytest.raises(ValueError, match="tree size must be a non-negative integer"):
        root_from_subtrees(-1, get)
    with pytest.raises(ValueError, match="start must be a non-negative integer"):
        perfect_subtrees(-4, 4)
    assert consistency_proof(0, 0, get) == consistency_proof(8, 8, get) == []
    assert get.calls == 0


# --- TreeBuilder ------------------------------------------------------------------------------------


def test_builder_matches_the_definition_at_every_size() -> None:
    count = 10_000
    leaves = _leaves(count)
    expected_table = _perfect_table(leaves)
    builder = TreeBuilder()
    table: dict[Node, bytes] = {}
    for size in range(1, count + 1):
        completed = builder.append(leaves[size - 1])
        assert builder.size == size
        # Exactly the perfect subtrees whose last leaf is this one, smallest first.
        expected = [(level, (size >> level) - 1) for level in range((size & -size).bit_length())]
        assert [(level, index) for level, index, _ in completed] == expected
        for level, index, h in completed:
            assert expected_table[(level, index)] == h
            table[(level, index)] = h
        assert builder.frontier == [table[node] for node in subtree_ranges(size)]
        assert builder.root() == root_from_subtrees(size, CountingGet(table, size))
    assert table == expected_table
    # The subtree-based roots equal the recursive definition (checked at a sample: it costs O(n)).
    builder = TreeBuilder()
    rng = random.Random(1)
    sample = {*range(1, 300), *(2**k + d for k in range(9, 14) for d in (-1, 0, 1)), count}
    sample |= set(rng.sample(range(1, count + 1), 100))
    for size in range(1, count + 1):
        builder.append(leaves[size - 1])
        if size in sample:
            assert builder.root() == root(leaves[:size]), size


def test_builder_resumes_from_stored_subtrees() -> None:
    full = TreeBuilder()
    for leaf in LEAVES[:100]:
        full.append(leaf)
    for size in range(101):
        resumed = TreeBuilder.from_subtrees(size, CountingGet(TABLE, size))
        assert resumed.root() == (_root_at(size) if size else EMPTY_ROOT)
        added = [node for leaf in LEAVES[size:100] for node in resumed.append(leaf)]
        assert {(level, index): h for level, index, h in added}.items() <= TABLE.items()
        assert resumed.frontier == full.frontier
        assert resumed.root() == full.root()


def test_builder_does_constant_amortised_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    def counting_node_hash(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return node_hash(left, right)

    monkeypatch.setattr(merkle_module, "node_hash", counting_node_hash)
    builder = TreeBuilder()
    worst = 0
    for size in range(1, 2**14 + 1):
        before = calls
        builder.append(SOME_HASH)
        worst = max(worst, calls - before)
        # Every node hash completes one subtree and removes one frontier entry: the total is
        # the leaves minus the subtrees still on the frontier, under one per append.
        assert calls == size - size.bit_count()
    assert worst == 14  # only the append that completes a 2**14 tree merges 14 times
    calls = 0
    builder.root()
    assert calls == 0  # a perfect tree's root is its one frontier hash


@pytest.mark.parametrize(
    ("size", "frontier", "message"),
    [
        (3, [SOME_HASH], "a tree of size 3 has 2 frontier hash\\(es\\), got 1"),
        (0, [SOME_HASH], "a tree of size 0 has 0 frontier hash\\(es\\), got 1"),
        (1, [SOME_HASH[:31]], "frontier\\[0\\] must be a 32-byte hash"),
        (-1, [], "tree size must be a non-negative integer"),
    ],
)
def test_builder_rejects_a_bad_frontier(size: int, frontier: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TreeBuilder(size, frontier)


def test_builder_rejects_a_bad_leaf_hash() -> None:
    builder = TreeBuilder()
    with pytest.raises(ValueError, match="a leaf hash must be 32 bytes"):
        builder.append(b"short")
    assert builder.size == 0
    assert builder.frontier == []


def test_builder_frontier_is_a_copy() -> None:
    builder = TreeBuilder(1, [SOME_HASH])
    builder.frontier.append(SOME_HASH)
    assert builder.frontier == [SOME_HASH]
