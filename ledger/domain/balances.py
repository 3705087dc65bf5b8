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
        if phase == Phase.SINGLE:
            self.post(amount)
            return
        before = self.available
        if phase == Phase.PENDING:
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
        self._check(before)

    def post(self, amount: int) -> None:
        """``apply(Phase.SINGLE, amount)``: the common case, without the phase dispatch."""
        before = self.posted - self.pending_out
        self.posted += amount
        self.version += 1
        self._check(before)

    def _check(self, before: int) -> None:
        """Raise if the change just made (``before`` was the available balance) broke a limit."""
        if abs(self.posted) > MAX_AMOUNT or self.pending_in > MAX_AMOUNT or self.pending_out > MAX_AMOUNT:
            raise LedgerError(ErrorCode.BALANCE_OVERFLOW, account_id=str(self.account_id))
        assert self.pending_in >= 0 and self.pending_out >= 0, "pending totals cannot go negative"
        available = self.posted - self.pending_out
        if self.non_negative and available < before and available < -self.credit_limit:
            raise LedgerError(
                ErrorCode.INSUFFICIENT_FUNDS,
                account_id=str(self.account_id),
                available=before,
                requested=before - available,
            )
