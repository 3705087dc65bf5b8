"""Time-bank rules about people: who may pay with coins (age, hardship) and to whom coins are given.

- **Withdrawal** (paying for services received with coins) is open from
  ``coin_withdrawal_min_age_years`` (default 60; Shanghai 2026: 65), or from
  ``coin_withdrawal_hardship_min_age_years`` for a person with a hardship flag in force (Shanghai:
  60; null: no exception). Age is in completed years on the day of the request, from the person's
  (encrypted) birth date; an unknown birth date opens nothing.
- **Gifts** go to a recorded relative within ``coin_gift_recipients``: ``direct_relatives``
  (直系亲属: parents, children, spouse, grandparents, grandchildren) by default, or
  ``relatives_and_friends`` (also 其他亲属 and 朋友).

Refusals carry the settings that decided them, never the person's age or relation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.people import age_years
from ledger.domain.timebank import Pricing

__all__ = [
    "DIRECT_RELATIONS",
    "GiftScope",
    "HardshipPeriod",
    "RelationKind",
    "TimeBankRules",
    "check_gift",
    "check_withdrawal",
    "hardship_in_force",
    "inverse",
    "may_withdraw",
]


class GiftScope(StrEnum):
    DIRECT_RELATIVES = "direct_relatives"
    RELATIVES_AND_FRIENDS = "relatives_and_friends"


class RelationKind(StrEnum):
    """What the relative is to the person: ``parent`` means "the relative is the person's parent"."""

    PARENT = "parent"
    CHILD = "child"
    SPOUSE = "spouse"
    GRANDPARENT = "grandparent"
    GRANDCHILD = "grandchild"
    OTHER_RELATIVE = "other_relative"  # 其他亲属
    FRIEND = "friend"  # 朋友


DIRECT_RELATIONS: Final = frozenset(
    {
        RelationKind.PARENT,
        RelationKind.CHILD,
        RelationKind.SPOUSE,
        RelationKind.GRANDPARENT,
        RelationKind.GRANDCHILD,
    }
)
_INVERSE: Final = {
    RelationKind.PARENT: RelationKind.CHILD,
    RelationKind.CHILD: RelationKind.PARENT,
    RelationKind.GRANDPARENT: RelationKind.GRANDCHILD,
    RelationKind.GRANDCHILD: RelationKind.GRANDPARENT,
    RelationKind.SPOUSE: RelationKind.SPOUSE,
    RelationKind.OTHER_RELATIVE: RelationKind.OTHER_RELATIVE,
    RelationKind.FRIEND: RelationKind.FRIEND,
}


def inverse(kind: RelationKind) -> RelationKind:
    """The same relation seen from the other side (my parent is someone whose child I am)."""
    return _INVERSE[kind]


def _in_scope(scope: GiftScope, kind: RelationKind) -> bool:
    return kind in DIRECT_RELATIONS or scope is GiftScope.RELATIVES_AND_FRIENDS


def check_gift(scope: GiftScope, kind: RelationKind | None) -> None:
    """A gift needs a recorded relation within the scope; else GIFT_NOT_ALLOWED (scope in detail).

    Whether a relation is direct does not depend on the side it is seen from, so the check is
    symmetric.
    """
    if kind is None or not _in_scope(scope, kind):
        raise LedgerError(ErrorCode.GIFT_NOT_ALLOWED, scope=str(scope))


@dataclass(frozen=True, slots=True)
class HardshipPeriod:
    """A hardship flag's dates: in force from ``valid_from`` through ``valid_until`` (inclusive;
    None: open-ended), and no longer from ``revoked_on`` (the China date it was revoked) on."""

    valid_from: date
    valid_until: date | None
    revoked_on: date | None


def hardship_in_force(flags: Iterable[HardshipPeriod], day: date) -> bool:
    return any(
        f.valid_from <= day
        and (f.valid_until is None or day <= f.valid_until)
        and (f.revoked_on is None or day < f.revoked_on)
        for f in flags
    )


def may_withdraw(age: int, min_age: int, hardship_min_age: int | None, hardship: bool) -> bool:
    return age >= min_age or (hardship and hardship_min_age is not None and age >= hardship_min_age)


@dataclass(frozen=True, slots=True)
class TimeBankRules:
    """The parameters of one settings version that the time bank uses (names as in rule_settings)."""

    version: int
    pricing: Pricing
    coin_minutes_per_service_hour: int
    withdrawal_min_age_years: int
    withdrawal_hardship_min_age_years: int | None
    gift_scope: GiftScope
    coin_storage_cap_minutes: int | None
    coin_overflow_to_pool: bool

    @classmethod
    def from_params(cls, version: int, params: Mapping[str, object]) -> TimeBankRules:
        """From a validated parameter set (``rule_settings.with_defaults`` of a stored version)."""
        hardship = params["coin_withdrawal_hardship_min_age_years"]
        cap = params["coin_storage_cap_minutes"]
        rate = params["coin_minutes_per_service_hour"]
        min_age = params["coin_withdrawal_min_age_years"]
        assert isinstance(rate, int) and isinstance(min_age, int)
        assert hardship is None or isinstance(hardship, int)
        assert cap is None or isinstance(cap, int)
        return cls(
            version=version,
            pricing=Pricing(str(params["coin_pricing"])),
            coin_minutes_per_service_hour=rate,
            withdrawal_min_age_years=min_age,
            withdrawal_hardship_min_age_years=hardship,
            gift_scope=GiftScope(str(params["coin_gift_recipients"])),
            coin_storage_cap_minutes=cap,
            coin_overflow_to_pool=params["coin_overflow_target"] == "donation_pool",
        )


def check_withdrawal(rules: TimeBankRules, birth_date: date | None, today: date, *, hardship: bool) -> None:
    """Raise WITHDRAWAL_AGE_NOT_REACHED unless the person may pay with coins on ``today``.

    The detail names the two ages of the settings, never the person's age, birth date or whether
    they hold a hardship flag (all personal data).
    """
    if birth_date is not None and may_withdraw(
        age_years(birth_date, today),
        rules.withdrawal_min_age_years,
        rules.withdrawal_hardship_min_age_years,
        hardship,
    ):
        return
    raise LedgerError(
        ErrorCode.WITHDRAWAL_AGE_NOT_REACHED,
        min_age_years=rules.withdrawal_min_age_years,
        hardship_min_age_years=rules.withdrawal_hardship_min_age_years,
    )
