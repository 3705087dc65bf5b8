"""What the ledger returns: transfer results with their log receipts, and balances."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ledger.domain.units import Unit


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof handle for a write: the leaf's position in its community's log (audit.md)."""

    log_id: int
    index: int
    leaf_hash: bytes

    def to_dict(self) -> dict[str, object]:
        return {"log_id": self.log_id, "index": self.index, "leaf_hash": self.leaf_hash.hex()}


@dataclass(frozen=True, slots=True)
class PostingView:
    account_id: uuid.UUID
    unit: Unit
    phase: str
    amount: int
    balance_after: int | None
    account_version: int | None


@dataclass(frozen=True, slots=True)
class TransferResult:
    transfer_id: uuid.UUID
    community_id: int
    kind: str
    phase: str
    effective_us: int
    recorded_us: int
    postings: tuple[PostingView, ...]
    receipt: Receipt
    reverses_id: uuid.UUID | None = None
    pending_id: uuid.UUID | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class BalanceView:
    """An account's balance. ``available`` is what may be spent: posted minus outgoing reservations."""

    account_id: uuid.UUID
    unit: Unit
    posted: int
    pending_in: int
    pending_out: int
    version: int

    @property
    def available(self) -> int:
        return self.posted - self.pending_out
