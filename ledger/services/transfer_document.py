"""One transfer, decided in memory and described for ``vledger_write_transfer`` (migration 0007).

``Ledger`` (one transfer per transaction) and ``linked_transfers`` (several in the caller's
transaction) both write through the same database function; this is the one place that applies
the postings to the in-memory state and builds the function's document and the canonical leaf.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from ledger.audit.leaf import transfer_leaf_template
from ledger.domain.balances import BalanceState
from ledger.domain.engine import AccountInfo, Effects, Planned, PostingRow, apply_postings
from ledger.domain.ids import uuid7
from ledger.domain.lots import LotState
from ledger.store import ledger_repo as sql

__all__ = ["State", "transfer_write"]

#: What a write reads and locks first: accounts, balance rows, open lots (by account).
State = tuple[dict[uuid.UUID, AccountInfo], dict[uuid.UUID, BalanceState], dict[uuid.UUID, list[LotState]]]


def transfer_write(
    state: State,
    planned: Sequence[Planned],
    *,
    community_id: int,
    origin: str,
    transfer_id: uuid.UUID,
    kind: str,
    phase: str,
    effective_us: int,
    recorded_us: int,
    actor_id: uuid.UUID | None,
    idempotency_key: str,
    reverses_id: uuid.UUID | None,
    pending_id: uuid.UUID | None,
    timeout_at_us: int | None,
    metadata: dict[str, object],
) -> tuple[list[PostingRow], dict[str, object]]:
    """Apply ``planned`` to ``state`` (raising the engine's LedgerError, such as INSUFFICIENT_FUNDS)
    and return the posting rows and the document that writes them, with the leaf's fragments.

    The document snapshots the balances as they are now, before a later transfer changes them.
    """
    accounts, balances, lots = state
    effects = Effects()
    rows = apply_postings(
        list(planned),
        earned_us=effective_us,
        accounts=accounts,
        balances=balances,
        lots=lots,
        effects=effects,
        new_id=uuid7,
    )
    template = transfer_leaf_template(
        origin=origin,
        transfer_id=transfer_id,
        kind=kind,
        phase=phase,
        effective_us=effective_us,
        recorded_us=recorded_us,
        actor=actor_id,
        idempotency_key=idempotency_key,
        postings=[(r.account_id, str(r.unit), r.amount) for r in rows],
        reverses=reverses_id,
        pending_id=pending_id,
        timeout_us=timeout_at_us,
    )
    document = sql.transfer_document(
        community_id=community_id,
        transfer_id=transfer_id,
        kind=kind,
        phase=phase,
        effective_us=effective_us,
        recorded_us=recorded_us,
        actor_id=actor_id,
        idempotency_key=idempotency_key,
        reverses_id=reverses_id,
        pending_id=pending_id,
        timeout_us=timeout_at_us,
        metadata=metadata,
        rows=rows,
        effects=effects,
        balances=balances,
        accounts=accounts,
        # A resolution releases the reservation in the bucket where the pending transfer made it.
        hot_bucket=(pending_id or transfer_id).int,
        leaf=(template.prefix, template.middle, template.suffix),
    )
    return rows, document
