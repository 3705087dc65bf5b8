"""The checks of a sheet's rows that need the community's data, and the credit each row would get.

Pure functions over what ledger/services/record_import.py reads in bulk: who the volunteers are,
the activities, the records already there, what was credited before. Problems are added to the
rows (``SheetRow.problems``); the functions never stop at the first one, so a dry run reports
every problem of every row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.service_credit import CreditContext, CreditPlan, ServiceRules, plan_credit
from ledger.domain.service_records import check_place_and_content
from ledger.domain.workdays import WorkdayCalendar, recording_deadline
from ledger.services.record_sheet import COLUMNS, RowProblem, SheetRow
from ledger.store.record_import_repo import ExistingRecord, PostedTotals
from ledger.store.service_records_repo import ActivityRow

# Imported records get ids derived from what identifies a service (community, volunteer, activity,
# date, times): importing the same row again finds its record instead of making another one, and
# the ledger key derived from the id (service-record:<id>) is the same on every run.
_RECORD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:vledger:service-record-import")


def _record_id(prefix: str, day: date, start: time, end: time) -> uuid.UUID:
    """The record id of a row; ``prefix`` is "community|volunteer|activity|". The name hashed,
    "community|volunteer|activity|YYYY-MM-DD|HH:MM|HH:MM", must never change."""
    name = f"{prefix}{day.isoformat()}|{start.hour:02d}:{start.minute:02d}|{end.hour:02d}:{end.minute:02d}"
    return uuid.uuid5(_RECORD_NAMESPACE, name)


@dataclass(slots=True)
class ReadyRow:
    """A row that passed every check: what its record will hold."""

    sheet: SheetRow
    record_id: uuid.UUID
    person_id: uuid.UUID
    activity: ActivityRow
    service_date: date
    start_time: time
    end_time: time
    place: str
    content: str
    deadline: date
    rules: ServiceRules

    @property
    def served_minutes(self) -> int:
        return _minutes(self.end_time) - _minutes(self.start_time)


@dataclass(frozen=True, slots=True)
class Known:
    """What the community holds that the rows are checked against."""

    community_id: int
    actor_id: uuid.UUID  # the importer: never the verifier
    today: date
    by_id_number: Mapping[str, uuid.UUID]
    person_erased: Mapping[uuid.UUID, bool]
    activities: list[ActivityRow]
    rules_on: Callable[[date], ServiceRules]


def _problem(row: SheetRow, headers: Mapping[str, str], name: str, code: str) -> None:
    row.problems.append(RowProblem(row.row, headers.get(name, COLUMNS[name][0]), code))


class _Shared:
    """What many rows share, worked out once per distinct value: an activity's recording deadline
    under a settings version, whether a place or content is acceptable, the fixed part of record
    ids. Each is a pure function of its key."""

    def __init__(self, community_id: int) -> None:
        self._community_id = community_id
        self._deadlines: dict[tuple[date, int, WorkdayCalendar], date | None] = {}
        self._texts: dict[tuple[str, str], bool] = {}
        self._prefixes: dict[tuple[uuid.UUID, uuid.UUID], str] = {}

    def deadline(self, activity_end: date, rules: ServiceRules) -> date | None:
        """The recording deadline; None when the calendar does not cover it (CALENDAR_NOT_COVERED)."""
        key = (activity_end, rules.recording_deadline_working_days, rules.working_day_calendar)
        if key not in self._deadlines:
            try:
                self._deadlines[key] = recording_deadline(*key)
            except LedgerError as err:
                if err.code is not ErrorCode.CALENDAR_NOT_COVERED:
                    raise
                self._deadlines[key] = None
        return self._deadlines[key]

    def text_ok(self, name: str, value: str) -> bool:
        key = (name, value)
        ok = self._texts.get(key)
        if ok is None:
            try:
                check_place_and_content(
                    value if name == "place" else None, value if name == "content" else None
                )
                ok = True
            except LedgerError:
                ok = False
            self._texts[key] = ok
        return ok

    def record_id(
        self, person: uuid.UUID, activity: uuid.UUID, day: date, start: time, end: time
    ) -> uuid.UUID:
        """The record id of a row, with the community, volunteer and activity formatted once per pair."""
        prefix = self._prefixes.get((person, activity))
        if prefix is None:
            prefix = self._prefixes[person, activity] = f"{self._community_id}|{person}|{activity}|"
        return _record_id(prefix, day, start, end)


def resolve(rows: list[SheetRow], headers: Mapping[str, str], known: Known) -> list[ReadyRow]:
    """Check each parsed row against the community; the rows without problems, resolved."""
    by_id = {a.activity_id: a for a in known.activities}
    by_name: dict[str, list[ActivityRow]] = {}
    for a in known.activities:
        by_name.setdefault(a.name, []).append(a)
    shared = _Shared(known.community_id)
    ready: list[ReadyRow] = []
    for row in rows:
        person = _person(row, headers, known)
        activity = _activity(row, headers, by_id, by_name)
        if row.problems or person is None or activity is None:
            continue
        result = _ready(row, headers, known, shared, person, activity)
        if result is not None and not row.problems:
            ready.append(result)
    return ready


def _person(row: SheetRow, headers: Mapping[str, str], known: Known) -> uuid.UUID | None:
    found = None
    if row.id_number is not None:
        found = known.by_id_number.get(row.id_number)
        if found is None:
            _problem(row, headers, "id_number", "PERSON_NOT_FOUND")
            return None
    if row.person_id is not None:
        erased = known.person_erased.get(row.person_id)
        if erased is None:
            _problem(row, headers, "person_id", "PERSON_NOT_FOUND")
            return None
        if found is not None and found != row.person_id:
            _problem(row, headers, "person_id", "PERSON_MISMATCH")
            return None
        found = row.person_id
    if found is not None and known.person_erased.get(found):
        _problem(row, headers, "person_id" if row.person_id else "id_number", "PERSON_ERASED")
        return None
    return found


def _activity(
    row: SheetRow,
    headers: Mapping[str, str],
    by_id: Mapping[uuid.UUID, ActivityRow],
    by_name: Mapping[str, list[ActivityRow]],
) -> ActivityRow | None:
    if row.activity_id is not None:
        activity = by_id.get(row.activity_id)
        if activity is None:
            _problem(row, headers, "activity_id", "ACTIVITY_NOT_FOUND")
        elif row.activity is not None and row.activity != activity.name:
            _problem(row, headers, "activity", "ACTIVITY_MISMATCH")
            return None
        return activity
    if row.activity is None:
        return None
    named = by_name.get(row.activity, [])
    if len(named) != 1:
        _problem(row, headers, "activity", "ACTIVITY_NOT_FOUND" if not named else "ACTIVITY_AMBIGUOUS")
        return None
    return named[0]


def _ready(
    row: SheetRow,
    headers: Mapping[str, str],
    known: Known,
    shared: _Shared,
    person: uuid.UUID,
    activity: ActivityRow,
) -> ReadyRow | None:
    day, start, end = row.service_date, row.start_time, row.end_time
    assert day is not None and start is not None and end is not None  # required, parsed
    if row.organising_unit is not None and row.organising_unit != activity.organising_unit:
        _problem(row, headers, "organising_unit", "ORGANISING_UNIT_MISMATCH")
    if day > known.today:
        _problem(row, headers, "service_date", "FUTURE_DATE")
    elif not activity.start_date <= day <= activity.end_date:
        _problem(row, headers, "service_date", "DATE_OUTSIDE_ACTIVITY")
    if activity.leader_user_id is None or activity.leader_user_id == known.actor_id:
        _problem(row, headers, "activity_id" if row.activity_id else "activity", "NO_VERIFIER")
    for name, text in (("place", row.place), ("content", row.content)):
        if text is not None and not shared.text_ok(name, text):
            _problem(row, headers, name, "BAD_TEXT")
    rules = known.rules_on(day)
    deadline = shared.deadline(activity.end_date, rules)
    if deadline is None:
        _problem(row, headers, "service_date", "CALENDAR_NOT_COVERED")
        return None
    if known.today > deadline:
        _problem(row, headers, "service_date", "RECORDING_OVERDUE")
    return ReadyRow(
        sheet=row,
        record_id=shared.record_id(person, activity.activity_id, day, start, end),
        person_id=person,
        activity=activity,
        service_date=day,
        start_time=start,
        end_time=end,
        place=activity.place if row.place is None else row.place,
        content=activity.content if row.content is None else row.content,
        deadline=deadline,
        rules=rules,
    )


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _overlap(span: tuple[int, int], e: ExistingRecord) -> bool:
    return span[0] < _minutes(e.end_time) and _minutes(e.start_time) < span[1]


def _span(r: ReadyRow) -> tuple[int, int]:
    return _minutes(r.start_time), _minutes(r.end_time)


def clashes_in_sheet(ready: list[ReadyRow], headers: Mapping[str, str]) -> None:
    """Rows of one volunteer on one date whose times overlap (DUPLICATE_ROW when identical): the
    later row gets the problem, naming the earlier one."""
    ordered = sorted(ready, key=lambda r: (r.person_id, r.service_date, _span(r), r.sheet.row))
    reach: ReadyRow | None = None  # the row reaching latest so far, for this volunteer and date
    for r in ordered:
        if reach is None or (reach.person_id, reach.service_date) != (r.person_id, r.service_date):
            reach = r
            continue
        if r.record_id == reach.record_id:
            code = "DUPLICATE_ROW"
        elif _span(r)[0] < _span(reach)[1]:
            code = "OVERLAP"
        else:
            reach = r
            continue
        first, later = sorted((reach, r), key=lambda x: x.sheet.row)
        later.sheet.problems.append(
            RowProblem(later.sheet.row, headers.get("start_time"), code, other_row=first.sheet.row)
        )
        if _span(r)[1] > _span(reach)[1]:
            reach = r


def against_records(
    ready: list[ReadyRow], existing: list[ExistingRecord], headers: Mapping[str, str]
) -> tuple[list[ReadyRow], list[ReadyRow]]:
    """Split the rows into new ones and ones imported before (their record exists); a row that
    overlaps another record of the volunteer gets OVERLAPS_RECORD."""
    by_day: dict[tuple[uuid.UUID, date], list[ExistingRecord]] = {}
    for e in existing:
        by_day.setdefault((e.person_id, e.service_date), []).append(e)
    new: list[ReadyRow] = []
    done: list[ReadyRow] = []
    for r in ready:
        start, end = _span(r)
        others = by_day.get((r.person_id, r.service_date), [])
        if any(e.record_id == r.record_id for e in others):
            done.append(r)
            continue
        clash = next((e for e in others if _overlap((start, end), e)), None)
        if clash is None:
            new.append(r)
            continue
        column = headers.get("start_time")
        r.sheet.problems.append(RowProblem(r.sheet.row, column, "OVERLAPS_RECORD", record_id=clash.record_id))
    return new, done


@dataclass(slots=True)
class Running:
    """What the sheet's earlier rows credit, on top of the ledger (caps count them)."""

    activity_minutes: dict[tuple[uuid.UUID, uuid.UUID], int]
    day_minutes: dict[tuple[uuid.UUID, date], int]
    day_coin_minutes: dict[tuple[uuid.UUID, date], int]
    coin_balance: dict[uuid.UUID, int]


