"""SQL for the single-transfer path: lock, read, write, append to the log. All of it, nothing else.

Lock order, everywhere: non-hot balance rows sorted by account id, then hot bucket rows sorted by
account id, then the community's log head. With one order there are no deadlock cycles.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from psycopg import Cursor
from psycopg.rows import TupleRow

from ledger.domain.accounts import AccountFlags
from ledger.domain.balances import BalanceState
from ledger.domain.engine import AccountInfo, Effects, PostingRow
from ledger.domain.lots import LotState
from ledger.domain.times import to_us
from ledger.domain.units import Unit

Cur = Cursor[TupleRow]


CLAIM_KEY = """
INSERT INTO idempotency (community_id, key, request_hash, transfer_id) VALUES (%s, %s, %s, %s)
ON CONFLICT DO NOTHING RETURNING 1
"""
READ_KEY = "SELECT request_hash, transfer_id, error FROM idempotency WHERE community_id = %s AND key = %s"
RECORD_FAILURE = "UPDATE idempotency SET transfer_id = NULL, error = %s WHERE community_id = %s AND key = %s"
COMMUNITY_ORIGIN = "SELECT origin FROM community WHERE community_id = %s"
# The statements below that take a list of account ids look each one up by primary key, one id at a
# time (a LATERAL subquery per id, from the distinct ids in order), whatever the planner believes
# about the community. With ``community_id = c AND account_id = ANY(ids)`` the plan depended on the
# statistics: a community created or grown since the last ANALYZE is estimated at one row, and the
# planner then scanned all its rows and filtered (~0.15 ms instead of ~0.04 ms for 9 accounts; for
# the hot-bucket lock, a nested loop over every balance row times every account: ~280 ms). The
# fences that keep each lookup a lookup: the subqueries are not flattened into joins (OFFSET 0, FOR
# UPDATE, GROUP BY), and the ids come sorted, so rows are also locked in account order.
# tests/integration/test_plans.py checks the plans after an ANALYZE that predates the community.
SORTED_IDS = "(SELECT DISTINCT u.id FROM unnest(%(a)s::uuid[]) AS u (id) ORDER BY 1) AS i"
ACCOUNTS = f"""
SELECT a.account_id, a.unit, a.flags, a.credit_limit, a.buckets
FROM {SORTED_IDS}
CROSS JOIN LATERAL (
    SELECT * FROM account a WHERE a.community_id = %(c)s AND a.account_id = i.id OFFSET 0
) AS a
"""  # noqa: S608 - joins a constant of ledger_repo, no input
# Locks the balance rows of every touched account that is not hot, in account order, in one statement.
LOCK_BALANCES = f"""
SELECT b.account_id, b.posted, b.pending_in, b.pending_out, b.version
FROM {SORTED_IDS}
CROSS JOIN LATERAL (
    SELECT b.* FROM balance b
    WHERE b.community_id = %(c)s AND b.account_id = i.id
      AND NOT EXISTS (
        SELECT FROM account a
        WHERE a.community_id = b.community_id AND a.account_id = b.account_id AND a.flags & 2 <> 0
      )
    FOR UPDATE OF b
) AS b
"""  # noqa: S608 - joins a constant of ledger_repo, no input
OPEN_LOTS = f"""
SELECT l.account_id, l.lot_id, l.remaining, l.expires_at, l.earned_at
FROM {SORTED_IDS}
CROSS JOIN LATERAL (
    SELECT * FROM lot l WHERE l.community_id = %(c)s AND l.account_id = i.id AND l.remaining > 0 OFFSET 0
) AS l
"""  # noqa: S608 - joins a constant of ledger_repo, no input
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
UPDATE_LOTS = """
UPDATE lot l SET remaining = l.remaining + u.delta
FROM unnest(%s::uuid[], %s::int8[]) AS u(lot_id, delta)
WHERE l.community_id = %s AND l.lot_id = u.lot_id
"""

WRITE_TRANSFER = "SELECT leaf_index, leaf_hash FROM vledger_write_transfer(%s)"


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def transfer_document(
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
    rows: list[PostingRow],
    effects: Effects,
    balances: dict[uuid.UUID, BalanceState],
    accounts: dict[uuid.UUID, AccountInfo],
    hot_bucket: int,
    leaf: tuple[bytes, bytes, bytes],
) -> dict[str, object]:
    """Everything ``vledger_write_transfer`` (migration 0007) writes for one transfer, as JSON.

    Lists are in lock order (balance rows and hot accounts by account id, lots by id), matching
    ``update_balance_rows``. The leaf comes as the three canonical fragments around index and prev.
    """
    doc: dict[str, object] = {
        "c": community_id,
        "t": str(transfer_id),
        "kind": kind,
        "phase": phase,
        "eff": effective_us,
        "rec": recorded_us,
        "actor": _text(actor_id),
        "key": idempotency_key,
        "rev": _text(reverses_id),
        "pend": _text(pending_id),
        "timeout": timeout_us,
        "meta": metadata,
        "p": [
            {
                "seq": r.seq,
                "a": str(r.account_id),
                "u": r.unit.value,
                "ph": r.phase.value,
                "amt": r.amount,
                "bal": r.balance_after,
                "ver": r.account_version,
                "exp": r.expires_at_us,
            }
            for r in rows
        ],
        "bal": [
            {"a": str(a), "posted": b.posted, "pin": b.pending_in, "pout": b.pending_out, "ver": b.version}
            for a in sorted(effects.touched)
            for b in (balances[a],)
        ],
        "hot": [
            {"a": str(a), "b": hot_bucket % accounts[a].buckets, "posted": d[0], "pin": d[1], "pout": d[2]}
            for a in sorted(effects.hot_deltas)
            for d in (effects.hot_deltas[a],)
        ],
        "lotd": [{"id": str(i), "delta": effects.lot_deltas[i]} for i in sorted(effects.lot_deltas)],
        "pre": leaf[0].decode(),
        "mid": leaf[1].decode(),
        "suf": leaf[2].decode(),
    }
    if effects.new_lots:
        doc["lots"] = [
            {
                "id": str(lot.lot_id),
                "a": str(lot.account_id),
                "seq": lot.seq,
                "amt": lot.amount,
                "earned": lot.earned_us,
                "exp": lot.expires_at_us,
            }
            for lot in effects.new_lots
        ]
    if effects.movements:
        doc["moves"] = [
            {"seq": seq, "lot": str(lot), "amt": amount} for seq, lot, amount in effects.movements
        ]
    return doc


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


def balance_lines(
    effects: Effects,
    balances: dict[uuid.UUID, BalanceState],
    accounts: dict[uuid.UUID, AccountInfo],
    hot_bucket: int,
) -> tuple[str, str, str]:
    """What ``update_balance_rows`` writes, as the lines vledger_write_group takes (migration 0014):
    the balance rows, the hot buckets' deltas and the lots' deltas, each in lock order."""
    rows = [balances[a] for a in sorted(effects.touched)]
    return (
        "".join(
            [f"{s.account_id}\t{s.posted}\t{s.pending_in}\t{s.pending_out}\t{s.version}\n" for s in rows]
        ),
        "".join(["\t".join(map(str, add)) + "\n" for add in _hot_adds(effects, accounts, hot_bucket)]),
        "".join([f"{lot_id}\t{effects.lot_deltas[lot_id]}\n" for lot_id in sorted(effects.lot_deltas)]),
    )


def _hot_adds(
    effects: Effects, accounts: dict[uuid.UUID, AccountInfo], hot_bucket: int
) -> list[tuple[uuid.UUID, int, int, int, int]]:
    """(account, bucket, posted, pending_in, pending_out) added to each hot account, in lock order:
    a batch adds to one bucket of each (``hot_bucket`` modulo the account's bucket count)."""
    adds = []
    for account_id in sorted(effects.hot_deltas):
        posted, pending_in, pending_out = effects.hot_deltas[account_id]
        adds.append((account_id, hot_bucket % accounts[account_id].buckets, posted, pending_in, pending_out))
    return adds


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
    for account_id, bucket, posted, pending_in, pending_out in _hot_adds(effects, accounts, hot_bucket):
        cur.execute(UPDATE_HOT_BUCKET, (posted, pending_in, pending_out, community_id, account_id, bucket))
    if effects.lot_deltas:
        ids = sorted(effects.lot_deltas)
        cur.execute(UPDATE_LOTS, (ids, [effects.lot_deltas[i] for i in ids], community_id))
