"""The batch path: many transfers of one community in one atomic call (bulk import uses it).

Same rules as ``Ledger.transfer`` — the same validation, the same domain engine (in its form for
many single-phase transfers, ``SinglePoster``), the same leaf format — but set-based: one lock
statement for all touched balances, the chain computed in Python under the log-head lock, and every
row written with COPY. A small batch (group commit's groups of concurrent posts) writes its rows in
one pipeline with its commit instead, and the server computes its chain, taking the log head last.
Either every new transfer of the batch commits or none does; transfers whose idempotency key was
already used with the same request are skipped (importing a file twice posts nothing new).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import NamedTuple

from psycopg_pool import ConnectionPool

from ledger.domain.engine import Effects, SinglePoster
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7, uuid7_many
from ledger.domain.transfers import Phase, TransferRequest, validate_transfer
from ledger.services.batch_rows import CopiedRows, Item, Names, PipelinedRows, Rows
from ledger.services.collector import collector_paused
from ledger.services.results import TransferResult
from ledger.store import batch_repo as bsql
from ledger.store import ledger_repo as sql
from ledger.store.db import Conn
from ledger.store.ledger_repo import Cur

MAX_BATCH = 100_000


@dataclass(frozen=True, slots=True)
class BatchResult:
    posted: int  # transfers written by this call
    skipped: int  # transfers whose key had already been posted with the same request
    first_index: int | None  # log index range of the new leaves, inclusive
    last_index: int | None
    transfer_ids: tuple[uuid.UUID, ...]  # per request, in order (new or previously posted)


# Posting lines sent to the server per write while the batch is computed.
_STREAM_ROWS = 2000
# Up to this many requests (group commit's groups), everything is written by one statement, sent
# with the commit (PipelinedRows, migration 0014): one round trip instead of a COPY's two per table
# and a statement per balance row, and the log head is locked only by that last statement, so that
# another server process's group waits for less. Larger batches stream their postings while they are
# computed, then COPY the rest, holding the log head from their first round trip.
_PIPELINED = 256
# Requests validated per claim statement: the server inserts one slice's keys while the next slice
# is validated.
_CLAIM_SLICE = 2000


def _check_size(requests: Sequence[TransferRequest]) -> None:
    if not requests:
        raise LedgerError(ErrorCode.NO_POSTINGS, field="transfers")
    if len(requests) > MAX_BATCH:
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="transfers", max=MAX_BATCH)


def _prepare(
    conn: Conn, requests: Sequence[TransferRequest], before: Callable[[Conn], object] | None = None
) -> _Prepared:
    """Validate and hash every request and claim each key's first request, then read and lock what
    the batch touches: one pipeline, so still a single round trip. In a large batch each slice's
    keys are sent as soon as the slice is validated, and the server inserts them while the next
    slice is checked; a small batch (group commit's groups) sends its claims, reads and locks as one
    statement (``vledger_group_reads``, migration 0015).

    Locks follow the ledger's one order (see migration 0007): the claimed keys, non-hot balance
    rows, the hot buckets this batch will add to, then the log head (a small batch takes the head
    only at its end: ``_write``). The single path takes them in that order too, so a batch and
    concurrent single transfers cannot deadlock. Accounts of
    requests that turn out to be replays are read too: that costs nothing.

    ``before`` queues the caller's own statements at the head of the pipeline: the server runs them
    while the first slice is validated.

    A request that fails validation raises (with its index) before anything is read back; the
    caller rolls back the keys already claimed.
    """
    _check_size(requests)
    community_id = requests[0].community_id
    checked = _Checked(community_id, uuid7_many(len(requests)))
    claimed: list[Cur] = []
    small = len(requests) <= _PIPELINED
    unclaimed: list[Item] = []  # a small batch claims its keys with its reads, below
    with conn.pipeline():
        if before is not None:
            before(conn)
        for start in range(0, len(requests), _CLAIM_SLICE):
            first = checked.slice(requests, start, min(start + _CLAIM_SLICE, len(requests)))
            if small:
                unclaimed += first
            elif first:
                claimed.append(conn.execute(bsql.CLAIM_KEYS, (community_id, *_claim(first))))
        items, names = checked.items, checked.names
        hot_bucket = uuid7().int & 0x3FFFFFFF
        account_ids = sorted(names)
        debited = sorted({p.account_id for it in items for p in it.req.postings if p.amount < 0})
        if small:
            params = (community_id, *_claim(unclaimed), account_ids, debited, hot_bucket)
            one = conn.execute(bsql.GROUP_READS, params)
        else:
            queued = _queue_reads(conn, community_id, account_ids, debited, hot_bucket)
    if small:
        return _Prepared(community_id, items, names, bsql.group_reads(one), None, hot_bucket)
    return _Prepared(community_id, items, names, queued.fetch(claimed), queued.head, hot_bucket)


def _claim(first: list[Item]) -> tuple[str, str, str]:
    """The keys, hashes and transfer ids to claim, comma-joined (see batch_repo.CLAIM_KEYS)."""
    return (
        ",".join([it.req.idempotency_key for it in first]),
        ",".join([it.request_hash.hex() for it in first]),
        ",".join([it.transfer_text for it in first]),
    )


class _Checked:
    """The requests validated so far: their items, the account ids they name, each key's hash."""

    def __init__(self, community_id: int, new_ids: Sequence[uuid.UUID]) -> None:
        self.community_id = community_id
        self.new_ids = new_ids
        self.items: list[Item] = []
        self.names = Names()
        self.seen: dict[str, bytes] = {}

    def slice(self, requests: Sequence[TransferRequest], start: int, stop: int) -> list[Item]:
        """Validate and hash ``requests[start:stop]``; the first request of each new key."""
        first: list[Item] = []
        id_text = self.names.__getitem__
        for i in range(start, stop):
            req = requests[i]
            try:
                validate_transfer(req)
                if req.phase != Phase.SINGLE or req.community_id != self.community_id:
                    raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="phase")
            except LedgerError as err:
                err.detail["index"] = i
                raise
            digest = req.request_hash(id_text)
            transfer_id = req.transfer_id or self.new_ids[i]
            item = Item(req, transfer_id, digest, str(transfer_id))
            known = self.seen.get(req.idempotency_key)
            if known is None:
                self.seen[req.idempotency_key] = digest
                first.append(item)
            elif known != digest:
                raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key", index=i)
            self.items.append(item)
        return first