def plan_rows(
    ready: list[ReadyRow], totals: PostedTotals, coin_balance: Mapping[uuid.UUID, int]
) -> list[CreditPlan]:
    """Each row's credit in sheet order, by the same rules and caps as one record posted alone:
    each row counts what the volunteer's posted records and the sheet's earlier rows credited."""
    run = Running(dict(totals.activity_minutes), dict(totals.day_minutes), dict(totals.day_coin_minutes), {})
    plans: list[CreditPlan] = []
    for r in ready:
        a, d = (r.person_id, r.activity.activity_id), (r.person_id, r.service_date)
        coins = run.coin_balance.get(r.person_id, coin_balance.get(r.person_id, 0))
        ctx = CreditContext(
            activity_minutes=run.activity_minutes.get(a, 0),
            day_minutes=run.day_minutes.get(d, 0),
            day_coin_minutes=run.day_coin_minutes.get(d, 0),
            stored_coin_minutes=coins,
        )
        plan = plan_credit(r.served_minutes, r.rules, ctx, r.service_date)
        run.activity_minutes[a] = ctx.activity_minutes + plan.credited_minutes
        run.day_minutes[d] = ctx.day_minutes + plan.credited_minutes
        run.day_coin_minutes[d] = ctx.day_coin_minutes + plan.earned_coin_minutes
        run.coin_balance[r.person_id] = coins + plan.credited_coin_minutes
        plans.append(plan)
    return plans
