"""Points supermarket (积分超市): catalog items, order states, redemption periods and pickup codes.

Pure: no database, no clock. The service (ledger.services.shop) reads and locks rows, then asks
this module whether an item is valid, whether an order may change state, which period a day falls
in, and what a pickup code looks like and hashes to.

Guarantees:

- An item's price is a positive whole number of points, its reference value (what the goods are
  worth, for funding reports; never a cash price) a non-negative number of fen.
- An order only moves ``placed → fulfilled | cancelled | unclaimed_expired``; every other move is
  INVALID_STATE_TRANSITION. The three end states are final.
- A pickup code is 8 characters from a 31-character alphabet without look-alikes (no 0/O, 1/I/L),
  drawn with ``secrets`` (about 39.6 bits), shown as ``XXXX-XXXX``; only its keyed hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from ledger.domain.errors import ErrorCode, LedgerError

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "FundingSource",
    "ItemSpec",
    "LimitScope",
    "OrderState",
    "Period",
    "check_item",
    "check_quantity",
    "check_transition",
    "format_code",
    "new_pickup_code",
    "normalize_code",
    "period_bounds",
    "pickup_code_hash",
]

MAX_NAME_CHARS: Final = 100
MAX_DESCRIPTION_CHARS: Final = 1000
MAX_PICKUP_POINT_CHARS: Final = 200
MAX_PRICE_POINTS: Final = 1_000_000
MAX_REFERENCE_VALUE_FEN: Final = 100_000_000  # ¥1,000,000: far above any supermarket item
MAX_QUANTITY: Final = 99
MAX_LIMIT: Final = 10_000
MAX_STOCK_CHANGE: Final = 1_000_000
CODE_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0 O 1 I L: read aloud without doubt
CODE_LENGTH: Final = 8
_CODE_PURPOSE: Final = b"shop-pickup-code\x00"


class FundingSource(StrEnum):
    PUBLIC_BUDGET = "public_budget"  # 财政资金
    VILLAGE_COLLECTIVE = "village_collective"  # 村集体
    DONOR = "donor"  # 爱心捐赠


class LimitScope(StrEnum):
    """Whose redemptions a limit counts, and whose points pay: the person's, or the household's."""

    PERSON = "person"
    HOUSEHOLD = "household"


class Period(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class OrderState(StrEnum):
    PLACED = "placed"  # points held, stock reserved
    FULFILLED = "fulfilled"  # pickup code checked, hold posted
    CANCELLED = "cancelled"  # hold voided, stock released
    UNCLAIMED_EXPIRED = "unclaimed_expired"  # not collected in time: as cancelled, by the job


TRANSITIONS: Final[frozenset[tuple[OrderState, OrderState]]] = frozenset(
    (OrderState.PLACED, to)
    for to in (OrderState.FULFILLED, OrderState.CANCELLED, OrderState.UNCLAIMED_EXPIRED)
)


def check_transition(from_state: OrderState, to_state: OrderState) -> None:
    if (from_state, to_state) not in TRANSITIONS:
        raise LedgerError(
            ErrorCode.INVALID_STATE_TRANSITION, from_state=str(from_state), to_state=str(to_state)
        )


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """Everything an admin sets on a catalog item. ``limit_quantity`` counts units per period per
    person or household (``limit_scope``); ``once_per_period`` allows one order of the item per
    period; ``min_household_score_points`` gates redemption on the buyer's household score."""

    name: str
    price_points: int
    reference_value_fen: int
    funding_source: FundingSource
    pickup_point: str
    description: str = ""
    limit_scope: LimitScope = LimitScope.PERSON
    limit_quantity: int | None = None
    limit_period: Period = Period.MONTH
    once_per_period: bool = False
    min_household_score_points: int | None = None
    active_from: datetime | None = None
    active_until: datetime | None = None
    active: bool = True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_ok(value: object, max_chars: int, *, required: bool) -> bool:
    if not isinstance(value, str) or len(value) > max_chars or (required and not value.strip()):
        return False
    control = any(unicodedata.category(ch) == "Cc" for ch in value if ch not in "\n")
    return not control and unicodedata.is_normalized("NFC", value)


