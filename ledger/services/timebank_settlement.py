"""The ledger side of an exchange: the hold placed at the request, its release, and the payment.

**The hold is placed at the request** (a pending transfer recipient → escrow, for the most the
service can cost): from then on ``available`` excludes those coins, so the recipient cannot spend
them on a gift or another exchange, and two requests racing for the same coins cannot both get
them (the ledger's non-negative check under the balance row lock decides). A pending transfer's
accounts are fixed when it is placed, but the payee is only known at the match, and what is
charged only at the confirmation; so settling **voids the hold and posts the payment in the same
database transaction**, and the reserved coins are never spendable in between.

Settlement within one community is two transfers in its log: the release (void) and
recipient → provider (+ the provider community's donation pool over the provider's storage cap).
Across communities of one region (通存通兑) it is three, linked by ids in their metadata: the
release and recipient → clearing in the exchange's community, clearing → provider (+ pool) in the
provider's. All are written by ``linked_transfers.write_linked`` with the exchange's own row
change, so they commit together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ledger.domain.accounts import SystemAccount
from ledger.domain.ids import uuid7
from ledger.domain.timebank import Settlement
from ledger.domain.transfers import Phase, Posting
from ledger.domain.units import Unit
from ledger.services.linked_transfers import Linked
from ledger.store.timebank_repo import ExchangeRow

COIN = Unit.COIN_MINUTES
ESCROW = str(SystemAccount.ESCROW)
CLEARING = str(SystemAccount.CLEARING)
DONATION_POOL = str(SystemAccount.DONATION_POOL)


def key(exchange_id: uuid.UUID, step: str) -> str:
    """The idempotency key of one of an exchange's transfers (unique per community)."""
    return f"timebank:{exchange_id}:{step}"


def hold(
    community_id: int,
    exchange_id: uuid.UUID,
    amount: int,
    *,
    recipient_account: uuid.UUID,
    escrow_account: uuid.UUID,
    actor_id: uuid.UUID,
) -> Linked:
    """Reserve ``amount`` of the recipient's coins for the exchange (pending, no timeout)."""
    return Linked(
        community_id,
        "timebank_hold",
        key(exchange_id, "hold"),
        postings=(Posting(recipient_account, COIN, -amount), Posting(escrow_account, COIN, amount)),
        phase=Phase.PENDING,
        actor_id=actor_id,
        metadata={"exchange_id": str(exchange_id)},
    )


def release(exchange: ExchangeRow, actor_id: uuid.UUID) -> Linked | None:
    """Void the exchange's hold (nothing to void when the request held nothing)."""
    if exchange.hold_transfer_id is None:
        return None
    return Linked(
        exchange.community_id,
        "timebank_release",
        key(exchange.exchange_id, "release"),
        resolves=exchange.hold_transfer_id,
        phase=Phase.VOID,
        actor_id=actor_id,
        metadata={"exchange_id": str(exchange.exchange_id)},
    )


@dataclass(frozen=True, slots=True)
class PaymentAccounts:
    recipient: uuid.UUID  # in the exchange's community
    provider: uuid.UUID  # in the provider's community
    provider_pool: uuid.UUID  # the provider community's donation pool
    clearing: uuid.UUID | None = None  # the exchange community's clearing account (across only)
    provider_clearing: uuid.UUID | None = None  # the provider community's (across only)


@dataclass(frozen=True, slots=True)
class Payment:
    """The transfers that pay: ``payment`` in the exchange's community, ``credit`` in the
    provider's (across communities only)."""

    payment: Linked
    credit: Linked | None


def _credit_postings(debit: Posting, split: Settlement, accounts: PaymentAccounts) -> tuple[Posting, ...]:
    out = [debit]
    if split.credited:
        out.append(Posting(accounts.provider, COIN, split.credited))
    if split.pool:
        out.append(Posting(accounts.provider_pool, COIN, split.pool))
    return tuple(out)


def payment(
    exchange: ExchangeRow, split: Settlement, accounts: PaymentAccounts, actor_id: uuid.UUID
) -> Payment:
    """Recipient → provider (+ pool); across communities through a clearing account in each."""
    assert split.charged > 0 and exchange.provider_community_id is not None
    community_id, exchange_id = exchange.community_id, exchange.exchange_id
    base: dict[str, object] = {"exchange_id": str(exchange_id), "exchange_community_id": community_id}
    pay_from = Posting(accounts.recipient, COIN, -split.charged)
    if not exchange.cross_community:
        pay = Linked(
            community_id,
            "timebank_payment",
            key(exchange_id, "pay"),
            postings=_credit_postings(pay_from, split, accounts),
            actor_id=actor_id,
            metadata=base,
        )
        return Payment(pay, None)
    assert accounts.clearing is not None and accounts.provider_clearing is not None
    provider_community = exchange.provider_community_id
    pay_id, credit_id = uuid7(), uuid7()
    pay = Linked(
        community_id,
        "timebank_payment",
        key(exchange_id, "pay"),
        transfer_id=pay_id,
        postings=(pay_from, Posting(accounts.clearing, COIN, split.charged)),
        actor_id=actor_id,
        metadata={**base, "linked_community_id": provider_community, "linked_transfer_id": str(credit_id)},
    )
    credit = Linked(
        provider_community,
        "timebank_credit",
        key(exchange_id, "credit"),
        transfer_id=credit_id,
        postings=_credit_postings(Posting(accounts.provider_clearing, COIN, -split.charged), split, accounts),
        actor_id=actor_id,
        metadata={**base, "linked_community_id": community_id, "linked_transfer_id": str(pay_id)},
    )
    return Payment(pay, credit)
