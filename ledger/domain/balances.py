"""Balance arithmetic for one account: posted, pending in and out, and the non-negative guarantee."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ledger.domain.accounts import AccountFlags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import MAX_AMOUNT, Phase
from ledger.domain.units import Unit


@dataclass(slots=True)
class BalanceState:
    """An account's balance as locked for one transfer; ``apply`` changes it or raises.

    ``available = posted - pending_out``: incoming reservations are not spendable until posted.
    """

    account_id: uuid.UUID
    unit: Unit
    flags: AccountFlags
    credit_limit: int
    posted: int = 0
    pending_in: int = 0
    pending_out: int = 0
    version: int = 0
    non_negative: bool = field(init=False)

    def __post_init__(self) -> None:
        self.non_negative = AccountFlags.NON_NEGATIVE in self.flags

    @property
    def available(self) -> int:
        return self.posted - self.pending_out

    def apply(self, phase: Phase, amount: int, pending_amount: int = 0) -> None:
        """Apply one posting. For POST, ``amount`` is what posts and ``pending_amount`` what it releases;
        for VOID only ``pending_amount`` (the reservation) matters."""
        before = self.available
        if phase == Phase.SINGLE:
            self.posted += amount
        elif phase == Phase.PENDING:
            if amount < 0:
                self.pending_out -= amount
            else:
                self.pending_in += amount
        else:
            if pending_amount < 0:
                self.pending_out += pending_amount
            else:
                self.pending_in -= pending_amount
            if phase == Phase.POST:
                self.posted += amount
        self.version += 1
        if max(abs(self.posted), self.pending_in, self.pending_out) > MAX_AMOUNT:
            raise LedgerError(ErrorCode.BALANCE_OVERFLOW, account_id=str(self.account_id))
        assert self.pending_in >= 0 and self.pending_out >= 0, "pending totals cannot go negative"
        if self.non_negative and self.available < before and self.available < -self.credit_limit:
            raise LedgerError(
                ErrorCode.INSUFFICIENT_FUNDS,
                account_id=str(self.account_id),
                available=before,
                requested=before - self.available,
            )
