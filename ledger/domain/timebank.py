"""Time-bank exchanges (时间银行): the state machine, who may take each step, and what is paid.

An exchange is one service between two members, paid in time coins (``coin_minutes``)::

    requested ──match──▶ matched ──start──▶ in_service ──confirm──▶ confirmed ──settle──▶ settled
        │                   │                   │                       │
        └──cancel──┐        └──cancel──┐        └──dispute──┐           └──dispute──┐
                   ▼                   ▼                    ▼                       ▼
               cancelled           cancelled            disputed ──resolve──▶ settled | cancelled

Every step happens at most once in an exchange's life (there are no cycles), which is what makes a
repeated step recognisable and harmless: the service answers it with the exchange as it is.

The recipient (受助人) requests and pays; the provider (服务者) is matched by staff; the recipient
confirms the service; either party (or staff) settles a confirmed exchange; staff who are not a
party resolve disputes. Prices are in coin minutes (60 = one coin), integers, rounded down.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import MAX_AMOUNT, check_text

__all__ = [
    "ALLOWED_PARTIES",
    "MAX_SERVICE_CHARS",
    "MAX_SERVICE_MINUTES",
    "Action",
    "Actor",
    "ExchangeState",
    "Party",
    "Pricing",
    "Resolution",
    "Settlement",
    "Terms",
    "acting_party",
    "charge_for",
    "check_actor",
    "check_note",
    "check_service",
    "coin_minutes_for",
    "next_state",
    "parties_of",
    "plan_terms",
    "settlement_amounts",
    "validate_minutes",
]

MAX_SERVICE_CHARS: Final = 100
MAX_NOTE_CHARS: Final = 500
MAX_SERVICE_MINUTES: Final = 1440  # one exchange is at most a day of service; longer is several
_MINUTES_PER_HOUR: Final = 60


class ExchangeState(StrEnum):
    REQUESTED = "requested"
    MATCHED = "matched"
    IN_SERVICE = "in_service"
    CONFIRMED = "confirmed"
    SETTLED = "settled"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"


class Action(StrEnum):
    REQUEST = "request"
    MATCH = "match"
    START = "start"
    CONFIRM = "confirm"
    SETTLE = "settle"
    CANCEL = "cancel"
    DISPUTE = "dispute"
    RESOLVE = "resolve"


class Resolution(StrEnum):
    """How staff resolve a dispute: pay the provider (for the minutes they decide) or pay nothing."""

    SETTLE = "settle"
    CANCEL = "cancel"


class Party(StrEnum):
    RECIPIENT = "recipient"  # requests, confirms and pays
    PROVIDER = "provider"  # serves and is paid
    STAFF = "staff"  # time-bank staff of the exchange's community: match, resolve


class Pricing(StrEnum):
    PER_HOUR = "per_hour"
    PER_ITEM = "per_item"


S, A = ExchangeState, Action
_TRANSITIONS: Final[dict[tuple[ExchangeState, Action], ExchangeState]] = {
    (S.REQUESTED, A.MATCH): S.MATCHED,
    (S.REQUESTED, A.CANCEL): S.CANCELLED,
    (S.MATCHED, A.START): S.IN_SERVICE,
    (S.MATCHED, A.CANCEL): S.CANCELLED,
    (S.IN_SERVICE, A.CONFIRM): S.CONFIRMED,
    (S.IN_SERVICE, A.DISPUTE): S.DISPUTED,
    (S.CONFIRMED, A.SETTLE): S.SETTLED,
    (S.CONFIRMED, A.DISPUTE): S.DISPUTED,
}

# Who may take each step. Staff who are themselves a party never resolve their own dispute.
ALLOWED_PARTIES: Final[Mapping[Action, frozenset[Party]]] = {
    A.REQUEST: frozenset({Party.RECIPIENT, Party.STAFF}),
    A.MATCH: frozenset({Party.STAFF}),
    A.START: frozenset({Party.PROVIDER, Party.STAFF}),
    A.CONFIRM: frozenset({Party.RECIPIENT}),
    A.SETTLE: frozenset({Party.RECIPIENT, Party.PROVIDER, Party.STAFF}),
    A.CANCEL: frozenset({Party.RECIPIENT, Party.PROVIDER, Party.STAFF}),
    A.DISPUTE: frozenset({Party.RECIPIENT, Party.PROVIDER, Party.STAFF}),
    A.RESOLVE: frozenset({Party.STAFF}),
}


def next_state(state: ExchangeState, action: Action, resolution: Resolution | None = None) -> ExchangeState:
    """The state after ``action``, or INVALID_STATE_TRANSITION (``state`` and ``action`` in detail).

    RESOLVE takes a disputed exchange to settled or cancelled, as ``resolution`` says.
    """
    if action is Action.RESOLVE and state is ExchangeState.DISPUTED and resolution is not None:
        return ExchangeState.SETTLED if resolution is Resolution.SETTLE else ExchangeState.CANCELLED
    after = _TRANSITIONS.get((state, action))
    if after is None:
        raise LedgerError(ErrorCode.INVALID_STATE_TRANSITION, state=str(state), action=str(action))
    return after


@dataclass(frozen=True, slots=True)
class Actor:
    """Who takes a step: the user (recorded as the actor), the person that user is, if any
    (``(community_id, person_id)``, for volunteers), and whether the user is time-bank staff of the
    community the step is in (the HTTP layer decides that from the user's roles)."""

    user_id: uuid.UUID
    person: tuple[int, uuid.UUID] | None = None
    staff: bool = False


def parties_of(
    actor: Actor,
    recipient: tuple[int, uuid.UUID],
    provider: tuple[int, uuid.UUID] | None,
) -> frozenset[Party]:
    """What ``actor`` is to an exchange (or a gift: the giver as ``recipient``)."""
    found = set()
    if actor.person is not None and actor.person == recipient:
        found.add(Party.RECIPIENT)
    if actor.person is not None and actor.person == provider:
        found.add(Party.PROVIDER)
    if actor.staff:
        found.add(Party.STAFF)
    return frozenset(found)


def acting_party(action: Action, parties: frozenset[Party]) -> Party:
    """The party an allowed actor acts as, for the record: their own part before staff's."""
    check_actor(action, parties)
    for party in (Party.RECIPIENT, Party.PROVIDER, Party.STAFF):
        if party in parties and party in ALLOWED_PARTIES[action]:
            return party
    raise AssertionError("check_actor let through an actor with no allowed party")


def check_actor(action: Action, parties: frozenset[Party]) -> None:
    """``parties``: what the acting user is to this exchange (possibly several, possibly none).

    Raises ACTOR_NOT_ALLOWED unless one of them may take ``action``. Resolving needs staff who are
    neither recipient nor provider (nobody decides their own dispute).
    """
    allowed = ALLOWED_PARTIES[action]
    ok = bool(parties & allowed)
    if action is Action.RESOLVE and parties & {Party.RECIPIENT, Party.PROVIDER}:
        ok = False
    if not ok:
        names = ",".join(sorted(str(p) for p in allowed))
        raise LedgerError(ErrorCode.ACTOR_NOT_ALLOWED, action=str(action), allowed=names)


# ------------------------------------------------------------------------------------ inputs


def validate_minutes(value: object, field: str) -> int:
    """Whole service minutes, 1 to MAX_SERVICE_MINUTES."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SERVICE_MINUTES:
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field, max=MAX_SERVICE_MINUTES)
    return value


def _text(value: object, field: str, max_chars: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field)
    check_text(value, field)
    if (required and not value.strip()) or len(value) > max_chars:
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field, max=max_chars)
    return value


def check_service(value: object) -> str:
    """What service is asked for (e.g. 家政, 陪诊): required, at most 100 characters. Forms ask
    for a kind of service, never for personal details."""
    return _text(value, "service", MAX_SERVICE_CHARS, required=True)


def check_note(value: object, field: str = "note", *, required: bool = False) -> str:
    """A reason or note read by staff (a dispute's reason must be given)."""
    return _text(value, field, MAX_NOTE_CHARS, required=required)


# ----------------------------------------------------------------------------------- pricing


def coin_minutes_for(service_minutes: int, coin_minutes_per_service_hour: int) -> int:
    """Coin minutes = service minutes × coin minutes per hour / 60, rounded down (a recipient is
    never charged for a part of a minute)."""
    assert service_minutes >= 0 and coin_minutes_per_service_hour >= 0
    return service_minutes * coin_minutes_per_service_hour // _MINUTES_PER_HOUR


@dataclass(frozen=True, slots=True)
class Terms:
    """What a request fixes: how it is priced and the most it can cost (the hold).

    ``rate`` is coin minutes per service hour (per-hour pricing, from the settings in force on the
    request date); ``planned_minutes`` the booked duration; ``item_price`` the price of a per-item
    service. The hold is the price of the planned minutes, or the item price.
    """

    pricing: Pricing
    rate: int | None
    planned_minutes: int | None
    item_price: int | None
    hold: int


def plan_terms(pricing: Pricing, rate: int, planned_minutes: object, item_price: object) -> Terms:
    """Check a request's numbers against the community's pricing; INVALID_FIELD names the culprit.

    Per hour: ``planned_minutes`` is required and no item price is accepted. Per item: an item price
    (1 to 2^53 − 1 coin minutes) is required; planned minutes are optional and charge nothing.
    """
    if pricing is Pricing.PER_HOUR:
        if item_price is not None:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="item_price_coin_minutes")
        minutes = validate_minutes(planned_minutes, "planned_minutes")
        return Terms(pricing, rate, minutes, None, coin_minutes_for(minutes, rate))
    planned = None if planned_minutes is None else validate_minutes(planned_minutes, "planned_minutes")
    if not isinstance(item_price, int) or isinstance(item_price, bool) or not 1 <= item_price <= MAX_AMOUNT:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="item_price_coin_minutes")
    return Terms(pricing, None, planned, item_price, item_price)


