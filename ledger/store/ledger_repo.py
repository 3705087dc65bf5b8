"""SQL for the single-transfer path: lock, read, write, append to the log. All of it, nothing else.

Lock order, everywhere: non-hot balance rows sorted by account id, then hot bucket rows sorted by
account id, then the community's log head. With one order there are no deadlock cycles.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Cursor
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from ledger.domain.accounts import AccountFlags
from ledger.domain.balances import BalanceState
from ledger.domain.engine import AccountInfo, Effects, PostingRow
from ledger.domain.lots import LotState
from ledger.domain.units import Unit
from ledger.store.db import Conn

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Cur = Cursor[TupleRow]


def to_dt(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


def to_us(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


CLAIM_KEY = """
INSERT INTO idempotency (community_id, key, request_hash, transfer_id) VALUES (%s, %s, %s, %s)
ON CONFLICT DO NOTHING RETURNING 1
"""
READ_KEY = "SELECT request_hash, transfer_id, error FROM idempotency WHERE community_id = %s AND key = %s"
RECORD_FAILURE = "UPDATE idempotency SET transfer_id = NULL, error = %s WHERE community_id = %s AND key = %s"
COMMUNITY_ORIGIN = "SELECT origin FROM community WHERE community_id = %s"
ACCOUNTS = """
SELECT account_id, unit, flags, credit_limit, buckets FROM account
WHERE community_id = %s AND account_id = ANY(%s)
"""
# Locks the balance rows of every touched account that is not hot, in account order, in one statement.
LOCK_BALANCES = """
SELECT b.account_id, b.posted, b.pending_in, b.pending_out, b.version
FROM balance b JOIN account a USING (community_id, account_id)
WHERE b.community_id = %s AND b.account_id = ANY(%s) AND a.flags & 2 = 0
ORDER BY b.account_id
FOR UPDATE OF b
"""
OPEN_LOTS = """
SELECT account_id, lot_id, remaining, expires_at, earned_at FROM lot
WHERE community_id = %s AND account_id = ANY(%s) AND remaining > 0
"""
INSERT_TRANSFER = """
INSERT INTO transfer (community_id, transfer_id, kind, phase, effective_at, recorded_at, actor_id,
                      idempotency_key, reverses_id, pending_id, timeout_at, metadata)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
INSERT_POSTINGS = """
INSERT INTO posting (community_id, transfer_id, seq, account_id, unit, phase, amount, balance_after,
                     account_version, expires_at)
SELECT %s, %s, * FROM unnest(%s::int2[], %s::uuid[], %s::text[], %s::text[], %s::int8[], %s::int8[],
                             %s::int8[], %s::timestamptz[])
"""
# One statement per row, pipelined: a join with unnest() gets a generic plan (prepared statements)
# that walks every balance row of the community instead of looking each account up.
UPDATE_BALANCE = """
UPDATE balance SET posted = %s, pending_in = %s, pending_out = %s, version = %s
WHERE community_id = %s AND account_id = %s AND bucket = 0
"""
UPDATE_HOT_BUCKET = """
UPDATE balance SET posted = posted + %s, pending_in = pending_in + %s, pending_out = pending_out + %s,
                   version = version + 1
WHERE community_id = %s AND account_id = %s AND bucket = %s
"""
INSERT_LOTS = """
INSERT INTO lot (community_id, lot_id, account_id, transfer_id, seq, amount, remaining, earned_at, expires_at)
SELECT %s, u.lot_id, u.account_id, %s, u.seq, u.amount, u.amount, u.earned_at, u.expires_at
FROM unnest(%s::uuid[], %s::uuid[], %s::int2[], %s::int8[], %s::timestamptz[], %s::timestamptz[])
     AS u(lot_id, account_id, seq, amount, earned_at, expires_at)
"""
INSERT_MOVEMENTS = """
INSERT INTO lot_movement (community_id, transfer_id, seq, lot_id, amount)
SELECT %s, %s, * FROM unnest(%s::int2[], %s::uuid[], %s::int8[])
"""
UPDATE_LOTS = """
UPDATE lot l SET remaining = l.remaining + u.delta
FROM unnest(%s::uuid[], %s::int8[]) AS u(lot_id, delta)
WHERE l.community_id = %s AND l.lot_id = u.lot_id
"""
# The chain link. Python hands over the canonical leaf in three fragments around "index" and "prev";
# the head row is locked last and held only for this statement and the commit.
APPEND_LEAF = """
WITH head AS (
    SELECT size, last_hash FROM log_head WHERE community_id = %(c)s FOR UPDATE
), leaf AS (
    SELECT size AS idx,
           %(prefix)s::bytea || convert_to(size::text, 'UTF8') || %(middle)s::bytea
             || convert_to(encode(last_hash, 'hex'), 'UTF8') || %(suffix)s::bytea AS bytes
    FROM head
), ins AS (
    INSERT INTO log_leaf (community_id, idx, leaf, leaf_hash, transfer_id)
    SELECT %(c)s, idx, bytes, sha256('\\x00'::bytea || bytes), %(t)s FROM leaf
    RETURNING idx, leaf_hash
)
UPDATE log_head h SET size = ins.idx + 1, last_hash = ins.leaf_hash
FROM ins WHERE h.community_id = %(c)s
RETURNING ins.idx, ins.leaf_hash
"""


