"""One step of an exchange inside its transaction: recording the step, and the two steps that move
coins (settling pays the provider, cancelling releases the hold), shared by the parties' own
steps and staff's resolution of a dispute."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.timebank import (
    Actor,
    ExchangeState,
    Party,
    Resolution,
    Terms,
    charge_for,
    parties_of,
    settlement_amounts,
)
from ledger.services import timebank_settlement as pay
from ledger.services.linked_transfers import Linked, write_linked
from ledger.services.timebank_support import (
    check_cross_community,
    coin_system_account,
    require_coin_account,
    rules_on,
)
from ledger.store import timebank_repo as sql
from ledger.store.db import Conn
from ledger.store.service_posting_repo import lock_volunteer
from ledger.store.timebank_repo import ExchangeRow


def terms_of(row: ExchangeRow) -> Terms:
    return Terms(
        row.pricing,
        row.rate_coin_minutes_per_hour,
        row.planned_minutes,
        row.item_price_coin_minutes,
        row.hold_coin_minutes,
    )


def provider_of(row: ExchangeRow) -> tuple[int, uuid.UUID] | None:
    if row.provider_community_id is None or row.provider_person_id is None:
        return None
    return row.provider_community_id, row.provider_person_id


def parties(actor: Actor, row: ExchangeRow) -> frozenset[Party]:
    return parties_of(actor, (row.community_id, row.recipient_person_id), provider_of(row))


@dataclass(frozen=True, slots=True)
class Step:
    """A step being taken on a locked exchange ``row``, by ``actor`` acting as ``party``."""

    conn: Conn
    row: ExchangeRow
    actor: Actor
    party: Party
    now: datetime
    today: date
    clock_us: Callable[[], int]

    def record(
        self,
        kind: str,
        after: ExchangeState,
        *,
        note: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        """The step's event: what happened, from which state to which, by whom, as what."""
        sql.record_event(
            self.conn,
            self.row.community_id,
            self.row.exchange_id,
            kind=kind,
            from_state=self.row.state,
            to_state=after,
            actor_id=self.actor.user_id,
            party=str(self.party),
            at=self.now,
            note=note,
            detail=detail,
        )

    def update(self, after: ExchangeState, **changes: object) -> None:
        sql.update_step(self.conn, self.row.community_id, self.row.exchange_id, after, **changes)


def _detail(changes: dict[str, object]) -> dict[str, object]:
    """An event's detail: the step's ids and numbers as JSON (its instant is the event's own)."""
    return {
        k: str(v) if isinstance(v, uuid.UUID | Resolution) else v
        for k, v in changes.items()
        if not isinstance(v, datetime)
    }


def settle(
    step: Step, served: int | None, kind: str, note: str | None, resolution: Resolution | None
) -> None:
    """Release the hold and pay what ``served`` minutes cost (the item price per item). The
    provider community's storage cap, by its settings today, sends any excess to its donation
    pool, or leaves it with the recipient (``not_credited``)."""
    conn, row = step.conn, step.row
    charge = charge_for(terms_of(row), served)
    provider = provider_of(row)
    assert provider is not None
    pc, pp = provider
    check_cross_community(conn, row.community_id, pc)
    lock_volunteer(conn, pc, pp)  # serialises with the other credits the storage cap depends on
    provider_account = require_coin_account(conn, pc, pp)
    rules = rules_on(conn, pc, step.today)
    split = settlement_amounts(
        charge,
        provider_coin_minutes=sql.posted_balance(conn, pc, provider_account),
        storage_cap=rules.coin_storage_cap_minutes,
        overflow_to_pool=rules.coin_overflow_to_pool,
    )
    released = pay.release(row, step.actor.user_id)
    items: list[Linked] = [] if released is None else [released]
    payment: pay.Payment | None = None
    if split.charged:
        across = row.cross_community
        accounts = pay.PaymentAccounts(
            recipient=require_coin_account(conn, row.community_id, row.recipient_person_id),
            provider=provider_account,
            provider_pool=coin_system_account(conn, pc, pay.DONATION_POOL),
            clearing=coin_system_account(conn, row.community_id, pay.CLEARING) if across else None,
            provider_clearing=coin_system_account(conn, pc, pay.CLEARING) if across else None,
        )
        payment = pay.payment(row, split, accounts, step.actor.user_id)
        items += [payment.payment] if payment.credit is None else [payment.payment, payment.credit]
    if items:
        write_linked(conn, items, clock_us=step.clock_us)
    changes: dict[str, object] = {
        "served_minutes": served,
        "charged_coin_minutes": split.charged,
        "credited_coin_minutes": split.credited,
        "pool_coin_minutes": split.pool,
        "release_transfer_id": None if released is None else released.transfer_id,
        "payment_transfer_id": None if payment is None else payment.payment.transfer_id,
        "credit_transfer_id": None
        if payment is None or payment.credit is None
        else payment.credit.transfer_id,
    }
    if resolution is not None:
        changes |= {"resolution": resolution, "resolved_at": step.now}
    step.update(ExchangeState.SETTLED, settled_at=step.now, **changes)
    step.record(kind, ExchangeState.SETTLED, note=note, detail=_detail(changes))


def cancel(step: Step, kind: str, note: str | None, resolution: Resolution | None) -> None:
    """Release the hold (if the request held anything) and end the exchange unpaid."""
    released = pay.release(step.row, step.actor.user_id)
    if released is not None:
        write_linked(step.conn, [released], clock_us=step.clock_us)
    changes: dict[str, object] = {"release_transfer_id": None if released is None else released.transfer_id}
    if resolution is not None:
        changes |= {"resolution": resolution, "resolved_at": step.now}
    step.update(ExchangeState.CANCELLED, cancelled_at=step.now, **changes)
    step.record(kind, ExchangeState.CANCELLED, note=note, detail=_detail(changes))


def same_request(
    row: ExchangeRow,
    recipient_person_id: uuid.UUID,
    service: str,
    planned_minutes: int | None,
    item_price_coin_minutes: int | None,
) -> ExchangeRow:
    """A request replayed under its exchange id: the same request gets the exchange back."""
    same = (
        row.recipient_person_id == recipient_person_id
        and row.service == service
        and row.planned_minutes == planned_minutes
        and row.item_price_coin_minutes == item_price_coin_minutes
    )
    if not same:
        raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="exchange_id")
    return row
