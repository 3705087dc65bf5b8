"""Service records (志愿服务记录, 民政部令第67号): the art 7 fields and the record's state machine.

A record states who served (a pseudonymous person id), in which activity, on which date, from when
to when, where and doing what; the activity gives its name, organising unit and leader. The
numbers a posted record credits are worked out in ``ledger.domain.service_credit``.

States (domain.md)::

    draft ──submit──▶ submitted ──verify──▶ verified ──post──▶ posted ──correct──▶ posted
                          │
                          └──reject──▶ rejected

The verifier (and whoever rejects) must be neither the user who created the record nor the one who
submitted it ("谁记录谁证明": the activity leader certifies what a social worker recorded). A record
posted after its deadline needs an override first and is flagged OVERDUE for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Final

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import check_text

__all__ = [
    "MAX_ACTIVITY_DAYS",
    "ActivityFields",
    "CorrectionState",
    "RecordAction",
    "RecordState",
    "ServiceTime",
    "check_deadline",
    "check_not_recorder",
    "check_place_and_content",
    "check_reason",
    "check_service_date",
    "next_correction_state",
    "next_state",
    "validate_activity",
    "validate_service_time",
]

MAX_NAME_CHARS: Final = 100
MAX_PLACE_CHARS: Final = 200
MAX_CONTENT_CHARS: Final = 1000
MAX_UNIT_CHARS: Final = 100
MAX_REASON_CHARS: Final = 500
MAX_ACTIVITY_DAYS: Final = 366  # an activity longer than a year is a programme, not an activity


def _text(value: object, field: str, max_chars: int) -> str:
    """Required text: canonical (NFC, no control characters), not blank, at most ``max_chars``."""
    if not isinstance(value, str):
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field)
    check_text(value, field)
    if not value.strip() or len(value) > max_chars:
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field, max=max_chars)
    return value


def _date(value: object, field: str) -> date:
    # datetime is a date subclass; a timestamp here would silently compare in the wrong zone.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field)
    return value


@dataclass(frozen=True, slots=True)
class ActivityFields:
    """What an activity contributes to each of its records (art 7): name, dates, place, content and
    organising unit. The leader is named by ids beside these (never by name)."""

    name: str
    start_date: date
    end_date: date
    place: str
    content: str
    organising_unit: str


def validate_activity(fields: ActivityFields) -> ActivityFields:
    """Check an activity's fields; raise NON_CANONICAL_TEXT or INVALID_FIELD naming the first bad one."""
    _text(fields.name, "name", MAX_NAME_CHARS)
    start = _date(fields.start_date, "start_date")
    end = _date(fields.end_date, "end_date")
    if end < start or (end - start).days >= MAX_ACTIVITY_DAYS:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="end_date")
    _text(fields.place, "place", MAX_PLACE_CHARS)
    _text(fields.content, "content", MAX_CONTENT_CHARS)
    _text(fields.organising_unit, "organising_unit", MAX_UNIT_CHARS)
    return fields


@dataclass(frozen=True, slots=True)
class ServiceTime:
    """Local (China) clock times on the service date, minute precision, ``start < end``.

    Only time actually served counts (travel is not service time); a shift across midnight is two
    records, one per date.
    """

    start: time
    end: time

    @property
    def served_minutes(self) -> int:
        return (self.end.hour * 60 + self.end.minute) - (self.start.hour * 60 + self.start.minute)


def _clock_time(value: object, field: str) -> time:
    if not isinstance(value, time) or value.tzinfo is not None or value.second != 0 or value.microsecond != 0:
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field)
    return value


def validate_service_time(start: object, end: object) -> ServiceTime:
    """Whole minutes, no time zone (they are China local times), and end after start."""
    start_t = _clock_time(start, "start_time")
    end_t = _clock_time(end, "end_time")
    if end_t <= start_t:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="end_time")
    return ServiceTime(start_t, end_t)