def account_infos(rows: Iterable[tuple[Any, ...]]) -> dict[uuid.UUID, AccountInfo]:
    return {r[0]: AccountInfo(r[0], Unit(r[1]), AccountFlags(r[2]), int(r[3]), int(r[4])) for r in rows}


def balance_states(
    rows: Iterable[tuple[Any, ...]], accounts: dict[uuid.UUID, AccountInfo]
) -> dict[uuid.UUID, BalanceState]:
    out: dict[uuid.UUID, BalanceState] = {}
    for account_id, posted, pending_in, pending_out, version in rows:
        info = accounts[account_id]
        out[account_id] = BalanceState(
            account_id, info.unit, info.flags, info.credit_limit, posted, pending_in, pending_out, version
        )
    return out


def lot_states(rows: Iterable[tuple[Any, ...]]) -> dict[uuid.UUID, list[LotState]]:
    out: dict[uuid.UUID, list[LotState]] = {}
    for account_id, lot_id, remaining, expires_at, earned_at in rows:
        earned = to_us(earned_at)
        assert earned is not None
        out.setdefault(account_id, []).append(LotState(lot_id, remaining, to_us(expires_at), earned))
    return out


def write_effects(
    cur: Cur,
    *,
    community_id: int,
    transfer_id: uuid.UUID,
    earned_us: int,
    rows: list[PostingRow],
    effects: Effects,
    balances: dict[uuid.UUID, BalanceState],
    hot_bucket: int,
    accounts: dict[uuid.UUID, AccountInfo],
) -> None:
    """Queue the posting, balance and lot writes of one transfer (the caller runs a pipeline)."""
    cur.execute(
        INSERT_POSTINGS,
        (
            community_id,
            transfer_id,
            [r.seq for r in rows],
            [r.account_id for r in rows],
            [str(r.unit) for r in rows],
            [str(r.phase) for r in rows],
            [r.amount for r in rows],
            [r.balance_after for r in rows],
            [r.account_version for r in rows],
            [to_dt(r.expires_at_us) for r in rows],
        ),
    )
    if effects.new_lots:
        lots = effects.new_lots
        cur.execute(
            INSERT_LOTS,
            (
                community_id,
                transfer_id,
                [lot.lot_id for lot in lots],
                [lot.account_id for lot in lots],
                [lot.seq for lot in lots],
                [lot.amount for lot in lots],
                [to_dt(lot.earned_us) for lot in lots],
                [to_dt(lot.expires_at_us) for lot in lots],
            ),
        )
    if effects.movements:
        moves = effects.movements
        cur.execute(
            INSERT_MOVEMENTS,
            (community_id, transfer_id, [m[0] for m in moves], [m[1] for m in moves], [m[2] for m in moves]),
        )
    update_balance_rows(cur, community_id, effects, balances, accounts, hot_bucket)


def update_balance_rows(
    cur: Cur,
    community_id: int,
    effects: Effects,
    balances: dict[uuid.UUID, BalanceState],
    accounts: dict[uuid.UUID, AccountInfo],
    hot_bucket: int,
) -> None:
    """Write the balance rows ``effects`` changed, in lock order: non-hot, hot buckets, then lots.

    Runs after lots are inserted, since lot deltas may apply to lots the same write created.
    """
    if effects.touched:
        states = [balances[a] for a in sorted(effects.touched)]
        cur.executemany(
            UPDATE_BALANCE,
            [(s.posted, s.pending_in, s.pending_out, s.version, community_id, s.account_id) for s in states],
        )
    for account_id in sorted(effects.hot_deltas):
        posted, pending_in, pending_out = effects.hot_deltas[account_id]
        bucket = hot_bucket % accounts[account_id].buckets
        cur.execute(UPDATE_HOT_BUCKET, (posted, pending_in, pending_out, community_id, account_id, bucket))
    if effects.lot_deltas:
        ids = sorted(effects.lot_deltas)
        cur.execute(UPDATE_LOTS, (ids, [effects.lot_deltas[i] for i in ids], community_id))


def insert_transfer(
    cur: Cur,
    *,
    community_id: int,
    transfer_id: uuid.UUID,
    kind: str,
    phase: str,
    effective_us: int,
    recorded_us: int,
    actor_id: uuid.UUID | None,
    idempotency_key: str,
    reverses_id: uuid.UUID | None,
    pending_id: uuid.UUID | None,
    timeout_us: int | None,
    metadata: dict[str, object],
) -> None:
    cur.execute(
        INSERT_TRANSFER,
        (
            community_id,
            transfer_id,
            kind,
            phase,
            to_dt(effective_us),
            to_dt(recorded_us),
            actor_id,
            idempotency_key,
            reverses_id,
            pending_id,
            to_dt(timeout_us),
            Jsonb(metadata),
        ),
    )


def connection_cursor(conn: Conn) -> Cur:
    return conn.cursor()
