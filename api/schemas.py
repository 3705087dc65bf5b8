"""Request and response bodies of the ledger routes (msgspec structs: fast, and they make the schema)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

import msgspec

from ledger.domain import times
from ledger.domain.times import EPOCH
from ledger.services.accounts import AccountView, LotView, StatementLine
from ledger.services.results import BalanceView, TransferResult

Amount = Annotated[int, msgspec.Meta(ge=-(2**53 - 1), le=2**53 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=200)]


class Balance(msgspec.Struct, kw_only=True):
    account_id: uuid.UUID
    unit: str
    posted: int
    pending_in: int
    pending_out: int
    available: int

    @classmethod
    def of(cls, view: BalanceView | AccountView) -> Balance:
        return cls(
            account_id=view.account_id,
            unit=str(view.unit),
            posted=view.posted,
            pending_in=view.pending_in,
            pending_out=view.pending_out,
            available=view.available,
        )


class Account(msgspec.Struct, kw_only=True):
    account_id: uuid.UUID
    owner_kind: str
    owner_id: uuid.UUID | None
    code: str | None
    unit: str
    flags: list[str]
    credit_limit: int
    created_at: datetime
    balance: Balance

    @classmethod
    def of(cls, view: AccountView) -> Account:
        return cls(
            account_id=view.account_id,
            owner_kind=view.owner_kind,
            owner_id=view.owner_id,
            code=view.code,
            unit=str(view.unit),
            flags=[str(f.name).lower() for f in type(view.flags) if f in view.flags and f.value],
            credit_limit=view.credit_limit,
            created_at=view.created_at,
            balance=Balance.of(view),
        )


class OpenAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    owner_kind: Literal["person", "household"]
    owner_id: uuid.UUID
    unit: Literal["service_minutes", "points", "coin_minutes", "score_points"]


class Line(msgspec.Struct, kw_only=True):
    transfer_id: uuid.UUID
    seq: int
    kind: str
    phase: str
    effective_at: datetime
    recorded_at: datetime
    amount: int
    balance_after: int | None
    expires_at: datetime | None
    reverses_id: uuid.UUID | None
    pending_id: uuid.UUID | None

    @classmethod
    def of(cls, line: StatementLine) -> Line:
        return cls(
            transfer_id=line.transfer_id,
            seq=line.seq,
            kind=line.kind,
            phase=line.phase,
            effective_at=line.effective_at,
            recorded_at=line.recorded_at,
            amount=line.amount,
            balance_after=line.balance_after,
            expires_at=line.expires_at,
            reverses_id=line.reverses_id,
            pending_id=line.pending_id,
        )


class Lot(msgspec.Struct, kw_only=True):
    lot_id: uuid.UUID
    transfer_id: uuid.UUID
    amount: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, lot: LotView) -> Lot:
        return cls(
            lot_id=lot.lot_id,
            transfer_id=lot.transfer_id,
            amount=lot.amount,
            remaining=lot.remaining,
            earned_at=lot.earned_at,
            expires_at=lot.expires_at,
        )


class PostingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    account_id: uuid.UUID
    unit: Literal["service_minutes", "points", "coin_minutes", "score_points"]
    amount: Amount
    expires_at: datetime | None = None


class TransferIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=48)]
    postings: Annotated[list[PostingIn], msgspec.Meta(min_length=1, max_length=64)]
    phase: Literal["single", "pending"] = "single"
    effective_at: datetime | None = None
    timeout_s: Annotated[int, msgspec.Meta(ge=1, le=366 * 86_400)] | None = None
    metadata: dict[str, object] = msgspec.field(default_factory=dict)


class ReversalIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Text = ""


class PostingOut(msgspec.Struct, kw_only=True):
    account_id: uuid.UUID
    unit: str
    phase: str
    amount: int
    balance_after: int | None


class ReceiptOut(msgspec.Struct, kw_only=True):
    log_id: int
    index: int
    leaf_hash: str


class TransferOut(msgspec.Struct, kw_only=True):
    transfer_id: uuid.UUID
    community_id: int
    kind: str
    phase: str
    effective_at: datetime
    recorded_at: datetime
    postings: list[PostingOut]
    receipt: ReceiptOut
    reverses_id: uuid.UUID | None
    pending_id: uuid.UUID | None
    replayed: bool

    @classmethod
    def of(cls, result: TransferResult) -> TransferOut:
        return cls(
            transfer_id=result.transfer_id,
            community_id=result.community_id,
            kind=result.kind,
            phase=result.phase,
            effective_at=from_us(result.effective_us),
            recorded_at=from_us(result.recorded_us),
            postings=[
                PostingOut(
                    account_id=p.account_id,
                    unit=str(p.unit),
                    phase=p.phase,
                    amount=p.amount,
                    balance_after=p.balance_after,
                )
                for p in result.postings
            ],
            receipt=ReceiptOut(
                log_id=result.receipt.log_id,
                index=result.receipt.index,
                leaf_hash=result.receipt.leaf_hash.hex(),
            ),
            reverses_id=result.reverses_id,
            pending_id=result.pending_id,
            replayed=result.replayed,
        )


class Community(msgspec.Struct, kw_only=True):
    community_id: int
    region_id: int
    code: str
    name: str
    origin: str


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; a datetime without a zone is taken as Beijing time (UTC+8)."""
    result = times.to_us(aware(value))
    assert result is not None
    return result


BEIJING = timezone(timedelta(hours=8))


def aware(value: datetime | None) -> datetime | None:
    """A client's instant; one without a zone is Beijing time, as everywhere in this API."""
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=BEIJING)