def post_batch(
    pool: ConnectionPool[Conn],
    requests: Sequence[TransferRequest],
    *,
    clock: Callable[[], int],
) -> BatchResult:
    with collector_paused():
        return _post_batch(pool, requests, clock)


def _post_batch(
    pool: ConnectionPool[Conn], requests: Sequence[TransferRequest], clock: Callable[[], int]
) -> BatchResult:
    _check_size(requests)
    with pool.connection() as conn:
        try:
            return _post(conn, _prepare(conn, requests), clock)[0]
        except BaseException:
            conn.rollback()
            raise


def write_batch(
    conn: Conn,
    requests: Sequence[TransferRequest],
    *,
    clock: Callable[[], int],
    before: Callable[[Conn], object] | None = None,
) -> BatchResult:
    """post_batch inside the caller's open transaction on ``conn``, without committing: the caller
    commits (its own rows and the batch land together) or rolls back. ``before(conn)`` queues the
    caller's own statements ahead of the batch's first ones, in its pipeline (no COPY there), so
    that the server runs them while the batch is validated. Raises as post_batch does (a failed
    statement of ``before``'s too); the caller must then roll back."""
    with collector_paused():
        return _post(conn, _prepare(conn, requests, before), clock, commit=False)[0]


def post_group(
    pool: ConnectionPool[Conn],
    requests: Sequence[TransferRequest],
    *,
    clock: Callable[[], int],
) -> dict[int, TransferResult]:
    """Post concurrent callers' transfers together (ledger.services.group_commit), atomically.

    Returns the result of every request that this call posted, by position. A request missing
    from the answer was a replay (its key was used before, or earlier in the group): the caller
    asks the single path for it, which answers replays. Raises like post_batch; nothing is then
    written, and the caller posts each request on its own.
    """
    _check_size(requests)
    with pool.connection() as conn:
        try:
            prepared = _prepare(conn, requests)
            _, rows = _post(conn, prepared, clock, results=True)
        except BaseException:
            conn.rollback()
            raise
    if rows is None:
        return {}
    position = {id(it): i for i, it in enumerate(prepared.items)}
    return {position[id(it)]: result for it, result in rows.results()}


