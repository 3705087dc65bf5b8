"""Working days for recording deadlines: the official Chinese calendar with make-up days (调休).

The official calendar is the State Council's yearly holiday notice, as tabulated by the
``chinese-calendar`` package (a pure data table, no I/O; pinned in uv.lock). Every notice moves
working days around: a holiday week is paid for by working Saturdays or Sundays (调休), so a date's
weekday alone says nothing. The package covers the years it has notices for; a date outside them
raises CALENDAR_NOT_COVERED instead of guessing, because next year's notice is published only
weeks before the year starts. Updating the package extends the coverage.

``mon_to_fri`` is the simple calendar (Monday to Friday, no holidays) a community may choose; it
covers every date.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final

import chinese_calendar

from ledger.domain.errors import ErrorCode, LedgerError

__all__ = [
    "WorkdayCalendar",
    "add_working_days",
    "covered_years",
    "is_working_day",
    "recording_deadline",
]


class WorkdayCalendar(StrEnum):
    """The values of the ``working_day_calendar`` setting."""

    CN_OFFICIAL = "cn_official"
    MON_TO_FRI = "mon_to_fri"


def _table(name: str) -> frozenset[date]:
    raw: object = getattr(chinese_calendar, name)
    assert isinstance(raw, dict)
    days = frozenset(d for d in raw if isinstance(d, date))
    assert len(days) == len(raw)
    return days


# Rest days that fall on a weekday (holidays) and working days that fall on a weekend (调休).
_HOLIDAYS: Final = _table("holidays")
_MAKEUP_WORKDAYS: Final = _table("workdays")
_FIRST_YEAR: Final = min(d.year for d in _HOLIDAYS)
_LAST_YEAR: Final = max(d.year for d in _HOLIDAYS)
# A deadline is at most a year or so of working days away (the setting's maximum is 365).
MAX_WORKING_DAYS: Final = 365


def _calendar(value: WorkdayCalendar | str) -> WorkdayCalendar:
    try:
        return WorkdayCalendar(value)
    except ValueError:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="working_day_calendar") from None


def covered_years(calendar: WorkdayCalendar | str = WorkdayCalendar.CN_OFFICIAL) -> range | None:
    """The years the calendar can answer for; None: every year."""
    if _calendar(calendar) is WorkdayCalendar.MON_TO_FRI:
        return None
    return range(_FIRST_YEAR, _LAST_YEAR + 1)


def _require_day(day: object) -> None:
    # datetime is a date subclass; a timestamp here would silently count in the wrong zone.
    if not isinstance(day, date) or isinstance(day, datetime):
        raise LedgerError(ErrorCode.INVALID_FIELD, field="day")


def _require_covered(day: date, calendar: WorkdayCalendar) -> None:
    if calendar is WorkdayCalendar.CN_OFFICIAL and not _FIRST_YEAR <= day.year <= _LAST_YEAR:
        raise LedgerError(
            ErrorCode.CALENDAR_NOT_COVERED,
            year=day.year,
            first_year=_FIRST_YEAR,
            last_year=_LAST_YEAR,
        )


def is_working_day(day: date, calendar: WorkdayCalendar | str = WorkdayCalendar.CN_OFFICIAL) -> bool:
    """Whether people work on ``day``; CALENDAR_NOT_COVERED outside the official calendar's years."""
    cal = _calendar(calendar)
    _require_day(day)
    _require_covered(day, cal)
    weekday = day.weekday() < 5
    if cal is WorkdayCalendar.MON_TO_FRI:
        return weekday
    return day in _MAKEUP_WORKDAYS or (weekday and day not in _HOLIDAYS)


def add_working_days(
    day: date, n: int, calendar: WorkdayCalendar | str = WorkdayCalendar.CN_OFFICIAL
) -> date:
    """The ``n``-th working day after ``day`` (``day`` itself never counts; n = 0 gives ``day``).

    Every date stepped over must be covered: a count that runs past the last year the calendar
    knows raises CALENDAR_NOT_COVERED rather than treating unknown holidays as working days.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_WORKING_DAYS:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="working_days")
    cal = _calendar(calendar)
    _require_day(day)
    _require_covered(day, cal)
    current = day
    left = n
    while left:
        current += timedelta(days=1)
        if is_working_day(current, cal):
            left -= 1
    return current


def recording_deadline(activity_end: date, working_days: int, calendar: WorkdayCalendar | str) -> date:
    """The last day a record of an activity that ended on ``activity_end`` is on time (art 11):
    the ``working_days``-th working day after the end. A record made on that day is on time."""
    if isinstance(working_days, bool) or not isinstance(working_days, int) or working_days < 1:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="working_days")
    return add_working_days(activity_end, working_days, _calendar(calendar))
