"""Request and response bodies of the time-bank routes: exchanges, gifts, relations, hardship flags
and the region's cross-community switch (docs/time-bank.md).

Amounts are coin minutes (60 = one coin), durations service minutes. Bodies hold pseudonymous ids,
dates, numbers, the kind of service asked for and staff's notes; never a name, an age, a birth date
or why someone is in hardship.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from ledger.domain.timebank import MAX_NOTE_CHARS, MAX_SERVICE_CHARS, MAX_SERVICE_MINUTES
from ledger.domain.timebank_rules import HardshipPeriod, hardship_in_force
from ledger.domain.transfers import MAX_AMOUNT
from ledger.services.timebank_members import RelationView
from ledger.services.timebank_support import china_date
from ledger.store.timebank_people_repo import HardshipRow, SwitchEvent
from ledger.store.timebank_repo import EventRow, ExchangeRow

Minutes = Annotated[int, msgspec.Meta(ge=1, le=MAX_SERVICE_MINUTES, description="服务分钟数（1–1440）")]
CoinMinutes = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="时间币分钟数（60 = 1 个时间币）")]
Note = Annotated[str, msgspec.Meta(max_length=MAX_NOTE_CHARS)]
ExchangeStateName = Literal[
    "requested", "matched", "in_service", "confirmed", "settled", "cancelled", "disputed"
]
RelationKindName = Literal[
    "parent", "child", "spouse", "grandparent", "grandchild", "other_relative", "friend"
]


# ----------------------------------------------------------------------------------- exchanges


class ExchangeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request for a service. Without ``recipient_person_id`` the caller asks for themself."""

    service: Annotated[
        str, msgspec.Meta(min_length=1, max_length=MAX_SERVICE_CHARS, description="服务类别，如 家政、陪诊")
    ]
    recipient_person_id: uuid.UUID | None = None
    planned_minutes: Minutes | None = None  # per-hour pricing: required
    item_price_coin_minutes: CoinMinutes | None = None  # per-item pricing: required


class MatchIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    provider_person_id: uuid.UUID
    provider_community_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None  # default: this one


class ConfirmIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    served_minutes: Minutes | None = None  # per-hour pricing: required, at most the planned minutes


class CancelIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Note = ""


class DisputeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NOTE_CHARS)]


class ResolveIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    resolution: Literal["settle", "cancel"]
    served_minutes: Minutes | None = None  # settling per hour: default the minutes confirmed
    note: Note = ""


class ExchangeOut(msgspec.Struct, kw_only=True):
    exchange_id: uuid.UUID
    community_id: int
    state: str
    service: str
    recipient_person_id: uuid.UUID
    provider_community_id: int | None
    provider_person_id: uuid.UUID | None
    pricing: str
    settings_version: int
    rate_coin_minutes_per_hour: int | None
    planned_minutes: int | None
    item_price_coin_minutes: int | None
    hold_coin_minutes: int
    served_minutes: int | None
    charged_coin_minutes: int | None
    credited_coin_minutes: int | None
    pool_coin_minutes: int | None
    resolution: str | None
    hold_transfer_id: uuid.UUID | None
    release_transfer_id: uuid.UUID | None
    payment_transfer_id: uuid.UUID | None
    credit_transfer_id: uuid.UUID | None  # in the provider's community
    requested_by: uuid.UUID
    requested_at: datetime
    matched_at: datetime | None
    started_at: datetime | None
    confirmed_at: datetime | None
    disputed_at: datetime | None
    resolved_at: datetime | None
    settled_at: datetime | None
    cancelled_at: datetime | None

    @classmethod
    def of(cls, r: ExchangeRow) -> ExchangeOut:
        return cls(
            exchange_id=r.exchange_id,
            community_id=r.community_id,
            state=str(r.state),
            service=r.service,
            recipient_person_id=r.recipient_person_id,
            provider_community_id=r.provider_community_id,
            provider_person_id=r.provider_person_id,
            pricing=str(r.pricing),
            settings_version=r.settings_version,
            rate_coin_minutes_per_hour=r.rate_coin_minutes_per_hour,
            planned_minutes=r.planned_minutes,
            item_price_coin_minutes=r.item_price_coin_minutes,
            hold_coin_minutes=r.hold_coin_minutes,
            served_minutes=r.served_minutes,
            charged_coin_minutes=r.charged_coin_minutes,
            credited_coin_minutes=r.credited_coin_minutes,
            pool_coin_minutes=r.pool_coin_minutes,
            resolution=None if r.resolution is None else str(r.resolution),
            hold_transfer_id=r.hold_transfer_id,
            release_transfer_id=r.release_transfer_id,
            payment_transfer_id=r.payment_transfer_id,
            credit_transfer_id=r.credit_transfer_id,
            requested_by=r.requested_by,
            requested_at=r.requested_at,
            matched_at=r.matched_at,
            started_at=r.started_at,
            confirmed_at=r.confirmed_at,
            disputed_at=r.disputed_at,
            resolved_at=r.resolved_at,
            settled_at=r.settled_at,
            cancelled_at=r.cancelled_at,
        )


