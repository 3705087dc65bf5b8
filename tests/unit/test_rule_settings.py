"""The rule parameters: defaults are domain.md's numbers, validation refuses anything else exactly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.rule_settings import PARAMS, Kind, default_params, validate_params, with_defaults

ROOT = Path(__file__).resolve().parents[2]


def invalid(params: Any) -> str | None:
    with pytest.raises(LedgerError) as caught:
        validate_params(params)
    assert caught.value.code is ErrorCode.INVALID_FIELD
    return caught.value.field


def test_defaults_are_the_numbers_of_domain_md() -> None:
    d = default_params()
    # Service records: 0.5 h granularity rounded down; 10 working days on the official calendar.
    assert d["service_granularity_minutes"] == 30
    assert d["service_rounding"] == "down"
    assert d["recording_deadline_working_days"] == 10
    assert d["working_day_calendar"] == "cn_official"
    assert d["star_thresholds_hours"] == [100, 300, 600, 1000, 1500]
    # Rates and caps: 1 point per hour, no per-activity or daily caps, 1500 h coin storage cap.
    assert (d["points_per_hour_numerator"], d["points_per_hour_denominator"]) == (1, 1)
    assert d["per_activity_cap_minutes"] is None
    assert d["daily_service_cap_minutes"] is None
    assert d["coin_storage_cap_minutes"] == 1500 * 60
    assert d["coin_overflow_target"] == "donation_pool"
    assert d["coin_daily_cap_minutes"] is None
    # Time bank: 1 h = 1 coin, withdrawal from 60, gifts to direct relatives.
    assert d["coin_minutes_per_service_hour"] == 60
    assert d["coin_withdrawal_min_age_years"] == 60
    assert d["coin_gift_recipients"] == "direct_relatives"
    # Points supermarket and expiry: 1 point ≈ ¥1; cleared at the end of the calendar year.
    assert d["reference_value_fen_per_point"] == 100
    assert (d["points_expiry_policy"], d["points_expiry_period"]) == ("period_end", "year")
    # Village rules: base 100, bonus up to 20, pass mark 60, notice 7 days, reply 20 days, quarter.
    assert (d["score_base_points"], d["score_bonus_cap_points"], d["score_pass_mark_points"]) == (100, 20, 60)
    assert (d["score_notice_days"], d["objection_reply_deadline_days"]) == (7, 20)
    assert d["score_period"] == "quarter"
    assert d["scoring_subject"] == "household"
    assert d["red_list_top_percent"] == 30
    assert d["black_list_escalation_count_per_year"] == 3
    # Public pages mask ID numbers as 3201**********1234.
    assert (d["id_mask_keep_prefix_chars"], d["id_mask_keep_suffix_chars"]) == (4, 4)


def test_defaults_hold_no_floats_and_every_key_names_a_unit_and_source() -> None:
    for key, value in default_params().items():
        assert not isinstance(value, float), key
        if isinstance(value, list):
            assert all(isinstance(v, int) for v in value), key
        param = PARAMS[key]
        assert param.unit and param.source and param.doc, key
        assert re.fullmatch(r"[a-z][a-z0-9_]*", key), key


def test_every_key_is_in_the_settings_table_of_the_docs() -> None:
    doc = (ROOT / "docs" / "households-and-settings.md").read_text(encoding="utf-8")
    table = doc.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| `([^`]*)` \|", table, flags=re.MULTILINE)
    assert [key for key, _ in rows] == list(PARAMS)  # every key, once, in definition order
    for key, default in rows:
        expected = default_params()[key]
        shown = (
            "null"
            if expected is None
            else str(expected).lower()
            if isinstance(expected, bool)
            else str(expected)
        )
        assert default == shown, key


def test_empty_params_validate_to_the_defaults_and_defaults_are_fresh_copies() -> None:
    assert validate_params({}) == default_params()
    copy = default_params()
    thresholds = copy["star_thresholds_hours"]
    assert isinstance(thresholds, list)
    thresholds.append(2000)
    assert default_params()["star_thresholds_hours"] == [100, 300, 600, 1000, 1500]


def test_overrides_merge_over_the_defaults() -> None:
    beijing = validate_params(
        {
            "star_thresholds_hours": (100, 200, 500, 800, 1000),  # a tuple is accepted, a list returned
            "points_per_hour_denominator": 2,  # 0.5 points per hour
            "per_activity_cap_minutes": 120,
            "coin_withdrawal_min_age_years": 65,
            "coin_withdrawal_hardship_min_age_years": 60,
            "points_expiry_policy": "rolling",
            "points_expiry_rolling_months": 24,
        }
    )
    assert beijing["star_thresholds_hours"] == [100, 200, 500, 800, 1000]
    assert beijing["points_per_hour_denominator"] == 2
    assert beijing["per_activity_cap_minutes"] == 120
    assert beijing["coin_withdrawal_hardship_min_age_years"] == 60
    assert beijing["score_pass_mark_points"] == 60  # untouched keys keep their defaults
    assert set(beijing) == set(PARAMS)


def test_unknown_keys_are_refused_before_anything_else() -> None:
    assert invalid({"points_per_hours": 2}) == "points_per_hours"
    # Unknown keys are reported first, in sorted order, whatever else is wrong.
    assert invalid({"score_base_points": -1, "zz": 1, "aa": 1}) == "aa"


def test_params_must_be_a_mapping() -> None:
    assert invalid([("score_base_points", 1)]) == "params"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("points_per_hour_numerator", 0.5),  # never a float
        ("points_per_hour_numerator", "1"),
        ("points_per_hour_denominator", 0),
        ("service_granularity_minutes", True),  # a bool is not an integer here
        ("recording_deadline_working_days", None),  # not nullable
        ("recording_deadline_working_days", 0),
        ("red_list_top_percent", 101),
        ("service_rounding", "banker"),
        ("redemption_requires_pass_mark", 1),
        ("star_thresholds_hours", [100, 300, 300, 1000, 1500]),  # strictly increasing
        ("star_thresholds_hours", [100, 300, 600, 1000]),  # five stars
        ("star_thresholds_hours", "100,300,600,1000,1500"),
        ("star_thresholds_hours", [100, 300, 600, 1000, True]),
        ("coin_storage_cap_minutes", 0),
        ("score_notice_days", 2**60),
    ],
)
def test_wrong_types_and_ranges_name_the_key(key: str, value: object) -> None:
    assert invalid({key: value}) == key


def test_nullable_caps_accept_null() -> None:
    params = validate_params({"coin_storage_cap_minutes": None, "coin_daily_cap_minutes": 120})
    assert params["coin_storage_cap_minutes"] is None
    assert params["coin_daily_cap_minutes"] == 120


def test_rules_that_tie_parameters_together() -> None:
    field = "coin_withdrawal_hardship_min_age_years"
    assert invalid({"coin_withdrawal_min_age_years": 60, field: 65}) == field
    assert invalid({"points_expiry_policy": "rolling"}) == "points_expiry_rolling_months"
    assert invalid({"points_expiry_rolling_months": 12}) == "points_expiry_rolling_months"


def test_choice_parameters_list_their_choices_and_defaults_are_among_them() -> None:
    for key, param in PARAMS.items():
        if param.kind is Kind.CHOICE:
            assert param.default in param.choices, key
        else:
            assert not param.choices, key


def test_with_defaults_keeps_stored_values_and_fills_only_missing_keys() -> None:
    stored = {"score_pass_mark_points": 70, "star_thresholds_hours": [1, 2, 3, 4, 5]}
    full = with_defaults(stored)
    assert full["score_pass_mark_points"] == 70
    assert full["star_thresholds_hours"] == [1, 2, 3, 4, 5]
    assert full["score_base_points"] == 100
