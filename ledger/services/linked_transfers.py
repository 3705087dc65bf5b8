"""Several transfers, possibly in several communities, written in the caller's database transaction.

``Ledger`` writes each transfer in a transaction of its own and commits it; ``post_batch`` writes
many, but of one community and single-phase only. A time-bank settlement needs more: release the
recipient's hold and pay, and across communities pay through a clearing account in each
community, all or nothing, together with the exchange's own state change. This module composes
the ledger's public building blocks (request validation, ``plans.resolution``, the domain engine,
the canonical leaf template and ``vledger_write_transfer``) into that one write. It does not
commit: the caller's transaction does, so the transfers, each community's log leaves and the
caller's rows land together or not at all.

Rules it keeps, as ``Ledger`` does: each transfer claims its idempotency key (stored with the same
request hash ``Ledger`` would store, so a later ``Ledger`` call with that key replays it); a
pending transfer is resolved under its advisory lock; the touched balance rows are locked in one
order (by community, then account), and the log heads last, by community. A business failure
raises LedgerError and the caller rolls back everything (no failure is stored under the keys: the
caller's own state says whether the step happened, and a later attempt is judged afresh).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from psycopg.types.json import Jsonb

from ledger.domain.balances import BalanceState
from ledger.domain.engine import AccountInfo, Planned
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.lots import LotState
from ledger.domain.transfers import (
    Phase,
    Posting,
    ResolveRequest,
    TransferRequest,
    validate_resolve,
    validate_transfer,
)
from ledger.services import plans, reads
from ledger.services.transfer_document import State, transfer_write
from ledger.store import ledger_repo as sql
from ledger.store.db import Conn

__all__ = ["Linked", "Written", "write_linked"]


@dataclass(frozen=True, slots=True)
class Linked:
    """One transfer of a linked write: a new one (``postings``, phase single or pending) or the
    resolution (post or void) of a pending transfer (``resolves``)."""

    community_id: int
    kind: str
    idempotency_key: str
    transfer_id: uuid.UUID = field(default_factory=uuid7)
    postings: tuple[Posting, ...] = ()
    phase: Phase = Phase.SINGLE
    resolves: uuid.UUID | None = None
    amounts: dict[uuid.UUID, int] | None = None  # partial post, as in ResolveRequest
    actor_id: uuid.UUID | None = None
    metadata: dict[str, object] = field(default_factory=dict)

    def request_hash(self) -> bytes:
        if self.resolves is not None:
            return self._resolve_request().request_hash()
        return self._transfer_request().request_hash()

    def _transfer_request(self) -> TransferRequest:
        return TransferRequest(
            self.community_id,
            self.kind,
            self.postings,
            self.idempotency_key,
            phase=self.phase,
            actor_id=self.actor_id,
            transfer_id=self.transfer_id,
            metadata=self.metadata,
        )

    def _resolve_request(self) -> ResolveRequest:
        assert self.resolves is not None
        return ResolveRequest(
            self.community_id, self.resolves, self.phase, self.idempotency_key, self.amounts, self.actor_id
        )


@dataclass(frozen=True, slots=True)
class Written:
    community_id: int
    transfer_id: uuid.UUID
    leaf_index: int


def write_linked(conn: Conn, items: Sequence[Linked], *, clock_us: Callable[[], int]) -> list[Written]:
    """Write ``items`` in ``conn``'s open transaction; returns them in the order given.

    Raises LedgerError: the request checks of ``Ledger.transfer``/``resolve``, COMMUNITY_NOT_FOUND,
    IDEMPOTENCY_CONFLICT for a key already used, the resolution errors (PENDING_ALREADY_POSTED…),
    and the engine's (ACCOUNT_NOT_FOUND, INSUFFICIENT_FUNDS…). The caller must then roll back.
    """
    assert items, "a linked write has at least one transfer"
    for item in items:
        if item.resolves is None:
            validate_transfer(item._transfer_request())
        else:
            validate_resolve(item._resolve_request())
    communities = sorted({i.community_id for i in items})
    origins = _origins(conn, communities)
    for item in items:
        _claim(conn, item)
    now_us = clock_us()
    planned = [_plan(conn, item, now_us) for item in items]
    state = _lock(conn, communities, items, planned)
    # Community order, then the order given: log heads are taken in one order by every writer.
    order = sorted(range(len(items)), key=lambda i: (items[i].community_id, i))
    # Every transfer is applied in memory (and any business error raised) before the first write.
    documents = {
        i: _apply(items[i], planned[i], state, origins[items[i].community_id], clock_us) for i in order
    }
    written: dict[int, Written] = {}
    for i in order:
        row = conn.execute(sql.WRITE_TRANSFER, (Jsonb(documents[i]),)).fetchone()
        assert row is not None
        written[i] = Written(items[i].community_id, items[i].transfer_id, int(row[0]))
    return [written[i] for i in range(len(items))]


def _origins(conn: Conn, communities: list[int]) -> dict[int, str]:
    rows = conn.execute(
        "SELECT community_id, origin FROM community WHERE community_id = ANY(%s)", (communities,)
    ).fetchall()
    found = {int(c): str(o) for c, o in rows}
    for community_id in communities:
        if community_id not in found:
            raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
    return found


def _claim(conn: Conn, item: Linked) -> None:
    claimed = conn.execute(
        sql.CLAIM_KEY, (item.community_id, item.idempotency_key, item.request_hash(), item.transfer_id)
    ).fetchone()
    if claimed is None:
        raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="idempotency_key")


def _plan(conn: Conn, item: Linked, now_us: int) -> list[Planned]:
    if item.resolves is None:
        return [
            Planned(p.account_id, p.unit, p.amount, item.phase, expires_at_us=p.expires_at_us)
            for p in item.postings
        ]
    pending = reads.load_transfer_for_update(conn, item.community_id, item.resolves)
    return plans.resolution(pending, item._resolve_request(), now_us=now_us)


def _lock(conn: Conn, communities: list[int], items: Sequence[Linked], planned: list[list[Planned]]) -> State:
    """Lock every touched balance row: community by community, accounts sorted within each."""
    accounts: dict[uuid.UUID, AccountInfo] = {}
    balances: dict[uuid.UUID, BalanceState] = {}
    lots: dict[uuid.UUID, list[LotState]] = {}
    for community_id in communities:
        touched = sorted(
            {p.account_id for item, ps in zip(items, planned, strict=True) for p in ps
             if item.community_id == community_id}
        )  # fmt: skip
        debited = sorted(
            {p.account_id for item, ps in zip(items, planned, strict=True) for p in ps
             if item.community_id == community_id and p.amount < 0 and not p.lot_restore}
        )  # fmt: skip
        found = sql.account_infos(conn.execute(sql.ACCOUNTS, {"c": community_id, "a": touched}).fetchall())
        rows = conn.execute(sql.LOCK_BALANCES, {"c": community_id, "a": touched}).fetchall()
        accounts.update(found)
        balances.update(sql.balance_states(rows, found))
        lots.update(sql.lot_states(conn.execute(sql.OPEN_LOTS, {"c": community_id, "a": debited}).fetchall()))
    return accounts, balances, lots


def _apply(
    item: Linked,
    planned: list[Planned],
    state: State,
    origin: str,
    clock_us: Callable[[], int],
) -> dict[str, object]:
    """Apply one transfer to the shared in-memory state; what ``vledger_write_transfer`` writes for it."""
    recorded_us = clock_us()
    _, document = transfer_write(
        state,
        planned,
        community_id=item.community_id,
        origin=origin,
        transfer_id=item.transfer_id,
        kind=item.kind,
        phase=str(item.phase),
        effective_us=recorded_us,
        recorded_us=recorded_us,
        actor_id=item.actor_id,
        idempotency_key=item.idempotency_key,
        reverses_id=None,
        pending_id=item.resolves,
        timeout_at_us=None,
        metadata=item.metadata,
    )
    return document
