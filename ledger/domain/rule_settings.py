"""Per-community rule parameters: every number of the domain brief (domain.md), with default and range.

A community publishes versions of these (``ledger.services.rule_settings``); a version stores the
full parameter set, so the numbers in force when an entry was made stay readable after later
versions, or later defaults in this module, change. Units are in the key names. Everything is an
integer, a boolean, a choice among fixed strings, or a list of integers: never a float, because a
published version is hashed and compared as JSON and 0.1 has no exact binary form. Fractional
rates are integer ratios (``points_per_hour_numerator`` / ``points_per_hour_denominator``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from ledger.domain.errors import ErrorCode, LedgerError

ParamValue = int | bool | str | tuple[int, ...] | None

_MAX_INT: Final = 2**53 - 1  # every JSON reader represents it exactly
_PERIODS: Final = ("month", "quarter", "year")


class Kind(StrEnum):
    INT = "int"
    BOOL = "bool"
    CHOICE = "choice"
    ASCENDING_INTS = "ascending_ints"  # a fixed-length list of strictly increasing integers


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its default, type and range, unit, and where domain.md states it."""

    default: ParamValue
    kind: Kind
    unit: str
    source: str
    doc: str
    minimum: int = 0
    maximum: int = _MAX_INT
    nullable: bool = False  # None means "no limit" / "not offered"
    choices: tuple[str, ...] = ()
    length: int = 0  # ASCENDING_INTS only


def _int(default: int | None, unit: str, source: str, doc: str, lo: int = 0, hi: int = _MAX_INT) -> Param:
    return Param(default, Kind.INT, unit, source, doc, minimum=lo, maximum=hi)


def _cap(
    unit: str, source: str, doc: str, lo: int = 1, hi: int = _MAX_INT, default: int | None = None
) -> Param:
    return Param(default, Kind.INT, unit, source, doc, minimum=lo, maximum=hi, nullable=True)


def _choice(default: str, choices: tuple[str, ...], source: str, doc: str) -> Param:
    return Param(default, Kind.CHOICE, "choice", source, doc, choices=choices)


def _flag(default: bool, source: str, doc: str) -> Param:
    return Param(default, Kind.BOOL, "boolean", source, doc)


_SR = "Service records"
_RC = "Service records: rates and caps"
_TB = "Time bank"
_PS = "Points supermarket"
_PE = "Points expiry"
_VR = "Village-rule scoring and red/black lists"
_PV = "Service records: privacy"
_CHOSEN = " (domain.md gives no default for this; chosen here)"

