"""The ledger's write use cases: transfer, two-phase resolve, reversal; each one database transaction.

Every write follows one shape (after Formance's log process):

1. claim the idempotency key (insert; a concurrent twin waits on the unique index), then SAVEPOINT;
2. read and lock what the write touches, in the global lock order (ledger_repo);
3. apply the postings in memory with the pure domain engine, which raises business errors;
4. write transfer, postings, balances, lots and the log leaf, and commit, in one pipelined round trip.

A business failure rolls back to the savepoint and stores the error under the key, so a replay fails
the same way. A replay of a success returns the original result.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ledger.domain.engine import Planned
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.transfers import (
    Phase,
    ResolveRequest,
    ReverseRequest,
    TransferRequest,
    validate_resolve,
    validate_reverse,
    validate_transfer,
)
from ledger.services import plans, reads
from ledger.services.batch import BatchResult, post_batch, post_group
from ledger.services.results import BalanceView, Receipt, TransferResult
from ledger.services.transfer_document import State, transfer_write
from ledger.store import ledger_repo as sql
from ledger.store.db import Conn, read_connection
from ledger.store.ledger_repo import Cur


def wall_clock_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class Write:
    """A transfer about to be written: its header and the postings to apply."""

    transfer_id: uuid.UUID
    kind: str
    phase: Phase
    planned: list[Planned]
    idempotency_key: str
    effective_us: int | None = None
    actor_id: uuid.UUID | None = None
    reverses_id: uuid.UUID | None = None
    pending_id: uuid.UUID | None = None
    timeout_us: int | None = None
    metadata: dict[str, object] = field(default_factory=dict)


class Ledger:
    """Use cases over a pool of runtime-role connections. Thread-safe; share one per process."""

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        *,
        clock: Callable[[], int] = wall_clock_us,
    ) -> None:
        self._pool = pool
        self._clock = clock

    # ----------------------------------------------------------------------------------- writes

    def transfer(self, req: TransferRequest) -> TransferResult:
        validate_transfer(req)
        transfer_id = req.transfer_id or uuid7()
        write = Write(
            transfer_id=transfer_id,
            kind=req.kind,
            phase=req.phase,
            planned=[
                Planned(p.account_id, p.unit, p.amount, req.phase, expires_at_us=p.expires_at_us)
                for p in req.postings
            ],
            idempotency_key=req.idempotency_key,
            effective_us=req.effective_us,
            actor_id=req.actor_id,
            timeout_us=req.timeout_us,
            metadata=req.metadata,
        )
        return self._submit(
            req.community_id,
            req.idempotency_key,
            req.request_hash(),
            transfer_id,
            lambda _conn: write,
            known=write,
        )

    def reverse(self, req: ReverseRequest) -> TransferResult:
        validate_reverse(req)
        transfer_id = uuid7()

        def load(conn: Conn) -> Write:
            original = reads.load_transfer_for_update(conn, req.community_id, req.transfer_id)
            planned = plans.reversal(original)
            return Write(
                transfer_id,
                "reversal",
                Phase.SINGLE,
                planned,
                req.idempotency_key,
                actor_id=req.actor_id,
                reverses_id=req.transfer_id,
                metadata={"reason": req.reason} if req.reason else {},
            )

        return self._submit(req.community_id, req.idempotency_key, req.request_hash(), transfer_id, load)

    def resolve(self, req: ResolveRequest, *, kind: str | None = None) -> TransferResult:
        """Post (wholly or in part) or void a pending transfer."""
        validate_resolve(req)
        transfer_id = uuid7()

        def load(conn: Conn) -> Write:
            pending = reads.load_transfer_for_update(conn, req.community_id, req.pending_id)
            planned = plans.resolution(pending, req, now_us=self._clock())
            return Write(
                transfer_id,
                kind or pending.kind,
                req.phase,
                planned,
                req.idempotency_key,
                actor_id=req.actor_id,
                pending_id=req.pending_id,
            )

        return self._submit(req.community_id, req.idempotency_key, req.request_hash(), transfer_id, load)

    def transfer_many(self, requests: Sequence[TransferRequest]) -> list[TransferResult | LedgerError]:
        """Each request's outcome, as ``transfer`` would give it, writing what it can together.

        Several single-phase requests of one community go through the batch path in one
        transaction (one claim, one lock statement, one chain-head lock). If that group cannot
        commit as a whole (a business failure, a key conflict, a lost race), nothing of it is
        written and each request takes the single path, which records business failures under
        their keys as usual. Replays also take the single path.
        """
        posted: dict[int, TransferResult] = {}
        groupable = len(requests) > 1 and all(
            r.phase is Phase.SINGLE and r.community_id == requests[0].community_id for r in requests
        )
        if groupable:
            try:
                posted = post_group(self._pool, requests, clock=self._clock)
            except (LedgerError, psycopg.errors.IntegrityError, psycopg.errors.TransactionRollback):
                posted = {}
        return [posted[i] if i in posted else self._outcome(req) for i, req in enumerate(requests)]

    def _outcome(self, req: TransferRequest) -> TransferResult | LedgerError:
        try:
            return self.transfer(req)
        except LedgerError as err:
            return err

    def post_batch(self, requests: Sequence[TransferRequest]) -> BatchResult:
        """Post many single-phase transfers of one community atomically (see ledger.services.batch)."""
        return post_batch(self._pool, requests, clock=self._clock)

    def expire_pending(self, community_id: int, *, limit: int = 1000) -> int:
        """Void pending transfers whose timeout has passed; returns how many were voided."""
        now_us = self._clock()
        with self._pool.connection() as conn:
            ids = reads.expired_pending_ids(conn, community_id, now_us, limit)
        for pending_id in ids:
            req = ResolveRequest(community_id, pending_id, Phase.VOID, f"expire:{pending_id}")
            self.resolve(req)
        return len(ids)

    # ------------------------------------------------------------------------------------ reads

    def get_transfer(self, community_id: int, transfer_id: uuid.UUID) -> TransferResult:
        with read_connection(self._pool) as conn:  # a transfer and its postings never change
            return reads.transfer_result(conn, community_id, transfer_id)

    def balances(self, community_id: int, account_ids: list[uuid.UUID]) -> dict[uuid.UUID, BalanceView]:
        with read_connection(self._pool) as conn:  # one statement
            return reads.balances(conn, community_id, account_ids)

    def ping(self) -> None:
        """Readiness: a round trip to the database on a pooled connection."""
        with self._pool.connection() as conn:
            conn.execute("SELECT 1")
            conn.rollback()

    def balance(self, community_id: int, account_id: uuid.UUID) -> BalanceView:
        found = self.balances(community_id, [account_id])
        if account_id not in found:
            raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, account_id=str(account_id))
        return found[account_id]

    # ------------------------------------------------------------------------------- machinery

    def _submit(
        self,
        community_id: int,
        key: str,
        request_hash: bytes,
        transfer_id: uuid.UUID,
        load: Callable[[Conn], Write],
        *,
        known: Write | None = None,
    ) -> TransferResult:
        """Claim the key, load what to write, write it. ``known``: the write needs no reading first
        (a plain transfer), so its balance reads travel with the claim in one round trip."""
        with self._pool.connection() as conn:
            try:
                claimed, origin, state = self._claim(
                    conn, community_id, key, request_hash, transfer_id, known
                )
            except LedgerError:  # COMMUNITY_NOT_FOUND: the key's claim must not stay behind
                conn.rollback()
                raise
            if not claimed:
                conn.rollback()
                return reads.replay(conn, community_id, key, request_hash)
            try:
                write = known or load(conn)
                return self._write(
                    conn, community_id, origin, write, state or self._read(conn, community_id, write)
                )
            except LedgerError as err:
                self._record_failure(conn, community_id, key, err)
                raise
            except psycopg.errors.IntegrityError as exc:
                # A concurrent writer won a race our reads could not see; the constraint says which.
                failure = _integrity_error(exc)
                self._record_failure(conn, community_id, key, failure)
                raise failure from None

    def _claim(
        self,
        conn: Conn,
        community_id: int,
        key: str,
        request_hash: bytes,
        transfer_id: uuid.UUID,
        known: Write | None,
    ) -> tuple[bool, str, State | None]:
        with conn.pipeline():
            claim = conn.execute(sql.CLAIM_KEY, (community_id, key, request_hash, transfer_id))
            conn.execute("SAVEPOINT write")
            origin_cur = conn.execute(sql.COMMUNITY_ORIGIN, (community_id,))
            pending = None if known is None else self._queue_reads(conn, community_id, known)
        row = origin_cur.fetchone()
        if row is None:
            raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
        state = None if pending is None else _fetch_state(*pending)
        return claim.fetchone() is not None, str(row[0]), state

    def _queue_reads(self, conn: Conn, community_id: int, write: Write) -> tuple[Cur, Cur, Cur]:
        """The reads a write needs, queued on the current pipeline: accounts, locked balances, lots."""
        account_ids = sorted({p.account_id for p in write.planned})
        debited = [p.account_id for p in write.planned if p.amount < 0 and not p.lot_restore]
        return (
            conn.execute(sql.ACCOUNTS, {"c": community_id, "a": account_ids}),
            conn.execute(sql.LOCK_BALANCES, {"c": community_id, "a": account_ids}),
            conn.execute(sql.OPEN_LOTS, {"c": community_id, "a": debited}),
        )

    def _read(self, conn: Conn, community_id: int, write: Write) -> State:
        with conn.pipeline():
            pending = self._queue_reads(conn, community_id, write)
        return _fetch_state(*pending)

    def _write(
        self, conn: Conn, community_id: int, origin: str, write: Write, state: State
    ) -> TransferResult:
        recorded_us = self._clock()
        effective_us = write.effective_us if write.effective_us is not None else recorded_us
        rows, document = transfer_write(
            state,
            write.planned,
            community_id=community_id,
            origin=origin,
            transfer_id=write.transfer_id,
            kind=write.kind,
            phase=str(write.phase),
            effective_us=effective_us,
            recorded_us=recorded_us,
            actor_id=write.actor_id,
            idempotency_key=write.idempotency_key,
            reverses_id=write.reverses_id,
            pending_id=write.pending_id,
            timeout_at_us=recorded_us + write.timeout_us if write.timeout_us else None,
            metadata=write.metadata,
        )
        with conn.pipeline():
            leaf_cur = conn.execute(sql.WRITE_TRANSFER, (Jsonb(document),))
            conn.commit()
        index, leaf_hash = leaf_cur.fetchone() or (None, None)
        assert index is not None and leaf_hash is not None
        return reads.result_from_rows(
            community_id,
            write.transfer_id,
            write.kind,
            str(write.phase),
            effective_us,
            recorded_us,
            rows,
            Receipt(community_id, int(index), bytes(leaf_hash)),
            write.reverses_id,
            write.pending_id,
        )

    def _record_failure(self, conn: Conn, community_id: int, key: str, err: LedgerError) -> None:
        """Keep the key's claim but store the failure, so that a replay fails the same way."""
        conn.execute("ROLLBACK TO SAVEPOINT write")
        conn.execute(sql.RECORD_FAILURE, (Jsonb(err.to_dict()), community_id, key))
        conn.commit()


def _fetch_state(acc_cur: Cur, bal_cur: Cur, lot_cur: Cur) -> State:
    accounts = sql.account_infos(acc_cur.fetchall())
    return accounts, sql.balance_states(bal_cur.fetchall(), accounts), sql.lot_states(lot_cur.fetchall())


_CONSTRAINT_CODES = {
    "transfer_reversed_once": ErrorCode.ALREADY_REVERSED,
    "transfer_resolved_once": ErrorCode.PENDING_ALREADY_POSTED,
    "transfer_pkey": ErrorCode.TRANSFER_EXISTS,
    "balance_not_below_floor": ErrorCode.INSUFFICIENT_FUNDS,
}


def _integrity_error(exc: psycopg.errors.IntegrityError) -> LedgerError:
    """Map a database backstop to its code; anything unexpected stays a bug and propagates."""
    code = _CONSTRAINT_CODES.get(exc.diag.constraint_name or "")
    if code is None:
        raise exc
    return LedgerError(code)
