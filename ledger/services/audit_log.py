"""Each community's log as an RFC 9162 Merkle tree: fold leaves into stored subtrees, roots,
inclusion and consistency proofs, entries, and the signed checkpoints the service serves.

The write paths append leaves; ``ingest`` folds new leaves into ``log_node`` (perfect-subtree
hashes), one log at a time under the ``log_tree`` row lock. Proofs read O(log n) stored nodes in
two queries, so they stay fast at tens of millions of leaves. Nothing here signs: a signer that
keeps its own state outside the database does (``ledger.audit.signer``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from ledger.audit.merkle import (
    EMPTY_ROOT,
    TreeBuilder,
    consistency_proof,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    root_from_subtrees,
    subtree_ranges,
)
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.store import audit_repo as sql
from ledger.store.db import Conn

INGEST_CHUNK = 50_000
MAX_ENTRIES = 1000


@dataclass(frozen=True, slots=True)
class LogInfo:
    log_id: int
    origin: str
    tree_size: int  # the latest signed checkpoint's size


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: bytes
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    leaf: bytes
    leaf_hash: bytes


def _getter(found: dict[tuple[int, int], bytes]) -> Callable[[int, int], bytes]:
    def get(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise LookupError(f"the tree has no stored node ({level}, {index}): ingest first") from None

    return get


class AuditLog:
    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self._pool = pool

    # ------------------------------------------------------------------------------------ reads

    def logs(self) -> list[LogInfo]:
        with self._pool.connection() as conn:
            rows = conn.execute(sql.LOGS).fetchall()
            conn.rollback()
        return [LogInfo(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    def origin(self, log_id: int) -> str:
        with self._pool.connection() as conn:
            row = conn.execute(sql.ORIGIN, (log_id,)).fetchone()
            conn.rollback()
        if row is None:
            raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=log_id)
        return str(row[0])

    def tree_size(self, log_id: int) -> int:
        """Leaves folded into the stored tree (proofs are served up to the latest checkpoint)."""
        with self._pool.connection() as conn:
            row = conn.execute(sql.TREE, (log_id,)).fetchone()
            conn.rollback()
        return 0 if row is None else int(row[0])

    def root(self, log_id: int, size: int) -> bytes:
        self._check_size(log_id, size)
        with self._pool.connection() as conn:
            found = sql.nodes(conn, log_id, subtree_ranges(size))
            conn.rollback()
        return root_from_subtrees(size, _getter(found)) if size else EMPTY_ROOT

    def inclusion(self, log_id: int, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """(leaf hash, proof) of leaf ``index`` in the tree of ``size`` leaves."""
        self._check_size(log_id, size)
        if not 0 <= index < size:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="index", tree_size=size)
        wanted = [*inclusion_proof_nodes(index, size), (0, index)]
        with self._pool.connection() as conn:
            found = sql.nodes(conn, log_id, wanted)
            conn.rollback()
        get = _getter(found)
        return get(0, index), inclusion_proof(index, size, get)

    def consistency(self, log_id: int, old_size: int, new_size: int) -> list[bytes]:
        self._check_size(log_id, new_size)
        if not 0 <= old_size <= new_size:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="old_size", new_size=new_size)
        with self._pool.connection() as conn:
            found = sql.nodes(conn, log_id, consistency_proof_nodes(old_size, new_size))
            conn.rollback()
        return consistency_proof(old_size, new_size, _getter(found))

    def entries(self, log_id: int, start: int, end: int) -> list[Entry]:
        if not 0 <= start <= end or end - start > MAX_ENTRIES:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="end", max=MAX_ENTRIES)
        with self._pool.connection() as conn:
            rows = conn.execute(sql.ENTRIES, (log_id, start, end)).fetchall()
            conn.rollback()
        return [Entry(int(i), bytes(leaf), bytes(h)) for i, leaf, h in rows]

    def latest_checkpoint(self, log_id: int) -> StoredCheckpoint | None:
        with self._pool.connection() as conn:
            row = conn.execute(sql.LATEST_CHECKPOINT, (log_id,)).fetchone()
            conn.rollback()
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), bytes(row[2]), row[3])

    def checkpoints(self, log_id: int) -> list[StoredCheckpoint]:
        with self._pool.connection() as conn:
            rows = conn.execute(sql.CHECKPOINTS, (log_id,)).fetchall()
            conn.rollback()
        return [StoredCheckpoint(int(r[0]), bytes(r[1]), bytes(r[2]), r[3]) for r in rows]

    def _check_size(self, log_id: int, size: int) -> None:
        stored = self.tree_size(log_id)
        if not 0 <= size <= stored:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="tree_size", max=stored)

    # ----------------------------------------------------------------------------------- writes

    def ingest(self, log_id: int, *, limit: int | None = None) -> tuple[int, bytes]:
        """Fold leaves appended since the last call into the stored tree; returns (size, root).

        Chunks of INGEST_CHUNK leaves commit one by one, so a long backlog never holds the tree
        lock (or memory) for long, and an interrupted run resumes where it stopped.
        """
        while True:
            with self._pool.connection() as conn:
                size, root, done = self._ingest_chunk(conn, log_id, limit)
            if done:
                return size, root

    def _ingest_chunk(self, conn: Conn, log_id: int, limit: int | None) -> tuple[int, bytes, bool]:
        head = conn.execute(sql.HEAD_SIZE, (log_id,)).fetchone()
        if head is None:
            raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=log_id)
        target = int(head[0]) if limit is None else min(int(head[0]), limit)
        conn.execute(sql.NEW_TREE, (log_id, EMPTY_ROOT))
        row = conn.execute(sql.LOCK_TREE, (log_id,)).fetchone()
        assert row is not None
        size, root = int(row[0]), bytes(row[1])
        if size >= target:
            conn.rollback()
            return size, root, True
        end = min(target, size + INGEST_CHUNK)
        found = sql.nodes(conn, log_id, subtree_ranges(size))
        builder = TreeBuilder.from_subtrees(size, _getter(found))
        new_nodes: list[tuple[int, int, bytes]] = []
        for index, digest in sql.leaf_hashes(conn, log_id, size, end):
            if index != builder.size:
                raise RuntimeError(f"log {log_id}: leaf index {index} where {builder.size} was expected")
            new_nodes.extend(itertools.islice(builder.append(digest), 1, None))  # level 0 is log_leaf
        if builder.size != end:
            raise RuntimeError(f"log {log_id}: leaves end at {builder.size}, head says {end}")
        sql.copy_nodes(conn, log_id, new_nodes)
        conn.execute(sql.SET_TREE, (builder.size, builder.root(), log_id))
        conn.commit()
        return builder.size, builder.root(), builder.size >= target

    def store_checkpoint(self, log_id: int, size: int, root: bytes, note: bytes) -> None:
        """Keep a signed note (a newer one for the same size and root replaces it: fresher cosignatures)."""
        with self._pool.connection() as conn:
            conn.execute(sql.STORE_CHECKPOINT, (log_id, size, root, note, datetime.now(UTC)))
