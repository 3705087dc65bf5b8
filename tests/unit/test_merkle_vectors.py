"""Literal RFC 9162 proofs for the 7- and 8-leaf example trees: a regression shows as a byte diff."""

from __future__ import annotations

import hashlib

import pytest

from ledger.audit.merkle import (
    GetNode,
    consistency_proof,
    consistency_proof_reference,
    inclusion_proof,
    inclusion_proof_reference,
    root,
    verify_consistency,
    verify_inclusion,
)

# The leaf inputs of the RFC 6962 / Certificate Transparency test tree (hex).
LEAF_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]

# Every node of the 8-leaf tree, named as in this sketch (the 7-leaf tree has root7 over k and l,
# where l joins j with the lone leaf g; the 8-leaf tree has root8 over k and n):
#
#                 root8                        root7
#               /       \                     /     \
#              k         n                   k       l
#            /   \     /   \               /   \    / \
#           h     i   j     m             h     i  j   g
#          / \   / \ / \   / \
#         a   b c  d e  f g   hh
NODES = {
    "a": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "b": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "c": "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "d": "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "e": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "f": "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "g": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "hh": "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    "h": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "i": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "j": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "k": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "l": "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
    "m": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "n": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "root7": "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "root8": "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

# How each node is made: a leaf from its input, an interior node from its children.
STRUCTURE: dict[str, tuple[str, ...]] = {
    **{name: (LEAF_INPUTS[i],) for i, name in enumerate(["a", "b", "c", "d", "e", "f", "g", "hh"])},
    "h": ("a", "b"),
    "i": ("c", "d"),
    "j": ("e", "f"),
    "m": ("g", "hh"),
    "k": ("h", "i"),
    "l": ("j", "g"),
    "n": ("j", "m"),
    "root7": ("k", "l"),
    "root8": ("k", "n"),
}

# (leaf index, tree size) -> the proof as node names, leaf to root.
INCLUSION = {
    (0, 7): ["b", "i", "l"],
    (3, 7): ["c", "h", "l"],
    (4, 7): ["f", "g", "k"],
    (6, 7): ["j", "k"],
    (0, 8): ["b", "i", "n"],
    (5, 8): ["e", "m", "k"],
    (6, 8): ["hh", "j", "k"],
    (7, 8): ["g", "j", "k"],
    (2, 3): ["h"],
    (0, 1): [],
}

# (old size, new size) -> the proof as node names.
CONSISTENCY = {
    (1, 7): ["b", "i", "l"],
    (2, 7): ["i", "l"],
    (3, 7): ["c", "d", "h", "l"],
    (4, 7): ["l"],
    (5, 7): ["e", "f", "g", "k"],
    (6, 7): ["j", "g", "k"],
    (3, 8): ["c", "d", "h", "n"],
    (5, 8): ["e", "f", "m", "k"],
    (6, 8): ["j", "m", "k"],
    (7, 8): ["g", "hh", "j", "k"],
    (7, 7): [],
    (0, 8): [],
}

LEAF_HASHES = [bytes.fromhex(NODES[name]) for name in ["a", "b", "c", "d", "e", "f", "g", "hh"]]
# Perfect subtrees of the 8-leaf tree by (level, index), as a store would hold them.
STORED = {
    **{(0, i): h for i, h in enumerate(LEAF_HASHES)},
    **{(1, i): bytes.fromhex(NODES[name]) for i, name in enumerate(["h", "i", "j", "m"])},
    (2, 0): bytes.fromhex(NODES["k"]),
    (2, 1): bytes.fromhex(NODES["n"]),
    (3, 0): bytes.fromhex(NODES["root8"]),
}


def _hashes(names: list[str]) -> list[bytes]:
    return [bytes.fromhex(NODES[name]) for name in names]


def _get(size: int) -> GetNode:
    """Stored-node lookup for a tree of ``size`` leaves; refuses nodes that are not complete yet."""

    def get(level: int, index: int) -> bytes:
        assert (index + 1) << level <= size, f"node ({level}, {index}) is not complete at size {size}"
        return STORED[(level, index)]

    return get


@pytest.mark.parametrize("name", sorted(STRUCTURE))
def test_node_hashes_by_hand(name: str) -> None:
    # Recomputed with hashlib alone, from the RFC 9162 definitions, not with the code under test.
    parts = STRUCTURE[name]
    if len(parts) == 1:
        computed = hashlib.sha256(b"\x00" + bytes.fromhex(parts[0])).digest()
    else:
        left, right = (bytes.fromhex(NODES[p]) for p in parts)
        computed = hashlib.sha256(b"\x01" + left + right).digest()
    assert computed.hex() == NODES[name]


def test_roots_of_the_example_trees() -> None:
    assert root(LEAF_HASHES[:7]).hex() == NODES["root7"]
    assert root(LEAF_HASHES).hex() == NODES["root8"]


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_inclusion_vectors(index: int, size: int) -> None:
    expected = [h.hex() for h in _hashes(INCLUSION[(index, size)])]
    assert [h.hex() for h in inclusion_proof_reference(index, LEAF_HASHES[:size])] == expected
    assert [h.hex() for h in inclusion_proof(index, size, _get(size))] == expected
    tree_root = root(LEAF_HASHES[:size])
    verify_inclusion(index, size, LEAF_HASHES[index], _hashes(INCLUSION[(index, size)]), tree_root)


@pytest.mark.parametrize(("old_size", "size"), sorted(CONSISTENCY))
def test_consistency_vectors(old_size: int, size: int) -> None:
    expected = [h.hex() for h in _hashes(CONSISTENCY[(old_size, size)])]
    assert [h.hex() for h in consistency_proof_reference(old_size, LEAF_HASHES[:size])] == expected
    assert [h.hex() for h in consistency_proof(old_size, size, _get(size))] == expected
    old_root, new_root = root(LEAF_HASHES[:old_size]), root(LEAF_HASHES[:size])
    verify_consistency(old_size, size, old_root, new_root, _hashes(CONSISTENCY[(old_size, size)]))
