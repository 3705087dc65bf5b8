"""Accounts: who owns a balance, in which unit, and the flags that constrain it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import IntFlag, StrEnum

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.units import Unit


class OwnerKind(StrEnum):
    PERSON = "person"
    HOUSEHOLD = "household"
    COMMUNITY = "community"  # system accounts: issuance, donation pool, sinks, escrow, clearing


class AccountFlags(IntFlag):
    """Account behaviour. Guarantees:

    - NON_NEGATIVE: after every transfer, ``available = posted - pending_out >= -credit_limit``.
      Only these accounts are row-locked by a transfer, in sorted order, in one statement.
    - HOT: the balance is spread over several bucket rows so that concurrent transfers do not queue
      on one row lock. Postings to a hot account carry no running balance (it is the sum of its
      buckets). HOT excludes NON_NEGATIVE and LOTS.
    - LOTS: credits create lots with their own expiry; debits consume the soonest-expiring lots first.
      Requires NON_NEGATIVE, a zero credit limit, and the points unit.
    - CLOSED: no new postings.
    """

    NONE = 0
    NON_NEGATIVE = 1
    HOT = 2
    LOTS = 4
    CLOSED = 8


class SystemAccount(StrEnum):
    """The community's own accounts, created with the community (one per unit where it applies)."""

    ISSUANCE = "issuance"  # source of hours, points and coins credited for service
    DONATION_POOL = "donation_pool"  # coins over a member's storage cap; donated coins
    REDEMPTION_SINK = "redemption_sink"  # points spent in the points supermarket
    EXPIRY_SINK = "expiry_sink"  # points that expired
    ESCROW = "escrow"  # coins held while a time-bank exchange is in service
    CLEARING = "clearing"  # one side of a cross-community transfer


# Which system accounts each unit has, and their flags. Hot ones absorb a posting per request.
SYSTEM_ACCOUNTS: dict[Unit, tuple[tuple[SystemAccount, AccountFlags], ...]] = {
    Unit.SERVICE_MINUTES: ((SystemAccount.ISSUANCE, AccountFlags.HOT),),
    Unit.POINTS: (
        (SystemAccount.ISSUANCE, AccountFlags.HOT),
        (SystemAccount.REDEMPTION_SINK, AccountFlags.HOT),
        (SystemAccount.EXPIRY_SINK, AccountFlags.HOT),
    ),
    Unit.COIN_MINUTES: (
        (SystemAccount.ISSUANCE, AccountFlags.HOT),
        (SystemAccount.DONATION_POOL, AccountFlags.NON_NEGATIVE),
        (SystemAccount.ESCROW, AccountFlags.NON_NEGATIVE),
        (SystemAccount.CLEARING, AccountFlags.NONE),
    ),
    Unit.SCORE_POINTS: ((SystemAccount.ISSUANCE, AccountFlags.HOT),),
}


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What is needed to open an account; ``validate`` enforces the flag rules above."""

    owner_kind: OwnerKind
    unit: Unit
    flags: AccountFlags
    owner_id: uuid.UUID | None = None
    code: str | None = None
    credit_limit: int = 0

    def validate(self) -> None:
        flags = self.flags
        bad = (
            (AccountFlags.HOT in flags and (AccountFlags.NON_NEGATIVE in flags or AccountFlags.LOTS in flags))
            or (
                AccountFlags.LOTS in flags
                and (
                    AccountFlags.NON_NEGATIVE not in flags
                    or self.credit_limit != 0
                    or self.unit != Unit.POINTS
                )
            )
            or self.credit_limit < 0
            or (self.credit_limit > 0 and AccountFlags.NON_NEGATIVE not in flags)
            or (self.owner_kind == OwnerKind.COMMUNITY) != (self.owner_id is None)
        )
        if bad:
            raise LedgerError(ErrorCode.INVALID_ACCOUNT_FLAGS, flags=int(flags))


def member_account_flags(unit: Unit) -> AccountFlags:
    """Flags for a person's or household's account in ``unit``.

    Points live in lots; hours and coins never go negative; a household score may (deductions under
    the village rules can exceed what was earned in a period).
    """
    if unit == Unit.POINTS:
        return AccountFlags.NON_NEGATIVE | AccountFlags.LOTS
    if unit == Unit.SCORE_POINTS:
        return AccountFlags.NONE
    return AccountFlags.NON_NEGATIVE