def _int_ok(value: object, lo: int, hi: int) -> bool:
    return _is_int(value) and lo <= value <= hi  # type: ignore[operator]


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def check_item(spec: ItemSpec) -> ItemSpec:
    """Return ``spec`` if every field is valid, else INVALID_FIELD naming the first bad field (in
    the order of the dataclass, then the active window as a whole)."""
    checks: tuple[tuple[str, bool], ...] = (
        ("name", _text_ok(spec.name, MAX_NAME_CHARS, required=True)),
        ("price_points", _int_ok(spec.price_points, 1, MAX_PRICE_POINTS)),
        ("reference_value_fen", _int_ok(spec.reference_value_fen, 0, MAX_REFERENCE_VALUE_FEN)),
        ("funding_source", isinstance(spec.funding_source, FundingSource)),
        ("pickup_point", _text_ok(spec.pickup_point, MAX_PICKUP_POINT_CHARS, required=True)),
        ("description", _text_ok(spec.description, MAX_DESCRIPTION_CHARS, required=False)),
        ("limit_scope", isinstance(spec.limit_scope, LimitScope)),
        ("limit_quantity", spec.limit_quantity is None or _int_ok(spec.limit_quantity, 1, MAX_LIMIT)),
        ("limit_period", isinstance(spec.limit_period, Period)),
        ("once_per_period", isinstance(spec.once_per_period, bool)),
        (
            "min_household_score_points",
            spec.min_household_score_points is None
            or _int_ok(spec.min_household_score_points, -MAX_LIMIT * 100, MAX_LIMIT * 100),
        ),
        ("active_from", spec.active_from is None or _aware(spec.active_from)),
        ("active_until", spec.active_until is None or _aware(spec.active_until)),
        ("active", isinstance(spec.active, bool)),
    )
    for name, ok in checks:
        if not ok:
            raise LedgerError(ErrorCode.INVALID_FIELD, field=name)
    if (
        spec.active_from is not None
        and spec.active_until is not None
        and spec.active_until <= spec.active_from
    ):
        raise LedgerError(ErrorCode.INVALID_FIELD, field="active_until")
    return spec


def is_on_sale(spec: ItemSpec, now: datetime) -> bool:
    """Switched on by the admin and inside its active window (``active_until`` exclusive)."""
    if not spec.active:
        return False
    if spec.active_from is not None and now < spec.active_from:
        return False
    return spec.active_until is None or now < spec.active_until


def check_quantity(quantity: object) -> int:
    if not _int_ok(quantity, 1, MAX_QUANTITY):
        raise LedgerError(ErrorCode.INVALID_FIELD, field="quantity")
    assert isinstance(quantity, int)
    return quantity


def check_stock_change(quantity: object) -> int:
    if not _int_ok(quantity, 1, MAX_STOCK_CHANGE):
        raise LedgerError(ErrorCode.INVALID_FIELD, field="quantity")
    assert isinstance(quantity, int)
    return quantity


def period_bounds(day: date, period: Period | str) -> tuple[date, date]:
    """The calendar period holding ``day``: its first day and the first day after it."""
    period = Period(period)
    if period is Period.YEAR:
        return date(day.year, 1, 1), date(day.year + 1, 1, 1)
    first_month = day.month if period is Period.MONTH else (day.month - 1) // 3 * 3 + 1
    months = 1 if period is Period.MONTH else 3
    start = date(day.year, first_month, 1)
    end_month = first_month + months
    end = date(day.year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
    return start, end


def new_pickup_code() -> str:
    """A fresh code in its canonical form (8 characters, no separator)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """``XXXX-XXXX``, as shown to the buyer and read aloud at the counter."""
    assert len(code) == CODE_LENGTH
    return f"{code[:4]}-{code[4:]}"


def normalize_code(text: object) -> str | None:
    """The canonical code from what a clerk typed (any case, spaces or hyphens), or None if it
    cannot be a code at all. Look-alikes are not mapped: a code never contains them."""
    if not isinstance(text, str) or len(text) > 32:
        return None
    code = "".join(ch for ch in text.upper() if ch not in " -")
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def pickup_code_hash(key: bytes, community_id: int, code: str) -> bytes:
    """HMAC-SHA256 of the canonical code, keyed and bound to the community: a stolen database does
    not give the codes of open orders (an unkeyed hash of 39 bits falls to brute force)."""
    assert len(key) >= 16 and len(code) == CODE_LENGTH
    message = _CODE_PURPOSE + str(community_id).encode() + b"\x00" + code.encode()
    return hmac.new(key, message, hashlib.sha256).digest()
