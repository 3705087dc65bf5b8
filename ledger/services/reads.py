"""Reads used by the ledger use cases: stored transfers, replays, balances, pending timeouts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.domain.engine import PostingRow
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.times import to_dt, to_us
from ledger.domain.units import Unit
from ledger.services.results import BalanceView, PostingView, Receipt, TransferResult
from ledger.store import ledger_repo as sql
from ledger.store.db import Conn


@dataclass(frozen=True, slots=True)
class StoredPosting:
    seq: int
    account_id: uuid.UUID
    unit: Unit
    phase: str
    amount: int
    expires_at_us: int | None
    lot_created: uuid.UUID | None  # the lot this posting created, if any
    movements: tuple[tuple[uuid.UUID, int], ...]  # (lot_id, amount) moved by this posting


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    """A committed transfer with what a reversal or resolution needs to know about it."""

    transfer_id: uuid.UUID
    kind: str
    phase: str
    timeout_us: int | None
    postings: tuple[StoredPosting, ...]
    reversed_by: uuid.UUID | None
    resolved_phase: str | None  # for a pending transfer: 'post' or 'void' once resolved
    pending_id: uuid.UUID | None
    pending_movements: dict[uuid.UUID, tuple[tuple[uuid.UUID, int], ...]]  # post: the pending's lot moves


_TRANSFER = """
SELECT t.kind, t.phase, t.timeout_at, t.pending_id,
       (SELECT r.transfer_id FROM transfer r
         WHERE r.community_id = t.community_id AND r.reverses_id = t.transfer_id),
       (SELECT r.phase FROM transfer r WHERE r.community_id = t.community_id AND r.pending_id = t.transfer_id)
FROM transfer t WHERE t.community_id = %s AND t.transfer_id = %s
"""
_POSTINGS = """
SELECT p.seq, p.account_id, p.unit, p.phase, p.amount, p.expires_at,
       (SELECT l.lot_id FROM lot l WHERE l.community_id = p.community_id AND l.transfer_id = p.transfer_id
          AND l.seq = p.seq),
       COALESCE((SELECT array_agg(ARRAY[m.lot_id::text, m.amount::text]) FROM lot_movement m
          WHERE m.community_id = p.community_id AND m.transfer_id = p.transfer_id AND m.seq = p.seq), '{}')
FROM posting p WHERE p.community_id = %s AND p.transfer_id = %s ORDER BY p.seq
"""
# Serialises reversals and resolutions of one transfer without locking its (immutable) row.
_ADVISORY = "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))"


def _postings(conn: Conn, community_id: int, transfer_id: uuid.UUID) -> tuple[StoredPosting, ...]:
    out = []
    for seq, account_id, unit, phase, amount, expires_at, lot_id, moves in conn.execute(
        _POSTINGS, (community_id, transfer_id)
    ):
        movements = tuple((uuid.UUID(m[0]), int(m[1])) for m in moves)
        out.append(
            StoredPosting(seq, account_id, Unit(unit), phase, amount, to_us(expires_at), lot_id, movements)
        )
    return tuple(out)


def load_transfer_for_update(conn: Conn, community_id: int, transfer_id: uuid.UUID) -> StoredTransfer:
    """Read a transfer after taking its advisory lock, so that concurrent reversals or resolutions of
    it run one after another and each sees the other's outcome."""
    conn.execute(_ADVISORY, (str(transfer_id), community_id))
    row = conn.execute(_TRANSFER, (community_id, transfer_id)).fetchone()
    if row is None:
        raise LedgerError(ErrorCode.TRANSFER_NOT_FOUND, transfer_id=str(transfer_id))
    kind, phase, timeout_at, pending_id, reversed_by, resolved_phase = row
    postings = _postings(conn, community_id, transfer_id)
    pending_moves: dict[uuid.UUID, tuple[tuple[uuid.UUID, int], ...]] = {}
    if pending_id is not None:
        pending_moves = {p.account_id: p.movements for p in _postings(conn, community_id, pending_id)}
    return StoredTransfer(
        transfer_id,
        kind,
        phase,
        to_us(timeout_at),
        postings,
        reversed_by,
        resolved_phase,
        pending_id,
        pending_moves,
    )