# Definition order is the documented order and the order in which validation reports faults.
PARAMS: Final[Mapping[str, Param]] = MappingProxyType(
    {
        # -- service records (民政部令第67号) --
        "service_granularity_minutes": _int(
            30, "minutes", _SR, "Service time is counted in steps of this many minutes (0.5 h).", 1, 1440
        ),
        "service_rounding": _choice(
            "down", ("down", "nearest", "up"), _SR, "How served time is rounded to the granularity."
        ),
        "recording_deadline_working_days": _int(
            10, "working days", _SR, "A record is due this many working days after the activity ends.", 1, 365
        ),
        "working_day_calendar": _choice(
            "cn_official",
            ("cn_official", "mon_to_fri"),
            _SR,
            "Working days for the deadline: the official holiday calendar with make-up days (调休).",
        ),
        "star_thresholds_hours": Param(
            (100, 300, 600, 1000, 1500),
            Kind.ASCENDING_INTS,
            "hours",
            _SR,
            "Cumulative service hours for one to five stars (Beijing: 100/200/500/800/1000).",
            minimum=1,
            maximum=100_000,
            length=5,
        ),
        # -- rates and caps --
        "points_per_hour_numerator": _int(
            1, "points", _RC, "Points per hour of service = numerator / denominator (0.5 is 1/2).", 0, 10_000
        ),
        "points_per_hour_denominator": _int(1, "hours", _RC, "Denominator of the points rate.", 1, 1000),
        "per_activity_cap_minutes": _cap(
            "minutes", _RC, "Most service minutes credited for one activity; null: no cap (alt. 120)."
        ),
        "daily_service_cap_minutes": _cap(
            "minutes", _RC, "Most service minutes credited per volunteer per day; null: no cap.", hi=1440
        ),
        "coin_storage_cap_minutes": _cap(
            "coin minutes", _RC, "Lifetime time-coin storage cap (1500 h); null: no cap.", default=90_000
        ),
        "coin_overflow_target": _choice(
            "donation_pool",
            ("donation_pool", "not_credited"),
            _RC,
            "Where coins over the storage cap go (Nanjing: the community donation pool).",
        ),
        "coin_daily_cap_minutes": _cap(
            "coin minutes", _RC, "Most coins earned per day; null: no cap (长宁: 120, i.e. 2 coins).", hi=1440
        ),
        # -- time bank --
        "coin_minutes_per_service_hour": _int(
            60, "coin minutes", _TB, "Coins earned per hour served: 60 coin minutes = 1 coin.", 0, 6000
        ),
        "coin_pricing": _choice(
            "per_hour", ("per_hour", "per_item"), _TB, "Services are priced by time, or per service item."
        ),
        "coin_withdrawal_min_age_years": _int(
            60, "years", _TB, "Age from which coins pay for services received (Shanghai 2026: 65).", 0, 150
        ),
        "coin_withdrawal_hardship_min_age_years": _cap(
            "years", _TB, "Lower age with a hardship flag (Shanghai: 60); null: no exception.", lo=0, hi=150
        ),
        "coin_gift_recipients": _choice(
            "direct_relatives",
            ("direct_relatives", "relatives_and_friends"),
            _TB,
            "Who may receive gifted coins (Shanghai also allows relatives and friends).",
        ),
        # -- points supermarket --
        "reference_value_fen_per_point": _int(
            100, "fen", _PS, "Reference value of one point in fen (1 point ≈ ¥1); never a cash price."
        ),
        "redemption_limit_per_household_per_period": _cap(
            "redemptions", _PS, "Most redemptions per household per period; null: no limit (alt. 1)."
        ),
        "redemption_limit_period": _choice("quarter", _PERIODS, _PS, "Period of the redemption limit."),
        "redemption_requires_pass_mark": _flag(
            False, _PS, "Only households at or over the score pass mark may redeem (some villages)."
        ),
        "order_pickup_days": _int(
            14, "days", _PS, "An order not collected within this many days expires" + _CHOSEN + ".", 1, 365
        ),
        # -- points expiry --
        "points_expiry_policy": _choice(
            "period_end",
            ("period_end", "rolling"),
            _PE,
            "Points expire at the end of each period, or a fixed number of months after earning.",
        ),
        "points_expiry_period": _choice("year", _PERIODS, _PE, "The period for period_end (calendar year)."),
        "points_expiry_rolling_months": _cap(
            "months", _PE, "Months until a lot expires under the rolling policy (required for it).", hi=120
        ),
        "points_expiry_notice_days": _int(
            30, "days", _PE, "Owners are told this many days before points expire" + _CHOSEN + ".", 0, 366
        ),
        # -- village rules (村规民约积分制) and red/black lists --
        "scoring_subject": _choice(
            "household", ("household", "person"), _VR, "Who village-rule scoring events are recorded for."
        ),
        "score_period": _choice(
            "quarter", _PERIODS, _VR, "Scoring period; its score is base + final events."
        ),
        "score_base_points": _int(
            100, "points", _VR, "Score every household starts a period with.", 0, 100_000
        ),
        "score_bonus_cap_points": _int(20, "points", _VR, "Most bonus points per period.", 0, 100_000),
        "score_pass_mark_points": _int(60, "points", _VR, "Pass mark for a period score.", 0, 100_000),
        "score_notice_days": _int(7, "days", _VR, "Length of the public notice of a reviewed event.", 1, 365),
        "objection_reply_deadline_days": _int(20, "days", _VR, "Days to reply to an objection.", 1, 365),
        "red_list_top_percent": _int(30, "percent", _VR, "Red list: this top share of households.", 0, 100),
        "black_list_escalation_count_per_year": _int(
            3, "listings", _VR, "Black-list entries in a year at which a household is flagged.", 1, 100
        ),
        "board_publish_names_online": _flag(
            False, _VR, "Named online publication of boards, per the consent setting" + _CHOSEN + "."
        ),
        # -- privacy on public pages --
        "id_mask_keep_prefix_chars": _int(
            4, "characters", _PV, "Leading ID-number characters shown (3201**********1234).", 0, 8
        ),
        "id_mask_keep_suffix_chars": _int(4, "characters", _PV, "Trailing ID-number characters shown.", 0, 8),
    }
)