def _earlier(
    conn: Conn, community_id: int, items: list[Item], claimed: AbstractSet[str]
) -> dict[str, uuid.UUID]:
    """The transfer id stored for each key used before this batch (its replay); a key used with
    another request is IDEMPOTENCY_CONFLICT, a key that failed fails the same way again."""
    earlier = list(
        dict.fromkeys(it.req.idempotency_key for it in items if it.req.idempotency_key not in claimed)
    )
    done: dict[str, uuid.UUID] = {}
    if not earlier:
        return done
    position = {it.req.idempotency_key: i for i, it in reversed(list(enumerate(items)))}
    for key, stored_hash, transfer_id, error in conn.execute(bsql.READ_KEYS, (community_id, earlier)):
        index = position[key]
        if bytes(stored_hash) != items[index].request_hash:
            raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key", index=index)
        if error is not None:
            err = LedgerError.from_dict(error)
            err.detail["index"] = index
            raise err
        done[key] = transfer_id
    return done


class _Queued(NamedTuple):
    """A large batch's reads and locks, queued in its pipeline (read once the pipeline has synced)."""

    origin: Cur
    accounts: Cur
    balances: Cur
    lots: Cur
    hot: Cur
    head: Cur  # a large batch computes its chain in Python: it holds the head from here

    def fetch(self, claimed: list[Cur]) -> bsql.GroupReads:
        origin = self.origin.fetchone()
        accounts = sql.account_infos(self.accounts)
        return bsql.GroupReads(
            None if origin is None else str(origin[0]),
            frozenset(row[0] for cur in claimed for row in cur),
            accounts,
            sql.balance_states(self.balances, accounts),
            sql.lot_states(self.lots),
        )


class _Prepared(NamedTuple):
    community_id: int
    items: list[Item]
    names: Names  # holds every account id the batch's postings name
    reads: bsql.GroupReads
    head: Cur | None  # a large batch's locked log head; a small batch's leaves lock it at its end
    hot_bucket: int  # the bucket of each hot account this batch adds to (modulo its bucket count)


def _queue_reads(
    conn: Conn, community_id: int, account_ids: list[uuid.UUID], debited: list[uuid.UUID], hot_bucket: int
) -> _Queued:
    """Queue (in the caller's pipeline) a large batch's reads and locks, in the ledger's lock order:
    the statements vledger_group_reads (migration 0015) runs for a small batch, then the head."""
    ids = {"c": community_id, "a": account_ids}
    return _Queued(
        conn.execute(sql.COMMUNITY_ORIGIN, (community_id,)),
        conn.execute(sql.ACCOUNTS, ids),
        conn.execute(sql.LOCK_BALANCES, ids),
        conn.execute(sql.OPEN_LOTS, {"c": community_id, "a": debited}),
        conn.execute(bsql.LOCK_HOT_BUCKETS, {**ids, "bucket": hot_bucket}),
        conn.execute(bsql.LOCK_HEAD, (community_id,)),
    )


