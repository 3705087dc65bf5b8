"""The batch path: many transfers of one community in one atomic call (bulk import uses it).

Same rules as ``Ledger.transfer`` — the same validation, the same domain engine (in its form for
many single-phase transfers, ``SinglePoster``), the same leaf format — but set-based: one lock
statement for all touched balances, the chain computed in Python under the log-head lock, and every
row written with COPY. Either every new transfer of the batch commits or none does; transfers whose
idempotency key was already used with the same request are skipped (importing a file twice posts
nothing new).
"""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from psycopg_pool import ConnectionPool

from ledger.audit.leaf import SingleTransferLeaves, leaf_hash
from ledger.domain.engine import Effects, NewLot, SinglePoster
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7, uuid7_many
from ledger.domain.times import to_dt
from ledger.domain.transfers import Phase, TransferRequest, validate_transfer
from ledger.services.results import PostingView, Receipt, TransferResult
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


@dataclass(slots=True)
class _Item:
    req: TransferRequest
    transfer_id: uuid.UUID
    request_hash: bytes
    transfer_text: str  # str(transfer_id): the claim, the rows and the leaf all write it


class _Names(dict[uuid.UUID, str]):
    """``names[account_id]`` is ``str(account_id)``, computed once: a batch writes each account id
    into many request hashes, rows and leaves. After _prepare it holds every account id the
    batch's postings name."""

    def __missing__(self, account_id: uuid.UUID) -> str:
        text = self[account_id] = str(account_id)
        return text


# Requests validated per claim statement: the server inserts one slice's keys while the next slice
# is validated.
_CLAIM_SLICE = 2000


def _check_size(requests: Sequence[TransferRequest]) -> None:
    if not requests:
        raise LedgerError(ErrorCode.NO_POSTINGS, field="transfers")
    if len(requests) > MAX_BATCH:
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="transfers", max=MAX_BATCH)


def _prepare(conn: Conn, requests: Sequence[TransferRequest]) -> _Prepared:
    """Validate and hash every request and claim each key's first request, then read and lock what
    the batch touches: one pipeline, so still a single round trip. Each slice's keys are sent as
    soon as the slice is validated, and the server inserts them while the next slice is checked.

    Locks follow the ledger's one order (see migration 0007): the claimed keys, non-hot balance
    rows, the hot buckets this batch will add to, then the log head. The single path takes them in
    that order too, so a batch and concurrent single transfers cannot deadlock. Accounts of
    requests that turn out to be replays are read too: that costs nothing.

    A request that fails validation raises (with its index) before anything is read back; the
    caller rolls back the keys already claimed.
    """
    _check_size(requests)
    community_id = requests[0].community_id
    items: list[_Item] = []
    seen: dict[str, bytes] = {}
    names = _Names()
    id_text = names.__getitem__
    new_ids = uuid7_many(len(requests))
    claimed: list[Cur] = []
    with conn.pipeline():
        for start in range(0, len(requests), _CLAIM_SLICE):
            first: list[_Item] = []  # the first request of each key, in this slice
            for i in range(start, min(start + _CLAIM_SLICE, len(requests))):
                req = requests[i]
                try:
                    validate_transfer(req)
                    if req.phase != Phase.SINGLE or req.community_id != community_id:
                        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="phase")
                except LedgerError as err:
                    err.detail["index"] = i
                    raise
                digest = req.request_hash(id_text)
                transfer_id = req.transfer_id or new_ids[i]
                item = _Item(req, transfer_id, digest, str(transfer_id))
                known = seen.get(req.idempotency_key)
                if known is None:
                    seen[req.idempotency_key] = digest
                    first.append(item)
                elif known != digest:
                    raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key", index=i)
                items.append(item)
            if first:
                claim = (
                    community_id,
                    ",".join([it.req.idempotency_key for it in first]),
                    ",".join([it.request_hash.hex() for it in first]),
                    ",".join([it.transfer_text for it in first]),
                )
                claimed.append(conn.execute(bsql.CLAIM_KEYS, claim))
        reads = _lock_reads(conn, community_id, items, names, claimed)
    return _Prepared(community_id, items, names, reads)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a large batch. A batch allocates some ten container
    objects per transfer, all alive until it ends and none in a reference cycle, so each collection
    it triggers walks them (and the rest of the heap) for nothing: about a tenth of a 10,000-transfer
    call. Paused process-wide, for the length of one call; resumed unless someone else paused it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def post_batch(
    pool: ConnectionPool[Conn],
    requests: Sequence[TransferRequest],
    *,
    clock: Callable[[], int],
) -> BatchResult:
    with _collector_paused():
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


def write_batch(conn: Conn, requests: Sequence[TransferRequest], *, clock: Callable[[], int]) -> BatchResult:
    """post_batch inside the caller's open transaction on ``conn``, without committing: the caller
    commits (its own rows and the batch land together) or rolls back. Raises as post_batch does;
    the caller must then roll back."""
    with _collector_paused():
        return _post(conn, _prepare(conn, requests), clock, commit=False)[0]


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