def charge_for(terms: Terms, served_minutes: int | None) -> int:
    """What the recipient pays for the service as confirmed (or as staff resolved a dispute).

    Per hour: the served minutes' price; more minutes than were planned (and held) are refused
    with INVALID_FIELD, since the recipient agreed to pay for the planned time only (book the rest
    as another exchange). Per item: the item price, whatever the minutes.
    """
    if terms.pricing is Pricing.PER_ITEM:
        assert terms.item_price is not None
        return terms.item_price
    assert terms.rate is not None and terms.planned_minutes is not None
    if served_minutes is None or served_minutes > terms.planned_minutes:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="served_minutes", max=terms.planned_minutes)
    charge = coin_minutes_for(served_minutes, terms.rate)
    assert charge <= terms.hold
    return charge


@dataclass(frozen=True, slots=True)
class Settlement:
    """Where a charge goes: ``credited`` to the provider, ``pool`` to the provider community's
    donation pool (over the provider's storage cap). The recipient pays ``charged`` = both."""

    charged: int
    credited: int
    pool: int


def settlement_amounts(
    charge: int, *, provider_coin_minutes: int, storage_cap: int | None, overflow_to_pool: bool
) -> Settlement:
    """Apply the provider community's lifetime storage cap to what the provider earns.

    Over the cap, the excess goes to the donation pool (``coin_overflow_target = donation_pool``)
    or is not credited at all, in which case the recipient is not charged for it either: coins
    never vanish and are never created by an exchange.
    """
    assert charge >= 0 and provider_coin_minutes >= 0
    room = charge if storage_cap is None else max(0, min(charge, storage_cap - provider_coin_minutes))
    over = charge - room
    if overflow_to_pool:
        return Settlement(charge, room, over)
    return Settlement(room, room, 0)
