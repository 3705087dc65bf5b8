"""Turning a stored transfer into the postings of its reversal or of its resolution (post / void)."""

from __future__ import annotations

import uuid
from collections import defaultdict

from ledger.domain.engine import Planned
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.lots import restore
from ledger.domain.transfers import Phase, ResolveRequest, check_zero_sum
from ledger.domain.transfers import Posting as RequestPosting
from ledger.services.reads import StoredTransfer


def reversal(original: StoredTransfer) -> list[Planned]:
    """The mirror of what ``original`` posted; lots go back exactly where they came from."""
    if original.phase in (Phase.PENDING, Phase.VOID):
        raise LedgerError(ErrorCode.CANNOT_REVERSE_PENDING, transfer_id=str(original.transfer_id))
    if original.reversed_by is not None:
        raise LedgerError(ErrorCode.ALREADY_REVERSED, transfer_id=str(original.transfer_id))
    planned = []
    for p in original.postings:
        moves = list(p.movements) + list(original.pending_movements.get(p.account_id, ()))
        net: dict[uuid.UUID, int] = defaultdict(int)
        for lot_id, amount in moves:
            net[lot_id] += amount
        consumed = tuple((lot_id, -amount) for lot_id, amount in sorted(net.items()) if amount < 0)
        planned.append(
            Planned(
                p.account_id,
                p.unit,
                -p.amount,
                Phase.SINGLE,
                lot_first=p.lot_created,
                lot_restore=consumed if p.amount < 0 and consumed else None,
            )
        )
    return planned


def resolution(pending: StoredTransfer, req: ResolveRequest, *, now_us: int) -> list[Planned]:
    """Postings that post (all, or ``req.amounts`` per account) or void a pending transfer."""
    if pending.phase != Phase.PENDING:
        raise LedgerError(ErrorCode.PENDING_NOT_FOUND, pending_id=str(pending.transfer_id))
    if pending.resolved_phase == Phase.POST:
        raise LedgerError(ErrorCode.PENDING_ALREADY_POSTED, pending_id=str(pending.transfer_id))
    if pending.resolved_phase == Phase.VOID:
        raise LedgerError(ErrorCode.PENDING_ALREADY_VOIDED, pending_id=str(pending.transfer_id))
    if req.phase == Phase.POST and pending.timeout_us is not None and pending.timeout_us <= now_us:
        raise LedgerError(ErrorCode.PENDING_EXPIRED, pending_id=str(pending.transfer_id))
    amounts = req.amounts
    if amounts is not None and set(amounts) != {p.account_id for p in pending.postings}:
        raise LedgerError(ErrorCode.POSTINGS_DO_NOT_MATCH_PENDING, pending_id=str(pending.transfer_id))
    planned = []
    for p in pending.postings:
        consumed = tuple((lot_id, -amount) for lot_id, amount in p.movements if amount < 0)
        if req.phase == Phase.VOID:
            planned.append(
                Planned(
                    p.account_id,
                    p.unit,
                    p.amount,
                    Phase.VOID,
                    pending_amount=p.amount,
                    lot_restore=consumed or None,
                )
            )
            continue
        magnitude = abs(p.amount) if amounts is None else amounts[p.account_id]
        if magnitude > abs(p.amount):
            raise LedgerError(ErrorCode.POST_EXCEEDS_PENDING, account_id=str(p.account_id))
        released = abs(p.amount) - magnitude
        restore_lots = tuple(restore(list(consumed), released)) if consumed and released else None
        signed = magnitude if p.amount > 0 else -magnitude
        planned.append(
            Planned(
                p.account_id,
                p.unit,
                signed,
                Phase.POST,
                pending_amount=p.amount,
                expires_at_us=p.expires_at_us,
                lot_restore=restore_lots,
            )
        )
    if amounts is not None:
        check_zero_sum([RequestPosting(p.account_id, p.unit, p.amount) for p in planned])
    return planned