def _earlier(conn: Conn, community_id: int, items: list[_Item], claimed: set[str]) -> dict[str, uuid.UUID]:
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


class _Reads(NamedTuple):
    origin: Cur
    claimed: list[Cur]  # one per claim statement: the keys it claimed
    accounts: Cur
    balances: Cur
    lots: Cur
    hot: Cur
    head: Cur
    hot_bucket: int  # the bucket of each hot account this batch adds to (modulo its bucket count)


class _Prepared(NamedTuple):
    community_id: int
    items: list[_Item]
    names: _Names  # holds every account id the batch's postings name
    reads: _Reads


def _lock_reads(
    conn: Conn, community_id: int, items: list[_Item], names: _Names, claimed: list[Cur]
) -> _Reads:
    """Queue (in the caller's pipeline) the reads and locks of everything the batch touches."""
    hot_bucket = uuid7().int & 0x3FFFFFFF
    account_ids = sorted(names)
    debited = sorted({p.account_id for it in items for p in it.req.postings if p.amount < 0})
    return _Reads(
        conn.execute(sql.COMMUNITY_ORIGIN, (community_id,)),
        claimed,
        conn.execute(sql.ACCOUNTS, (community_id, account_ids)),
        conn.execute(sql.LOCK_BALANCES, (community_id, account_ids)),
        conn.execute(sql.OPEN_LOTS, (community_id, debited)),
        conn.execute(bsql.LOCK_HOT_BUCKETS, (community_id, account_ids, hot_bucket)),
        conn.execute(bsql.LOCK_HEAD, (community_id,)),
        hot_bucket,
    )


def _post(
    conn: Conn,
    prepared: _Prepared,
    clock: Callable[[], int],
    *,
    commit: bool = True,
    results: bool = False,
) -> tuple[BatchResult, _Rows | None]:
    """Write the batch; the rows answer each transfer's result when ``results`` is set."""
    community_id, items, names, reads = prepared
    origin_row = reads.origin.fetchone()
    if origin_row is None:
        raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
    origin = str(origin_row[0])
    done = _earlier(conn, community_id, items, {row[0] for cur in reads.claimed for row in cur})
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
        if commit:
            conn.commit()
        return BatchResult(0, len(items), None, None, ids), None

    accounts = sql.account_infos(reads.accounts)
    balances = sql.balance_states(reads.balances, accounts)
    lots = sql.lot_states(reads.lots)
    recorded_us = clock()
    head = reads.head.fetchone()
    assert head is not None
    out = _Rows(community_id, origin, recorded_us, int(head[0]), bytes(head[1]), names, results=results)
    total = Effects()
    # Lots are created by credits only: one id per credit posting is enough.
    lot_ids = iter(uuid7_many(sum(1 for it in new for p in it.req.postings if p.amount > 0)))
    poster = SinglePoster(
        accounts=accounts, balances=balances, lots=lots, effects=total, new_id=lot_ids.__next__
    )
    # Postings stream to the server while the rest is computed, so its inserts overlap this loop.
    with conn.cursor().copy(bsql.COPY_POSTINGS) as copy:
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
            if len(out.postings) >= _STREAM_ROWS:
                copy.write("".join(out.postings))
                out.postings.clear()
        copy.write("".join(out.postings))
    out.postings.clear()
    out.copy_rest(conn)
    with conn.pipeline():
        # One bucket per batch for each hot account (locked above): a batch is one lock holder.
        sql.update_balance_rows(conn.cursor(), community_id, total, balances, accounts, reads.hot_bucket)
        conn.execute(bsql.SET_HEAD, (out.size, out.prev, community_id))
    if commit:
        conn.commit()
    return BatchResult(len(new), len(items) - len(new), out.first_index, out.size - 1, ids), out


# Posting lines sent to the server per write while the batch is computed.
_STREAM_ROWS = 2000
_NULL = "\\N"
# (balance_after, account_version) of each posting, as SinglePoster answers them.
_Applied = list[tuple[int | None, int | None]]


class _Instants(dict[int | None, datetime | None]):
    """``instants[us]`` is the datetime of an instant (or None), computed once per distinct value."""

    def __missing__(self, us: int | None) -> datetime | None:
        dt = self[us] = to_dt(us)
        return dt


class _Times(dict[int | None, str]):
    """``times[us]`` is the COPY text of an instant (or NULL), computed once per distinct value."""

    def __missing__(self, us: int | None) -> str:
        dt = to_dt(us)
        text = self[us] = _NULL if dt is None else dt.isoformat()
        return text