class ExchangeEventOut(msgspec.Struct, kw_only=True):
    event_id: uuid.UUID
    kind: str
    from_state: str | None
    to_state: str
    actor_id: uuid.UUID
    party: str
    at: datetime
    note: str | None
    detail: dict[str, str | int | bool | None]  # ids and numbers only

    @classmethod
    def of(cls, e: EventRow) -> ExchangeEventOut:
        return cls(
            event_id=e.event_id,
            kind=e.kind,
            from_state=e.from_state,
            to_state=e.to_state,
            actor_id=e.actor_id,
            party=e.party,
            at=e.at,
            note=e.note,
            detail=dict(e.detail),
        )


# --------------------------------------------------------------------------- people and gifts


class GiftIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    recipient_person_id: uuid.UUID
    amount_coin_minutes: CoinMinutes


class RelationIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``kind``: what the relative is to the person (``parent``: the relative is their parent)."""

    relative_person_id: uuid.UUID
    kind: RelationKindName


class RelationOut(msgspec.Struct, kw_only=True):
    relation_id: uuid.UUID
    person_id: uuid.UUID
    relative_person_id: uuid.UUID
    kind: str
    recorded_by: uuid.UUID
    recorded_at: datetime

    @classmethod
    def of(cls, v: RelationView) -> RelationOut:
        return cls(
            relation_id=v.relation_id,
            person_id=v.person_id,
            relative_person_id=v.relative_person_id,
            kind=str(v.kind),
            recorded_by=v.recorded_by,
            recorded_at=v.recorded_at,
        )


class RelationEndedOut(msgspec.Struct, kw_only=True):
    relation_id: uuid.UUID
    person_id: uuid.UUID
    ended: bool


class HardshipIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    valid_from: date
    valid_until: date | None = None  # inclusive; none: until revoked


class HardshipOut(msgspec.Struct, kw_only=True):
    flag_id: uuid.UUID
    person_id: uuid.UUID
    valid_from: date
    valid_until: date | None
    in_force_today: bool
    granted_by: uuid.UUID
    granted_at: datetime
    revoked_by: uuid.UUID | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, f: HardshipRow, today: date) -> HardshipOut:
        revoked_on = None if f.revoked_at is None else china_date(f.revoked_at)
        return cls(
            flag_id=f.flag_id,
            person_id=f.person_id,
            valid_from=f.valid_from,
            valid_until=f.valid_until,
            in_force_today=hardship_in_force(
                [HardshipPeriod(f.valid_from, f.valid_until, revoked_on)], today
            ),
            granted_by=f.granted_by,
            granted_at=f.granted_at,
            revoked_by=f.revoked_by,
            revoked_at=f.revoked_at,
        )


# ------------------------------------------------------------------------------------ regions


class SwitchIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool
    note: Note = ""


class SwitchEventOut(msgspec.Struct, kw_only=True):
    event_id: uuid.UUID
    enabled: bool
    actor_id: uuid.UUID
    at: datetime
    note: str

    @classmethod
    def of(cls, e: SwitchEvent) -> SwitchEventOut:
        return cls(event_id=e.event_id, enabled=e.enabled, actor_id=e.actor_id, at=e.at, note=e.note)


class RegionSwitchOut(msgspec.Struct, kw_only=True):
    region_id: int
    cross_community: bool
    history: list[SwitchEventOut]


class CommunitySwitchOut(msgspec.Struct, kw_only=True):
    community_id: int
    region_id: int
    cross_community: bool
