"""The batch path: many transfers of one community in one atomic call (bulk import uses it).

Same rules as ``Ledger.transfer`` — the same validation, the same domain engine, the same leaf
format — but set-based: one lock statement for all touched balances, the chain computed in Python
under the log-head lock, and every row written with binary COPY. Either every new transfer of the
batch commits or none does; transfers whose idempotency key was already used with the same request
are skipped (importing a file twice posts nothing new).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from ledger.audit.leaf import leaf_hash, transfer_leaf_template
from ledger.domain.engine import Effects, Planned, PostingRow, apply_postings
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7, uuid7_many
from ledger.domain.transfers import Phase, TransferRequest, validate_transfer
from ledger.store import batch_repo as bsql
from ledger.store import ledger_repo as sql
from ledger.store.db import Conn

MAX_BATCH = 100_000


class _Times(dict[int | None, object]):
    """Microseconds to datetimes, memoised: a batch repeats a few instants many times."""

    def __missing__(self, us: int | None) -> object:
        value = self[us] = sql.to_dt(us)
        return value


@dataclass(frozen=True, slots=True)
class BatchResult:
    posted: int  # transfers written by this call
    skipped: int  # transfers whose key had already been posted with the same request
    first_index: int | None  # log index range of the new leaves, inclusive
    last_index: int | None
    transfer_ids: tuple[uuid.UUID, ...]  # per request, in order (new or previously posted)


@dataclass(slots=True)
class _Item:
    req: TransferRequest
    transfer_id: uuid.UUID
    request_hash: bytes


def _prepare(requests: Sequence[TransferRequest]) -> tuple[int, list[_Item]]:
    if not requests:
        raise LedgerError(ErrorCode.NO_POSTINGS, field="transfers")
    if len(requests) > MAX_BATCH:
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="transfers", max=MAX_BATCH)
    community_id = requests[0].community_id
    items: list[_Item] = []
    seen: dict[str, bytes] = {}
    new_ids = uuid7_many(len(requests))
    for i, req in enumerate(requests):
        try:
            validate_transfer(req)
            if req.phase != Phase.SINGLE or req.community_id != community_id:
                raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="phase")
        except LedgerError as err:
            err.detail["index"] = i
            raise
        digest = req.request_hash()
        if seen.setdefault(req.idempotency_key, digest) != digest:
            raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key", index=i)
        items.append(_Item(req, req.transfer_id or new_ids[i], digest))
    return community_id, items


def post_batch(
    pool: ConnectionPool[Conn],
    requests: Sequence[TransferRequest],
    *,
    clock: Callable[[], int],
) -> BatchResult:
    community_id, items = _prepare(requests)
    with pool.connection() as conn:
        try:
            return _post(conn, community_id, items, clock)
        except BaseException:
            conn.rollback()
            raise


def _claim(conn: Conn, community_id: int, items: list[_Item]) -> dict[str, uuid.UUID]:
    """Claim every new key; return the transfer id already stored for keys used before."""
    unique = {item.req.idempotency_key: item for item in items}
    bsql.stage_keys(conn, [(k, it.request_hash, it.transfer_id) for k, it in unique.items()])
    claimed = {row[0] for row in conn.execute(bsql.CLAIM_STAGED, (community_id,))}
    earlier = [k for k in unique if k not in claimed]
    done: dict[str, uuid.UUID] = {}
    if earlier:
        position = {it.req.idempotency_key: i for i, it in reversed(list(enumerate(items)))}
        for key, same, transfer_id, error in conn.execute(bsql.READ_STAGED, (community_id, earlier)):
            index = position[key]
            if not same:
                raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key", index=index)
            if error is not None:
                err = LedgerError.from_dict(error)
                err.detail["index"] = index
                raise err
            done[key] = transfer_id
    return done


def _post(conn: Conn, community_id: int, items: list[_Item], clock: Callable[[], int]) -> BatchResult:
    origin_row = conn.execute(sql.COMMUNITY_ORIGIN, (community_id,)).fetchone()
    if origin_row is None:
        raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
    origin = str(origin_row[0])
    done = _claim(conn, community_id, items)
    new = [it for it in items if it.req.idempotency_key not in done]
    # A key repeated inside the batch posts once.
    first_by_key: dict[str, _Item] = {}
    for it in new:
        first_by_key.setdefault(it.req.idempotency_key, it)
    new = list(first_by_key.values())
    ids = tuple(
        done.get(it.req.idempotency_key) or first_by_key[it.req.idempotency_key].transfer_id for it in items
    )
    if not new:
        conn.commit()
        return BatchResult(0, len(items), None, None, ids)

    account_ids = sorted({p.account_id for it in new for p in it.req.postings})
    debited = sorted({p.account_id for it in new for p in it.req.postings if p.amount < 0})
    accounts = sql.account_infos(conn.execute(sql.ACCOUNTS, (community_id, account_ids)))
    balances = sql.balance_states(conn.execute(sql.LOCK_BALANCES, (community_id, account_ids)), accounts)
    lots = sql.lot_states(conn.execute(sql.OPEN_LOTS, (community_id, debited)))

    recorded_us = clock()
    to_dt = _Times().__getitem__
    # Lots are created by credits only: one id per credit posting is enough.
    lot_ids = iter(uuid7_many(sum(1 for it in new for p in it.req.postings if p.amount > 0)))
    total = Effects()
    lot_rows: list[tuple[object, ...]] = []
    movement_rows: list[tuple[object, ...]] = []
    applied: list[tuple[_Item, int, list[PostingRow]]] = []
    position = {id(it): i for i, it in enumerate(items)}
    for it in new:
        effective_us = it.req.effective_us if it.req.effective_us is not None else recorded_us
        planned = [
            Planned(p.account_id, p.unit, p.amount, Phase.SINGLE, expires_at_us=p.expires_at_us)
            for p in it.req.postings
        ]
        effects = Effects()
        try:
            rows = apply_postings(
                planned,
                earned_us=effective_us,
                accounts=accounts,
                balances=balances,
                lots=lots,
                effects=effects,
                new_id=lot_ids.__next__,
            )
        except LedgerError as err:
            err.detail["index"] = position[id(it)]
            raise
        _accumulate(total, effects)
        lot_rows.extend(
            (
                community_id,
                lot.lot_id,
                lot.account_id,
                it.transfer_id,
                lot.seq,
                lot.amount,
                lot.amount,
                to_dt(lot.earned_us),
                to_dt(lot.expires_at_us),
            )
            for lot in effects.new_lots
        )
        movement_rows.extend(
            (community_id, it.transfer_id, seq, lot_id, amount) for seq, lot_id, amount in effects.movements
        )
        applied.append((it, effective_us, rows))

    transfer_rows, posting_rows, leaf_rows, first_index, size, prev = _chain(
        conn, community_id, origin, recorded_us, applied, to_dt
    )
    bsql.copy_rows(conn, "transfer", bsql.TRANSFER_COLUMNS, bsql.TRANSFER_TYPES, transfer_rows)
    bsql.copy_rows(conn, "posting", bsql.POSTING_COLUMNS, bsql.POSTING_TYPES, posting_rows)
    bsql.copy_rows(conn, "lot", bsql.LOT_COLUMNS, bsql.LOT_TYPES, lot_rows)
    bsql.copy_rows(conn, "lot_movement", bsql.MOVEMENT_COLUMNS, bsql.MOVEMENT_TYPES, movement_rows)
    bsql.copy_rows(conn, "log_leaf", bsql.LEAF_COLUMNS, bsql.LEAF_TYPES, leaf_rows)
    # One bucket per batch for each hot account: a batch is already one lock holder.
    sql.update_balance_rows(conn.cursor(), community_id, total, balances, accounts, uuid7().int)
    conn.execute(bsql.SET_HEAD, (size, prev, community_id))
    conn.commit()
    return BatchResult(len(new), len(items) - len(new), first_index, size - 1, ids)


def _chain(
    conn: Conn,
    community_id: int,
    origin: str,
    recorded_us: int,
    applied: list[tuple[_Item, int, list[PostingRow]]],
    to_dt: Callable[[int | None], object],
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]], int, int, bytes]:
    """Lock the log head and build the transfer, posting and leaf rows, chaining each leaf to the last."""
    head = conn.execute(bsql.LOCK_HEAD, (community_id,)).fetchone()
    assert head is not None
    size, prev = int(head[0]), bytes(head[1])
    first_index = size
    transfer_rows: list[tuple[object, ...]] = []
    posting_rows: list[tuple[object, ...]] = []
    leaf_rows: list[tuple[object, ...]] = []
    names: dict[uuid.UUID, str] = {}  # account ids repeat across a batch: format each once

    def name(account_id: uuid.UUID) -> str:
        text = names.get(account_id)
        if text is None:
            text = names[account_id] = str(account_id)
        return text

    for it, effective_us, rows in applied:
        req = it.req
        leaf = transfer_leaf_template(
            origin=origin,
            transfer_id=it.transfer_id,
            kind=req.kind,
            phase="single",
            effective_us=effective_us,
            recorded_us=recorded_us,
            actor=req.actor_id,
            idempotency_key=req.idempotency_key,
            postings=[(name(r.account_id), r.unit.value, r.amount) for r in rows],
            reverses=None,
            pending_id=None,
            timeout_us=None,
        ).render(size, prev)
        prev = leaf_hash(leaf)
        leaf_rows.append((community_id, size, leaf, prev, it.transfer_id))
        size += 1
        transfer_rows.append(
            (
                community_id,
                it.transfer_id,
                req.kind,
                "single",
                to_dt(effective_us),
                to_dt(recorded_us),
                req.actor_id,
                req.idempotency_key,
                bsql.jsonb(req.metadata),
            )
        )
        posting_rows.extend(
            (
                community_id,
                it.transfer_id,
                r.seq,
                r.account_id,
                r.unit.value,
                "single",
                r.amount,
                r.balance_after,
                r.account_version,
                to_dt(r.expires_at_us),
            )
            for r in rows
        )
    return transfer_rows, posting_rows, leaf_rows, first_index, size, prev


def _accumulate(total: Effects, effects: Effects) -> None:
    total.touched |= effects.touched
    for account_id, delta in effects.hot_deltas.items():
        acc = total.hot_deltas.setdefault(account_id, [0, 0, 0])
        for k in range(3):
            acc[k] += delta[k]
    for lot_id, delta_points in effects.lot_deltas.items():
        total.lot_deltas[lot_id] = total.lot_deltas.get(lot_id, 0) + delta_points