def check_service_date(service_date: object, activity: ActivityFields, today: date) -> date:
    """The service date lies within the activity's dates, and not after today: only service actually
    done is recorded."""
    day = _date(service_date, "service_date")
    if not activity.start_date <= day <= activity.end_date or day > today:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="service_date")
    return day


def check_place_and_content(place: object, content: object) -> None:
    """A record's own place and content, where given (None: the activity's)."""
    if place is not None:
        _text(place, "place", MAX_PLACE_CHARS)
    if content is not None:
        _text(content, "content", MAX_CONTENT_CHARS)


def check_reason(reason: object, field: str = "reason") -> str:
    """A reason (rejection, override, correction): required, canonical, at most 500 characters.
    Free text read by staff; forms ask for no personal data in it."""
    return _text(reason, field, MAX_REASON_CHARS)


class RecordState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    VERIFIED = "verified"
    POSTED = "posted"
    REJECTED = "rejected"


class RecordAction(StrEnum):
    SUBMIT = "submit"
    VERIFY = "verify"
    POST = "post"
    REJECT = "reject"
    OVERRIDE_DEADLINE = "override_deadline"
    CORRECT = "correct"


_TRANSITIONS: Final[dict[tuple[RecordState, RecordAction], RecordState]] = {
    (RecordState.DRAFT, RecordAction.SUBMIT): RecordState.SUBMITTED,
    (RecordState.SUBMITTED, RecordAction.VERIFY): RecordState.VERIFIED,
    (RecordState.SUBMITTED, RecordAction.REJECT): RecordState.REJECTED,
    (RecordState.VERIFIED, RecordAction.POST): RecordState.POSTED,
    # A deadline override may be granted any time before posting; it changes no state.
    (RecordState.DRAFT, RecordAction.OVERRIDE_DEADLINE): RecordState.DRAFT,
    (RecordState.SUBMITTED, RecordAction.OVERRIDE_DEADLINE): RecordState.SUBMITTED,
    (RecordState.VERIFIED, RecordAction.OVERRIDE_DEADLINE): RecordState.VERIFIED,
    # An accepted correction reverses the posted transfer and posts a new one; still posted.
    (RecordState.POSTED, RecordAction.CORRECT): RecordState.POSTED,
}


def next_state(state: RecordState, action: RecordAction) -> RecordState:
    """The state after ``action``, or INVALID_STATE_TRANSITION (rejected is final; so is posted but
    for corrections)."""
    after = _TRANSITIONS.get((state, action))
    if after is None:
        raise LedgerError(ErrorCode.INVALID_STATE_TRANSITION, state=str(state), action=str(action))
    return after


def check_not_recorder(actor_id: uuid.UUID, recorder_ids: Iterable[uuid.UUID | None]) -> None:
    """Verifying or rejecting is for someone other than whoever created or submitted the record."""
    if actor_id in {r for r in recorder_ids if r is not None}:
        raise LedgerError(ErrorCode.VERIFIER_IS_RECORDER)


def check_deadline(today: date, deadline: date, *, overridden: bool) -> bool:
    """Whether posting on ``today`` is overdue (art 11). Overdue without an override is refused
    with RECORDING_OVERDUE; with one it is allowed and the record stays flagged OVERDUE."""
    overdue = today > deadline
    if overdue and not overridden:
        raise LedgerError(ErrorCode.RECORDING_OVERDUE, deadline=deadline.isoformat())
    return overdue


class CorrectionState(StrEnum):
    """A volunteer's correction request (arts 12–13): filed, then accepted or rejected, once."""

    FILED = "filed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


def next_correction_state(state: CorrectionState, accept: bool) -> CorrectionState:
    if state is not CorrectionState.FILED:
        action = "accept" if accept else "reject"
        raise LedgerError(ErrorCode.INVALID_STATE_TRANSITION, state=str(state), action=action)
    return CorrectionState.ACCEPTED if accept else CorrectionState.REJECTED