def _json(value: ParamValue) -> object:
    """The JSON-native form (lists, not tuples), so a stored version reads back equal."""
    return list(value) if isinstance(value, tuple) else value


def default_params() -> dict[str, object]:
    """A fresh copy of every default (version 0 of every community)."""
    return {key: _json(p.default) for key, p in PARAMS.items()}


def _check(key: str, p: Param, value: object) -> object:
    bad = LedgerError(ErrorCode.INVALID_FIELD, field=key)
    if value is None:
        if not p.nullable:
            raise bad
        return None
    if p.kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise bad
        return value
    if p.kind is Kind.CHOICE:
        if not isinstance(value, str) or value not in p.choices:
            raise bad
        return value
    if p.kind is Kind.INT:
        if not isinstance(value, int) or isinstance(value, bool) or not p.minimum <= value <= p.maximum:
            raise bad
        return value
    if not isinstance(value, list | tuple) or len(value) != p.length:
        raise bad
    items: list[int] = []
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or not p.minimum <= item <= p.maximum:
            raise bad
        if items and item <= items[-1]:
            raise bad
        items.append(item)
    return items


def validate_params(params: Mapping[str, object]) -> dict[str, object]:
    """Merge ``params`` over the defaults and return the full set, or raise INVALID_FIELD.

    Unknown keys are refused (a typo must not silently leave a default in force). Faults are
    reported in a fixed order, unknown keys (sorted) first, then PARAMS order, then the rules that
    tie parameters together, so one bad request always fails the same way.
    """
    if not isinstance(params, Mapping):
        raise LedgerError(ErrorCode.INVALID_FIELD, field="params")
    for key in sorted(params, key=str):
        if not isinstance(key, str) or key not in PARAMS:
            raise LedgerError(ErrorCode.INVALID_FIELD, field=str(key))
    merged = default_params()
    for key, p in PARAMS.items():
        if key in params:
            merged[key] = _check(key, p, params[key])
    _check_together(merged)
    return merged


def _check_together(merged: Mapping[str, object]) -> None:
    hardship = merged["coin_withdrawal_hardship_min_age_years"]
    min_age = merged["coin_withdrawal_min_age_years"]
    assert isinstance(min_age, int)
    if isinstance(hardship, int) and hardship > min_age:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="coin_withdrawal_hardship_min_age_years")
    rolling = merged["points_expiry_rolling_months"]
    if (merged["points_expiry_policy"] == "rolling") != (rolling is not None):
        # The months are required by the rolling policy and meaningless under any other.
        raise LedgerError(ErrorCode.INVALID_FIELD, field="points_expiry_rolling_months")


def with_defaults(stored: Mapping[str, object]) -> dict[str, object]:
    """A stored version's parameters, with defaults only for keys added to PARAMS after it was
    published. Stored values are returned as published, never re-derived from current defaults."""
    return {**default_params(), **stored}