def _post(
    conn: Conn,
    prepared: _Prepared,
    clock: Callable[[], int],
    *,
    commit: bool = True,
    results: bool = False,
) -> tuple[BatchResult, Rows | None]:
    """Write the batch; the rows answer each transfer's result when ``results`` is set."""
    community_id, items, reads = prepared.community_id, prepared.items, prepared.reads
    if reads.origin is None:
        raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
    origin = reads.origin
    done = _earlier(conn, community_id, items, reads.claimed)
    new = [it for it in items if it.req.idempotency_key not in done]
    # A key repeated inside the batch posts once.
    first_by_key: dict[str, Item] = {}
    for it in new:
        first_by_key.setdefault(it.req.idempotency_key, it)
    new = list(first_by_key.values())
    ids = tuple(
        done.get(it.req.idempotency_key) or first_by_key[it.req.idempotency_key].transfer_id for it in items
    )
    if not new:
        if commit:
            conn.commit()
        return BatchResult(0, len(items), None, None, ids), None
    out = _write(conn, prepared, origin, new, clock, commit=commit, results=results)
    return BatchResult(len(new), len(items) - len(new), out.first_index, out.size - 1, ids), out


def _rows(prepared: _Prepared, origin: str, recorded_us: int, *, results: bool) -> CopiedRows | PipelinedRows:
    """The rows a batch writes: with the chain from the log head it holds, or for the server to chain."""
    head = prepared.head
    if head is None:
        return PipelinedRows(prepared.community_id, origin, recorded_us, prepared.names, results=results)
    row = head.fetchone()
    assert row is not None
    size, prev = int(row[0]), bytes(row[1])
    return CopiedRows(prepared.community_id, origin, recorded_us, size, prev, prepared.names, results=results)


def _write(
    conn: Conn,
    prepared: _Prepared,
    origin: str,
    new: list[Item],
    clock: Callable[[], int],
    *,
    commit: bool,
    results: bool,
) -> Rows:
    """Apply and write the batch's new transfers (the first of each key not used before)."""
    community_id, items, reads = prepared.community_id, prepared.items, prepared.reads
    accounts, balances, lots = reads.accounts, reads.balances, reads.lots
    recorded_us = clock()
    out = _rows(prepared, origin, recorded_us, results=results)
    total = Effects()
    # Lots are created by credits only: one id per credit posting is enough.
    lot_ids = iter(uuid7_many(sum(1 for it in new for p in it.req.postings if p.amount > 0)))
    poster = SinglePoster(
        accounts=accounts, balances=balances, lots=lots, effects=total, new_id=lot_ids.__next__
    )

    def apply_all(send: Callable[[str], object] | None) -> None:
        for it in new:
            req = it.req
            effective_us = req.effective_us if req.effective_us is not None else recorded_us
            try:
                rows = poster.apply(req.postings, effective_us)
            except LedgerError as err:
                err.detail["index"] = next(i for i, x in enumerate(items) if x is it)
                raise
            out.add(it, effective_us, rows, total.new_lots, total.movements)
            # Written out as lines: the objects would only keep the garbage collector busy.
            total.new_lots.clear()
            total.movements.clear()
            if send is not None and len(out.postings) >= _STREAM_ROWS:
                send("".join(out.postings))
                out.postings.clear()

    # One bucket per batch for each hot account (locked above): a batch is one lock holder.
    if isinstance(out, PipelinedRows):
        apply_all(None)
        lines = sql.balance_lines(total, balances, accounts, prepared.hot_bucket)
        with conn.pipeline():
            written = out.write(conn, *lines)  # locks the log head: the last lock, the last statement
            if commit:
                # As a statement: the pipeline's one Sync, when it ends, then covers the commit too
                # (Connection.commit() would sync, and the pipeline's end sync again).
                conn.execute("COMMIT")
        out.appended(written)
    else:
        # Postings stream to the server while the rest is computed, so its inserts overlap this loop.
        with conn.cursor().copy(bsql.COPY_POSTINGS) as copy:
            apply_all(copy.write)
            copy.write("".join(out.postings))
        out.postings.clear()
        out.copy_rest(conn)
        with conn.pipeline():
            sql.update_balance_rows(
                conn.cursor(), community_id, total, balances, accounts, prepared.hot_bucket
            )
            conn.execute(bsql.SET_HEAD, (out.size, out.prev, community_id))
        if commit:
            conn.commit()
    return out