def result_from_rows(
    community_id: int,
    transfer_id: uuid.UUID,
    kind: str,
    phase: str,
    effective_us: int,
    recorded_us: int,
    rows: Sequence[PostingRow],
    receipt: Receipt,
    reverses_id: uuid.UUID | None,
    pending_id: uuid.UUID | None,
    replayed: bool = False,
) -> TransferResult:
    postings = tuple(
        PostingView(r.account_id, r.unit, str(r.phase), r.amount, r.balance_after, r.account_version)
        for r in rows
    )
    return TransferResult(
        transfer_id,
        community_id,
        kind,
        phase,
        effective_us,
        recorded_us,
        postings,
        receipt,
        reverses_id,
        pending_id,
        replayed,
    )


_RESULT = """
SELECT t.kind, t.phase, t.effective_at, t.recorded_at, t.reverses_id, t.pending_id, l.idx, l.leaf_hash
FROM transfer t JOIN log_leaf l ON l.community_id = t.community_id AND l.transfer_id = t.transfer_id
WHERE t.community_id = %s AND t.transfer_id = %s
"""
_RESULT_POSTINGS = """
SELECT account_id, unit, phase, amount, balance_after, account_version FROM posting
WHERE community_id = %s AND transfer_id = %s ORDER BY seq
"""


def transfer_result(
    conn: Conn, community_id: int, transfer_id: uuid.UUID, replayed: bool = False
) -> TransferResult:
    row = conn.execute(_RESULT, (community_id, transfer_id)).fetchone()
    if row is None:
        raise LedgerError(ErrorCode.TRANSFER_NOT_FOUND, transfer_id=str(transfer_id))
    kind, phase, effective_at, recorded_at, reverses_id, pending_id, idx, leaf_hash = row
    postings = tuple(
        PostingView(a, Unit(u), ph, amt, bal, ver)
        for a, u, ph, amt, bal, ver in conn.execute(_RESULT_POSTINGS, (community_id, transfer_id))
    )
    effective_us, recorded_us = to_us(effective_at), to_us(recorded_at)
    assert effective_us is not None and recorded_us is not None
    return TransferResult(
        transfer_id,
        community_id,
        kind,
        phase,
        effective_us,
        recorded_us,
        postings,
        Receipt(community_id, idx, bytes(leaf_hash)),
        reverses_id,
        pending_id,
        replayed,
    )


def replay(conn: Conn, community_id: int, key: str, request_hash: bytes) -> TransferResult:
    """The outcome stored under an idempotency key, for a request that claims it again."""
    row = conn.execute(sql.READ_KEY, (community_id, key)).fetchone()
    conn.rollback()
    if row is None:  # the first claimant rolled back entirely (a crash, not a business failure)
        raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key")
    stored_hash, transfer_id, error = row
    if bytes(stored_hash) != request_hash:
        raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key")
    if error is not None:
        raise LedgerError.from_dict(error)
    result = transfer_result(conn, community_id, transfer_id, replayed=True)
    conn.rollback()
    return result


_BALANCES = """
SELECT b.account_id, a.unit, sum(b.posted), sum(b.pending_in), sum(b.pending_out), sum(b.version)
FROM balance b JOIN account a USING (community_id, account_id)
WHERE b.community_id = %s AND b.account_id = ANY(%s)
GROUP BY b.account_id, a.unit
"""


def balances(conn: Conn, community_id: int, account_ids: list[uuid.UUID]) -> dict[uuid.UUID, BalanceView]:
    rows = conn.execute(_BALANCES, (community_id, account_ids)).fetchall()
    conn.rollback()
    return {r[0]: BalanceView(r[0], Unit(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}


_EXPIRED = """
SELECT t.transfer_id FROM transfer t
WHERE t.community_id = %s AND t.timeout_at IS NOT NULL AND t.timeout_at <= %s
  AND NOT EXISTS (SELECT 1 FROM transfer r
                  WHERE r.community_id = t.community_id AND r.pending_id = t.transfer_id)
ORDER BY t.timeout_at LIMIT %s
"""


def expired_pending_ids(conn: Conn, community_id: int, now_us: int, limit: int) -> list[uuid.UUID]:
    ids = [r[0] for r in conn.execute(_EXPIRED, (community_id, to_dt(now_us), limit))]
    conn.rollback()
    return ids