class _Rows:
    """The batch's rows, and its chain: each leaf links to the one before.

    Postings and lot movements are COPY text lines, written with f-strings. Every value is safe in
    them as it is: ids, integers, units and timestamps. Transfers and lots are row tuples for the
    binary COPY; leaves are bytes.
    """

    def __init__(
        self,
        community_id: int,
        origin: str,
        recorded_us: int,
        size: int,
        prev: bytes,
        names: _Names,
        *,
        results: bool,
    ) -> None:
        self.community_id = community_id
        self.recorded_us = recorded_us
        self.first_index = size
        self.size = size
        self.prev = prev
        self.postings: list[str] = []
        # Transfer and lot rows as tuples (binary COPY): written after the loop, while Python waits
        # for the server, so the server should not have to parse them.
        self.transfers: list[tuple[object, ...]] = []
        self.lots: list[tuple[object, ...]] = []
        self.movements: list[str] = []
        # The leaves as parallel lists (no tuple per leaf for the garbage collector to scan).
        self.leaves: list[bytes] = []
        self.leaf_hashes: list[bytes] = []
        self.transfer_ids: list[uuid.UUID] = []
        # (item, effective_us, applied postings, leaf index, leaf hash): what results() answers
        # from, kept only when asked for.
        self.posted: list[tuple[_Item, int, _Applied, int, bytes]] | None = [] if results else None
        self._names = names
        self._times = _Times()
        self._instants = _Instants()
        self._recorded = self._instants[recorded_us]
        self._leaf = SingleTransferLeaves(origin, recorded_us)

    def add(
        self,
        it: _Item,
        effective_us: int,
        rows: _Applied,
        new_lots: list[NewLot],
        movements: list[tuple[int, uuid.UUID, int]],
    ) -> None:
        c, req, tid = self.community_id, it.req, it.transfer_text
        names, times = self._names, self._times
        postings = self.postings
        leaf_postings: list[tuple[str, str, int]] = []
        for seq, (p, (balance_after, version)) in enumerate(zip(req.postings, rows, strict=True)):
            name, unit, amount = names[p.account_id], p.unit.value, p.amount
            leaf_postings.append((name, unit, amount))
            balance = _NULL if balance_after is None else balance_after
            postings.append(
                f"{c}\t{tid}\t{seq}\t{name}\t{unit}\tsingle\t{amount}\t{balance}"
                f"\t{_NULL if version is None else version}\t{times[p.expires_at_us]}\n"
            )
        leaf = self._leaf.render(
            self.size,
            self.prev,
            transfer_id=tid,
            kind=req.kind,
            effective_us=effective_us,
            actor=req.actor_id,
            idempotency_key=req.idempotency_key,
            postings=leaf_postings,
        )
        self.prev = leaf_hash(leaf)
        self.leaves.append(leaf)
        self.leaf_hashes.append(self.prev)
        self.transfer_ids.append(it.transfer_id)
        if self.posted is not None:
            self.posted.append((it, effective_us, rows, self.size, self.prev))
        self.size += 1
        instants = self._instants
        metadata = bsql.jsonb(req.metadata)
        self.transfers.append(
            (c, it.transfer_id, req.kind, "single", instants[effective_us], self._recorded, req.actor_id,
             req.idempotency_key, metadata)
        )  # fmt: skip
        for lot in new_lots:
            self.lots.append(
                (c, lot.lot_id, lot.account_id, it.transfer_id, lot.seq, lot.amount, lot.amount,
                 instants[lot.earned_us], instants[lot.expires_at_us])
            )  # fmt: skip
        for seq, lot_id, amount in movements:
            self.movements.append(f"{c}\t{tid}\t{seq}\t{lot_id}\t{amount}\n")

    def results(self) -> Iterator[tuple[_Item, TransferResult]]:
        """Each posted transfer's result, as the single path would have answered it."""
        assert self.posted is not None, "results were not asked for"
        c = self.community_id
        for it, effective_us, rows, index, hashed in self.posted:
            postings = tuple(
                PostingView(p.account_id, p.unit, "single", p.amount, balance_after, version)
                for p, (balance_after, version) in zip(it.req.postings, rows, strict=True)
            )
            receipt = Receipt(c, index, hashed)
            yield (
                it,
                TransferResult(
                    it.transfer_id,
                    c,
                    it.req.kind,
                    "single",
                    effective_us,
                    self.recorded_us,
                    postings,
                    receipt,
                ),
            )

    def copy_rest(self, conn: Conn) -> None:
        bsql.copy_binary(conn, bsql.COPY_TRANSFERS, bsql.TRANSFER_TYPES, self.transfers)
        bsql.copy_binary(conn, bsql.COPY_LOTS, bsql.LOT_TYPES, self.lots)
        bsql.copy_text(conn, bsql.COPY_MOVEMENTS, self.movements)
        bsql.copy_leaves(
            conn, self.community_id, self.first_index, self.leaves, self.leaf_hashes, self.transfer_ids
        )
