"""RFC 9162 Merkle proof verification (§2.1.3.2 and §2.1.4.2): what an auditor runs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ledger.audit.leaf import node_hash

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ProofError",
    "consistency_proof_length",
    "inclusion_proof_length",
    "verify_consistency",
    "verify_inclusion",
]

#: Size in bytes of every leaf, node and root hash (SHA-256).
HASH_SIZE = 32
#: The root of the empty tree: SHA-256 of no bytes (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof, or the sizes, hashes or roots it is checked against, do not verify; says why."""


def inclusion_proof_length(index: int, size: int) -> int:
    """The number of hashes in the inclusion proof of leaf ``index`` in a tree of ``size`` leaves.

    Requires ``0 <= index < size``. Below the highest level where the paths to ``index`` and to
    the last leaf part, every level has a sibling; above it, only the levels where the path turns
    right have one (going left along the right edge of the tree, the subtree has no sibling).
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    below = (index ^ (size - 1)).bit_length()
    return below + (index >> below).bit_count()


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """The number of hashes in the consistency proof from ``old_size`` leaves to ``new_size``.

    Zero when ``old_size`` is 0 or equals ``new_size``. Otherwise it is the inclusion path of leaf
    ``old_size - 1`` with the levels inside the old tree's last perfect subtree cut off, plus that
    subtree's hash, which is left out when the old tree is itself perfect (the verifier already
    has it: it is the old root).
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return 0
    low = (old_size & -old_size).bit_length() - 1  # levels inside the last perfect subtree
    length = inclusion_proof_length(old_size - 1, new_size) - low
    return length if old_size == 1 << low else length + 1


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    ``proof`` lists sibling hashes from the leaf up to the root. Raises ProofError otherwise. The
    tree size is bound only by the shape of the proof; trust (size, root) only from a checkpoint.
    """
    _check_count("leaf index", index)
    _check_count("tree size", size)
    if index >= size:
        raise ProofError(f"leaf index {index} is out of range for a tree of size {size}")
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    _check_proof(proof)
    expected = inclusion_proof_length(index, size)
    if len(proof) != expected:
        raise ProofError(
            f"the inclusion proof of leaf {index} in a tree of size {size} must have {expected} "
            f"hash(es), got {len(proof)}"
        )
    computed = _root_from_inclusion(index, size, leaf_hash, proof)
    if computed != root:
        raise ProofError(
            f"root mismatch: the inclusion proof of leaf {index} gives {computed.hex()}, "
            f"expected the root of size {size}, {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves with ``old_root`` is a prefix of the tree of
    ``new_size`` leaves with ``new_root``. Raises ProofError otherwise.

    Equal sizes need an empty proof and equal roots. Size 0 is a prefix of every tree: the proof
    must be empty and ``old_root`` must be EMPTY_ROOT, the only root a tree of size 0 has (RFC 9162
    defines no proof for it; C2SP and transparency-dev accept it with an empty proof and do not
    check the old root).
    """
    _check_count("old size", old_size)
    _check_count("new size", new_size)
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}: a log cannot shrink")
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    _check_proof(proof)
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError(
            f"the root of a tree of size 0 is {EMPTY_ROOT.hex()} (SHA-256 of nothing), got {old_root.hex()}"
        )
    if old_size in (0, new_size):
        if proof:
            which = "from the empty tree" if old_size == 0 else "between trees of the same size"
            raise ProofError(f"a consistency proof {which} must be empty, got {len(proof)} hash(es)")
        if old_size == new_size and old_root != new_root:
            raise ProofError(
                f"two different roots for tree size {new_size}: {old_root.hex()} and {new_root.hex()}"
            )
        return
    expected = consistency_proof_length(old_size, new_size)
    if len(proof) != expected:
        raise ProofError(
            f"the consistency proof from size {old_size} to size {new_size} must have {expected} "
            f"hash(es), got {len(proof)}"
        )
    computed_old, computed_new = _roots_from_consistency(old_size, new_size, old_root, proof)
    if computed_old != old_root:
        raise ProofError(
            f"old root mismatch: the consistency proof gives {computed_old.hex()} for size {old_size}, "
            f"expected {old_root.hex()}"
        )
    if computed_new != new_root:
        raise ProofError(
            f"new root mismatch: the consistency proof gives {computed_new.hex()} for size {new_size}, "
            f"expected {new_root.hex()}"
        )


def _root_from_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 4-6, for a proof whose length was already checked."""
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # On the right edge the last node may have no sibling for several levels: skip them.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return r


def _roots_from_consistency(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 2-7, for 0 < old_size < new_size and a proof of checked length.

    Returns the old and the new root the proof leads to.
    """
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # A perfect old tree is a node of the new tree; its hash is the old root, not in the proof.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    # Start from the last perfect subtree of the old tree: skip the levels inside it.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        assert sn != 0
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return fr, sr


def _check_count(name: str, value: object) -> None:
    if type(value) is not int or value < 0:
        raise ProofError(f"{name} must be a non-negative integer, got {value!r}")


def _check_hash(name: str, value: object) -> None:
    if not isinstance(value, bytes):
        raise ProofError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ProofError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_proof(proof: object) -> None:
    if isinstance(proof, (bytes, str)) or not isinstance(proof, Sequence):
        raise ProofError("a proof must be a sequence of hashes")
    # Auditors check proofs in bulk: test all elements at once, and name the bad one only if any.
    if not all(type(element) is bytes and len(element) == HASH_SIZE for element in proof):
        for i, element in enumerate(proof):
            _check_hash(f"proof[{i}]", element)
