"""Service records in the domain: art 7 fields, service time, the state machine, deadlines."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.service_records import (
    MAX_ACTIVITY_DAYS,
    ActivityFields,
    CorrectionState,
    RecordAction,
    RecordState,
    check_deadline,
    check_not_recorder,
    check_place_and_content,
    check_reason,
    check_service_date,
    next_correction_state,
    next_state,
    validate_activity,
    validate_service_time,
)

ACTIVITY = ActivityFields(
    name="社区助老服务",
    start_date=date(2025, 3, 3),
    end_date=date(2025, 3, 7),
    place="幸福社区活动中心",
    content="陪伴老人、打扫卫生",
    organising_unit="幸福社区居委会",
)


def fault(fn: object, *args: object) -> tuple[ErrorCode, str | None]:
    assert callable(fn)
    with pytest.raises(LedgerError) as caught:
        fn(*args)
    return caught.value.code, caught.value.field


def test_a_valid_activity_passes_unchanged() -> None:
    assert validate_activity(ACTIVITY) is ACTIVITY
    one_day = replace(ACTIVITY, end_date=ACTIVITY.start_date)
    assert validate_activity(one_day) is one_day


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": ""}, (ErrorCode.INVALID_FIELD, "name")),
        ({"name": "   "}, (ErrorCode.INVALID_FIELD, "name")),
        ({"name": "x" * 101}, (ErrorCode.INVALID_FIELD, "name")),
        ({"name": "a\x07b"}, (ErrorCode.NON_CANONICAL_TEXT, "name")),
        ({"name": "e\u0301"}, (ErrorCode.NON_CANONICAL_TEXT, "name")),  # not NFC
        ({"name": 5}, (ErrorCode.INVALID_FIELD, "name")),
        ({"end_date": date(2025, 3, 2)}, (ErrorCode.INVALID_FIELD, "end_date")),
        (
            {"end_date": date(2025, 3, 3) + timedelta(days=MAX_ACTIVITY_DAYS)},
            (ErrorCode.INVALID_FIELD, "end_date"),
        ),
        ({"start_date": datetime(2025, 3, 3, tzinfo=UTC)}, (ErrorCode.INVALID_FIELD, "start_date")),
        ({"place": ""}, (ErrorCode.INVALID_FIELD, "place")),
        ({"content": "x" * 1001}, (ErrorCode.INVALID_FIELD, "content")),
        ({"organising_unit": ""}, (ErrorCode.INVALID_FIELD, "organising_unit")),
    ],
)
def test_activity_faults_name_the_field(changes: dict[str, object], expected: tuple[ErrorCode, str]) -> None:
    assert fault(validate_activity, replace(ACTIVITY, **changes)) == expected  # type: ignore[arg-type]


def test_scenario_2_service_time_counts_minutes_served() -> None:
    assert validate_service_time(time(9, 0), time(11, 45)).served_minutes == 165
    assert validate_service_time(time(0, 0), time(23, 59)).served_minutes == 1439


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (time(11, 0), time(9, 0), "end_time"),
        (time(9, 0), time(9, 0), "end_time"),
        (time(9, 0, 30), time(10, 0), "start_time"),  # whole minutes only
        (time(9, 0), time(10, 0, 0, 1), "end_time"),
        (time(9, 0, tzinfo=UTC), time(10, 0), "start_time"),  # local times carry no zone
        ("09:00", time(10, 0), "start_time"),
    ],
)
def test_bad_service_times(start: object, end: object, field: str) -> None:
    assert fault(validate_service_time, start, end) == (ErrorCode.INVALID_FIELD, field)


def test_service_date_within_the_activity() -> None:
    today = date(2025, 3, 10)
    assert check_service_date(date(2025, 3, 3), ACTIVITY, today) == date(2025, 3, 3)
    assert check_service_date(date(2025, 3, 7), ACTIVITY, today) == date(2025, 3, 7)
    assert check_service_date(date(2025, 3, 5), ACTIVITY, date(2025, 3, 5)) == date(2025, 3, 5)
    for day in (date(2025, 3, 2), date(2025, 3, 8)):
        assert fault(check_service_date, day, ACTIVITY, today) == (ErrorCode.INVALID_FIELD, "service_date")
    # Service not yet done is not recorded.
    assert fault(check_service_date, date(2025, 3, 6), ACTIVITY, date(2025, 3, 5))[1] == "service_date"
    assert fault(check_service_date, datetime(2025, 3, 3, tzinfo=UTC), ACTIVITY, today)[1] == "service_date"


def test_reasons_and_record_text() -> None:
    assert check_reason("时间记错了") == "时间记错了"
    assert fault(check_reason, "") == (ErrorCode.INVALID_FIELD, "reason")
    assert fault(check_reason, "x" * 501) == (ErrorCode.INVALID_FIELD, "reason")
    assert fault(check_reason, None) == (ErrorCode.INVALID_FIELD, "reason")
    check_place_and_content(None, None)
    check_place_and_content("活动室", "读报")
    assert fault(check_place_and_content, "", None) == (ErrorCode.INVALID_FIELD, "place")
    assert fault(check_place_and_content, None, "\x00") == (ErrorCode.NON_CANONICAL_TEXT, "content")


# The whole state machine, written out: every (state, action) pair not listed is refused.
ALLOWED = {
    (RecordState.DRAFT, RecordAction.SUBMIT): RecordState.SUBMITTED,
    (RecordState.SUBMITTED, RecordAction.VERIFY): RecordState.VERIFIED,
    (RecordState.SUBMITTED, RecordAction.REJECT): RecordState.REJECTED,
    (RecordState.VERIFIED, RecordAction.POST): RecordState.POSTED,
    (RecordState.DRAFT, RecordAction.OVERRIDE_DEADLINE): RecordState.DRAFT,
    (RecordState.SUBMITTED, RecordAction.OVERRIDE_DEADLINE): RecordState.SUBMITTED,
    (RecordState.VERIFIED, RecordAction.OVERRIDE_DEADLINE): RecordState.VERIFIED,
    (RecordState.POSTED, RecordAction.CORRECT): RecordState.POSTED,
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(RecordState, RecordAction)))
def test_state_machine_is_exactly_the_documented_one(state: RecordState, action: RecordAction) -> None:
    if (state, action) in ALLOWED:
        assert next_state(state, action) is ALLOWED[(state, action)]
    else:
        with pytest.raises(LedgerError) as caught:
            next_state(state, action)
        assert caught.value.code is ErrorCode.INVALID_STATE_TRANSITION
        assert caught.value.detail == {"state": str(state), "action": str(action)}


@given(st.lists(st.sampled_from(list(RecordAction)), max_size=12))
def test_no_path_posts_without_verification_or_leaves_rejected(actions: list[RecordAction]) -> None:
    state = RecordState.DRAFT
    seen = [state]
    for action in actions:
        try:
            state = next_state(state, action)
        except LedgerError:
            continue
        seen.append(state)
    if RecordState.POSTED in seen:
        assert seen.index(RecordState.VERIFIED) < seen.index(RecordState.POSTED)
        assert seen.index(RecordState.SUBMITTED) < seen.index(RecordState.VERIFIED)
    if RecordState.REJECTED in seen:
        assert seen[seen.index(RecordState.REJECTED) :] == [RecordState.REJECTED]
        assert RecordState.POSTED not in seen


def test_scenario_3_the_recorder_cannot_verify() -> None:
    worker, leader = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(LedgerError) as caught:
        check_not_recorder(worker, (worker, worker))
    assert caught.value.code is ErrorCode.VERIFIER_IS_RECORDER
    with pytest.raises(LedgerError):
        check_not_recorder(worker, (leader, worker))  # the submitter counts as a recorder too
    check_not_recorder(leader, (worker, worker))
    check_not_recorder(leader, (worker, None))


def test_scenario_1_deadline_and_override() -> None:
    deadline = date(2025, 3, 21)
    assert check_deadline(date(2025, 3, 21), deadline, overridden=False) is False  # on the day: on time
    with pytest.raises(LedgerError) as caught:
        check_deadline(date(2025, 3, 24), deadline, overridden=False)
    assert caught.value.code is ErrorCode.RECORDING_OVERDUE
    assert caught.value.detail == {"deadline": "2025-03-21"}
    assert check_deadline(date(2025, 3, 24), deadline, overridden=True) is True  # flagged OVERDUE
    assert check_deadline(date(2025, 3, 20), deadline, overridden=True) is False  # an unused override


def test_corrections_are_decided_once() -> None:
    assert next_correction_state(CorrectionState.FILED, accept=True) is CorrectionState.ACCEPTED
    assert next_correction_state(CorrectionState.FILED, accept=False) is CorrectionState.REJECTED
    for state in (CorrectionState.ACCEPTED, CorrectionState.REJECTED):
        for accept in (True, False):
            with pytest.raises(LedgerError) as caught:
                next_correction_state(state, accept=accept)
            assert caught.value.code is ErrorCode.INVALID_STATE_TRANSITION
