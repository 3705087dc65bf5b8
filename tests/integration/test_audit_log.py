"""The stored Merkle tree of a community's log agrees with the RFC 9162 definition."""

from __future__ import annotations

import pytest
from psycopg_pool import ConnectionPool

from ledger.audit import merkle
from ledger.audit.leaf import leaf_hash
from ledger.audit.merkle import verify_consistency, verify_inclusion
from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services import audit_log as audit_module
from ledger.services.audit_log import AuditLog
from ledger.services.communities import CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store.db import Conn


@pytest.fixture
def audit(pool: ConnectionPool[Conn]) -> AuditLog:
    return AuditLog(pool)


def _append(ledger: Ledger, community: CommunityInfo, open_member: object, n: int, tag: str) -> None:
    c = community.community_id
    issuance = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    member = open_member(Unit.POINTS)  # type: ignore[operator]
    ledger.post_batch(
        [
            TransferRequest(
                c, "award", (Posting(issuance, Unit.POINTS, -1), Posting(member, Unit.POINTS, 1)), f"{tag}{i}"
            )
            for i in range(n)
        ]
    )


def _leaf_hashes(owner: Conn, community_id: int) -> list[bytes]:
    rows = owner.execute(
        "SELECT leaf_hash FROM log_leaf WHERE community_id = %s ORDER BY idx", (community_id,)
    ).fetchall()
    return [bytes(r[0]) for r in rows]


def test_ingest_builds_the_rfc_9162_tree_incrementally(
    audit: AuditLog,
    ledger: Ledger,
    community: CommunityInfo,
    open_member: object,
    owner: Conn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = community.community_id
    monkeypatch.setattr(audit_module, "INGEST_CHUNK", 7)  # many chunks, each resuming from stored nodes
    assert audit.ingest(c) == (0, merkle.EMPTY_ROOT)
    _append(ledger, community, open_member, 37, "a")
    size, root = audit.ingest(c)
    hashes = _leaf_hashes(owner, c)
    assert (size, root) == (37, merkle.root(hashes))
    _append(ledger, community, open_member, 26, "b")
    size, root = audit.ingest(c)
    hashes = _leaf_hashes(owner, c)
    assert (size, root) == (63, merkle.root(hashes))
    for n in (1, 2, 13, 37, 63):
        assert audit.root(c, n) == merkle.root(hashes[:n])
    stored = owner.execute("SELECT count(*) FROM log_node WHERE community_id = %s", (c,)).fetchone()
    assert stored == (63 - bin(63).count("1"),)  # every complete subtree above the leaves, once


def test_proofs_verify_and_match_the_reference(
    audit: AuditLog, ledger: Ledger, community: CommunityInfo, open_member: object, owner: Conn
) -> None:
    c = community.community_id
    _append(ledger, community, open_member, 21, "p")
    audit.ingest(c)
    hashes = _leaf_hashes(owner, c)
    for size in (1, 5, 8, 21):
        root = merkle.root(hashes[:size])
        for index in range(size):
            leaf_hash, proof = audit.inclusion(c, index, size)
            assert leaf_hash == hashes[index]
            assert proof == merkle.inclusion_proof_reference(index, hashes[:size])
            verify_inclusion(index, size, leaf_hash, proof, root)
        for old in range(size + 1):
            proof = audit.consistency(c, old, size)
            assert proof == merkle.consistency_proof_reference(old, hashes[:size])
            verify_consistency(old, size, merkle.root(hashes[:old]), root, proof)


def test_proofs_beyond_the_stored_tree_are_refused(
    audit: AuditLog, ledger: Ledger, community: CommunityInfo, open_member: object
) -> None:
    c = community.community_id
    _append(ledger, community, open_member, 4, "x")
    audit.ingest(c, limit=3)
    assert audit.tree_size(c) == 3
    for call in (
        lambda: audit.inclusion(c, 3, 4),
        lambda: audit.consistency(c, 1, 4),
        lambda: audit.inclusion(c, 3, 3),
    ):
        with pytest.raises(LedgerError) as exc_info:
            call()
        assert exc_info.value.code == ErrorCode.INVALID_FIELD


def test_entries_and_checkpoints(
    audit: AuditLog, ledger: Ledger, community: CommunityInfo, open_member: object
) -> None:
    c = community.community_id
    _append(ledger, community, open_member, 5, "e")
    entries = audit.entries(c, 1, 4)
    assert [e.index for e in entries] == [1, 2, 3]
    assert all(e.leaf_hash == leaf_hash(e.leaf) for e in entries)
    assert audit.latest_checkpoint(c) is None
    size, root = audit.ingest(c)
    audit.store_checkpoint(c, size, root, b"note one\n")
    audit.store_checkpoint(c, size, root, b"note two\n")  # fresher cosignatures replace the note
    latest = audit.latest_checkpoint(c)
    assert latest is not None and (latest.size, latest.root, latest.note) == (5, root, b"note two\n")
    assert [cp.size for cp in audit.checkpoints(c)] == [5]


def test_event_leaves_join_the_same_chain(
    pool: ConnectionPool[Conn],
    audit: AuditLog,
    ledger: Ledger,
    community: CommunityInfo,
    open_member: object,
    owner: Conn,
) -> None:
    from ledger.audit.leaf import decode_leaf  # noqa: PLC0415
    from ledger.services.log_events import append_event  # noqa: PLC0415

    c = community.community_id
    _append(ledger, community, open_member, 2, "v")
    receipt = append_event(pool, c, "key_rotation", {"old_key": "k1", "new_key": "k2", "retired_at_size": 2})
    _append(ledger, community, open_member, 1, "w")
    hashes = _leaf_hashes(owner, c)
    assert receipt.index == 2 and receipt.leaf_hash == hashes[2]
    leaf = audit.entries(c, 2, 3)[0].leaf
    assert decode_leaf(leaf) | {} == {
        "v": 1,
        "origin": community.origin,
        "index": 2,
        "prev": hashes[1].hex(),
        "type": "key_rotation",
        "old_key": "k1",
        "new_key": "k2",
        "retired_at_size": 2,
    }
    assert decode_leaf(audit.entries(c, 3, 4)[0].leaf)["prev"] == hashes[2].hex()
    with pytest.raises(ValueError, match="unknown event"):
        append_event(pool, c, "gossip", {})
