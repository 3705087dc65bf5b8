"""Request and response bodies of the service-record routes: activities, records, corrections, imports.

Clock times are ``HH:MM`` strings (China local time, whole minutes), dates ISO dates. Bodies hold
ids, dates, times, numbers and the texts of art 7 (place, content) and reasons; no personal data.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Literal

import msgspec

from ledger.services.record_import import ImportReport
from ledger.store.service_corrections_repo import CorrectionRow
from ledger.store.service_records_repo import ActivityRow, EventRow, RecordRow

ClockTime = Annotated[
    str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM（北京时间，整分钟）")
]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
RecordStateName = Literal["draft", "submitted", "verified", "posted", "rejected"]
CorrectionStateName = Literal["filed", "accepted", "rejected"]


def clock_time(value: str) -> time:
    """A validated ``HH:MM`` as a time."""
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def hhmm(value: time) -> str:
    return f"{value:%H:%M}"


class ActivityIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    start_date: date
    end_date: date
    place: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    content: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    organising_unit: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    leader_user_id: uuid.UUID | None = None
    leader_person_id: uuid.UUID | None = None


class ActivityOut(msgspec.Struct, kw_only=True):
    activity_id: uuid.UUID
    name: str
    start_date: date
    end_date: date
    place: str
    content: str
    organising_unit: str
    leader_user_id: uuid.UUID | None
    leader_person_id: uuid.UUID | None
    created_by: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, row: ActivityRow) -> ActivityOut:
        return cls(
            activity_id=row.activity_id,
            name=row.name,
            start_date=row.start_date,
            end_date=row.end_date,
            place=row.place,
            content=row.content,
            organising_unit=row.organising_unit,
            leader_user_id=row.leader_user_id,
            leader_person_id=row.leader_person_id,
            created_by=row.created_by,
            created_at=row.created_at,
        )


class RecordIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    activity_id: uuid.UUID
    person_id: uuid.UUID
    service_date: date
    start_time: ClockTime
    end_time: ClockTime
    place: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    content: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] | None = None


class ReasonIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class RecordOut(msgspec.Struct, kw_only=True):
    """A service record with every art 7 field (its activity's name, organising unit and leader)."""

    record_id: uuid.UUID
    activity_id: uuid.UUID
    activity_name: str
    organising_unit: str
    leader_user_id: uuid.UUID | None
    leader_person_id: uuid.UUID | None
    person_id: uuid.UUID
    service_date: date
    start_time: str
    end_time: str
    place: str
    content: str
    served_minutes: int
    deadline: date
    state: RecordStateName
    created_by: uuid.UUID
    created_at: datetime
    submitted_by: uuid.UUID | None
    submitted_at: datetime | None
    verified_by: uuid.UUID | None
    verified_at: datetime | None
    posted_by: uuid.UUID | None
    posted_at: datetime | None
    rejected_by: uuid.UUID | None
    rejected_at: datetime | None
    rejection_reason: str | None
    override_by: uuid.UUID | None
    override_at: datetime | None
    override_reason: str | None
    overdue: bool
    settings_version: int | None
    transfer_id: uuid.UUID | None
    credited_minutes: int
    credited_points: int
    earned_coin_minutes: int
    credited_coin_minutes: int
    pool_coin_minutes: int

    @classmethod
    def of(cls, r: RecordRow) -> RecordOut:
        return cls(
            record_id=r.record_id,
            activity_id=r.activity_id,
            activity_name=r.activity_name,
            organising_unit=r.organising_unit,
            leader_user_id=r.leader_user_id,
            leader_person_id=r.leader_person_id,
            person_id=r.person_id,
            service_date=r.service_date,
            start_time=hhmm(r.start_time),
            end_time=hhmm(r.end_time),
            place=r.place,
            content=r.content,
            served_minutes=r.served_minutes,
            deadline=r.deadline,
            state=r.state.value,
            created_by=r.created_by,
            created_at=r.created_at,
            submitted_by=r.submitted_by,
            submitted_at=r.submitted_at,
            verified_by=r.verified_by,
            verified_at=r.verified_at,
            posted_by=r.posted_by,
            posted_at=r.posted_at,
            rejected_by=r.rejected_by,
            rejected_at=r.rejected_at,
            rejection_reason=r.rejection_reason,
            override_by=r.override_by,
            override_at=r.override_at,
            override_reason=r.override_reason,
            overdue=r.overdue,
            settings_version=r.settings_version,
            transfer_id=r.transfer_id,
            credited_minutes=r.credited_minutes,
            credited_points=r.credited_points,
            earned_coin_minutes=r.earned_coin_minutes,
            credited_coin_minutes=r.credited_coin_minutes,
            pool_coin_minutes=r.pool_coin_minutes,
        )


class EventOut(msgspec.Struct, kw_only=True):
    event_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None
    at: datetime
    detail: dict[str, str | int | bool | None]  # ids and numbers only

    @classmethod
    def of(cls, e: EventRow) -> EventOut:
        return cls(event_id=e.event_id, kind=e.kind, actor_id=e.actor_id, at=e.at, detail=dict(e.detail))


class CorrectionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    start_time: ClockTime
    end_time: ClockTime
    reason: Reason


class CorrectionOut(msgspec.Struct, kw_only=True):
    correction_id: uuid.UUID
    record_id: uuid.UUID
    start_time: str
    end_time: str
    served_minutes: int
    reason: str
    filed_by: uuid.UUID
    filed_at: datetime
    state: CorrectionStateName
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    rejection_reason: str | None
    reversal_transfer_id: uuid.UUID | None
    new_transfer_id: uuid.UUID | None
    previous_credited_minutes: int | None
    credited_minutes: int | None

    @classmethod
    def of(cls, c: CorrectionRow) -> CorrectionOut:
        return cls(
            correction_id=c.correction_id,
            record_id=c.record_id,
            start_time=hhmm(c.start_time),
            end_time=hhmm(c.end_time),
            served_minutes=c.served_minutes,
            reason=c.reason,
            filed_by=c.filed_by,
            filed_at=c.filed_at,
            state=c.state.value,
            decided_by=c.decided_by,
            decided_at=c.decided_at,
            rejection_reason=c.rejection_reason,
            reversal_transfer_id=c.reversal_transfer_id,
            new_transfer_id=c.new_transfer_id,
            previous_credited_minutes=c.previous_credited_minutes,
            credited_minutes=c.credited_minutes,
        )


class SheetProblemOut(msgspec.Struct, kw_only=True):
    row: int
    column: str | None
    code: str
    message: str
    other_row: int | None
    record_id: uuid.UUID | None


class ImportReportOut(msgspec.Struct, kw_only=True):
    """What an import found and did: every problem by row and column, never a cell's value."""

    dry_run: bool
    committed: bool
    sheet_sha256: str
    rows: int
    ready_rows: int
    already_imported_rows: int
    problem_rows: int
    problems: list[SheetProblemOut]
    ignored_columns: list[str]
    transfers: int
    postings: int
    credited_minutes: int
    credited_points: int
    credited_coin_minutes: int
    pool_coin_minutes: int

    @classmethod
    def of(cls, r: ImportReport) -> ImportReportOut:
        return cls(
            dry_run=r.dry_run,
            committed=r.committed,
            sheet_sha256=r.sheet_sha256,
            rows=r.rows,
            ready_rows=r.ready_rows,
            already_imported_rows=r.already_imported_rows,
            problem_rows=r.problem_rows,
            problems=[
                SheetProblemOut(
                    row=p.row,
                    column=p.column,
                    code=p.code,
                    message=p.message_zh,
                    other_row=p.other_row,
                    record_id=p.record_id,
                )
                for p in r.problems
            ],
            ignored_columns=r.ignored_columns,
            transfers=r.transfers,
            postings=r.postings,
            credited_minutes=r.credited_minutes,
            credited_points=r.credited_points,
            credited_coin_minutes=r.credited_coin_minutes,
            pool_coin_minutes=r.pool_coin_minutes,
        )
