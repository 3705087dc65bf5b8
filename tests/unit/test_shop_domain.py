"""ledger.domain.shop: item checks, the order state machine, periods and pickup codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.shop import (
    CODE_ALPHABET,
    FundingSource,
    ItemSpec,
    OrderState,
    Period,
    check_item,
    check_quantity,
    check_transition,
    format_code,
    is_on_sale,
    new_pickup_code,
    normalize_code,
    period_bounds,
    pickup_code_hash,
)

KEY = bytes(32)
SPEC = ItemSpec("食用油 5L", 50, 5000, FundingSource.DONOR, "村委会")
T0 = datetime(2025, 5, 1, tzinfo=UTC)


def _field(spec: ItemSpec) -> str | None:
    with pytest.raises(LedgerError) as err:
        check_item(spec)
    assert err.value.code is ErrorCode.INVALID_FIELD
    return err.value.field


def test_a_valid_item_passes() -> None:
    assert check_item(SPEC) is SPEC


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"price_points": 0}, "price_points"),
        ({"price_points": True}, "price_points"),
        ({"reference_value_fen": -1}, "reference_value_fen"),
        ({"funding_source": "cash"}, "funding_source"),
        ({"pickup_point": ""}, "pickup_point"),
        ({"limit_quantity": 0}, "limit_quantity"),
        ({"limit_period": "week"}, "limit_period"),
        ({"once_per_period": 1}, "once_per_period"),
        ({"active_from": datetime(2025, 1, 1)}, "active_from"),  # naive: refused
        ({"active_from": T0, "active_until": T0}, "active_until"),
        ({"price_points": 0, "name": ""}, "name"),  # the first field in order is reported
    ],
)
def test_each_bad_field_is_named(change: dict[str, object], field: str) -> None:
    assert _field(replace(SPEC, **change)) == field  # type: ignore[arg-type]


def test_on_sale_needs_the_switch_and_the_window() -> None:
    window = replace(SPEC, active_from=T0, active_until=T0 + timedelta(days=1))
    assert not is_on_sale(window, T0 - timedelta(seconds=1))
    assert is_on_sale(window, T0)
    assert not is_on_sale(window, T0 + timedelta(days=1))  # until is exclusive
    assert not is_on_sale(replace(SPEC, active=False), T0)


@given(st.sampled_from(list(OrderState)), st.sampled_from(list(OrderState)))
def test_only_placed_orders_move_and_only_to_an_end_state(a: OrderState, b: OrderState) -> None:
    if a is OrderState.PLACED and b is not OrderState.PLACED:
        check_transition(a, b)
        return
    with pytest.raises(LedgerError) as err:
        check_transition(a, b)
    assert err.value.code is ErrorCode.INVALID_STATE_TRANSITION


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2200, 12, 31)), st.sampled_from(list(Period)))
def test_periods_hold_the_day_and_tile_the_calendar(day: date, period: Period) -> None:
    start, end = period_bounds(day, period)
    assert start <= day < end and start.day == 1 and end.day == 1
    assert period_bounds(end - timedelta(days=1), period) == (start, end)
    assert period_bounds(end, period)[0] == end
    months = (end.year - start.year) * 12 + end.month - start.month
    assert months == {Period.MONTH: 1, Period.QUARTER: 3, Period.YEAR: 12}[period]
    if period is Period.QUARTER:
        assert start.month in (1, 4, 7, 10)


def test_codes_use_the_alphabet_without_look_alikes() -> None:
    assert not set("01ILO") & set(CODE_ALPHABET) and len(set(CODE_ALPHABET)) == 31
    codes = {new_pickup_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == 8 and set(code) <= set(CODE_ALPHABET)
        shown = format_code(code)
        assert shown[4] == "-" and normalize_code(shown) == code
        assert normalize_code(shown.lower().replace("-", " ")) == code


@given(st.text(max_size=40))
def test_normalize_accepts_only_codes(text: str) -> None:
    code = normalize_code(text)
    assert code is None or (len(code) == 8 and set(code) <= set(CODE_ALPHABET))


@pytest.mark.parametrize("text", ["", "ABCD-EFG", "ABCD-EFGHJ", "ABCD-EFG0", "ABCD-EFGI", None, 12345678])
def test_normalize_refuses_non_codes(text: object) -> None:
    assert normalize_code(text) is None


def test_code_hash_is_keyed_and_bound_to_the_community() -> None:
    code = new_pickup_code()
    h = pickup_code_hash(KEY, 1, code)
    assert len(h) == 32 and h == pickup_code_hash(KEY, 1, code)
    assert h != pickup_code_hash(KEY, 2, code)
    assert h != pickup_code_hash(bytes([1]) * 32, 1, code)
    assert code.encode() not in h


@pytest.mark.parametrize("quantity", [0, 100, -1, True, 1.0, "1"])
def test_quantity_is_a_small_positive_integer(quantity: object) -> None:
    with pytest.raises(LedgerError) as err:
        check_quantity(quantity)
    assert err.value.field == "quantity"
    assert check_quantity(99) == 99
