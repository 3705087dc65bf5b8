"""SQL for activities, service records and their events (tables of migration 0009).

Every function takes an open connection and leaves committing to the caller (one transaction per
use case). Column lists are spelled out, in the order of the row dataclasses.

Lock order: a correction row, then its record row, then the community's import lock (shared; a
bulk import takes it exclusive), then the volunteer's advisory lock (every posting of one
volunteer's records is serialised by it, because caps depend on what was credited before), then
whatever the ledger locks on its own connection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Final

from psycopg.types.json import Jsonb

from ledger.domain.ids import uuid7
from ledger.domain.service_records import ActivityFields, RecordState
from ledger.store.db import Conn

# The two-key advisory lock space (pg_advisory_xact_lock(int, int)) is disjoint from the one-key
# space the ledger uses for reversals; this class id names "a volunteer's service postings".
VOLUNTEER_LOCK_CLASS: Final = 0x5352  # "SR"
# Keyed by community id: every posting holds it shared, a bulk import exclusive (record_import),
# so that an import needs one lock instead of one per volunteer in its sheet.
IMPORT_LOCK_CLASS: Final = 0x5349  # "SI"


@dataclass(frozen=True, slots=True)
class ActivityRow:
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


@dataclass(frozen=True, slots=True)
class RecordRow:
    """A service record with the art 7 fields its activity contributes (name, unit, leader)."""

    record_id: uuid.UUID
    activity_id: uuid.UUID
    person_id: uuid.UUID
    service_date: date
    start_time: time
    end_time: time
    place: str
    content: str
    served_minutes: int
    deadline: date
    state: RecordState
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
    activity_name: str
    organising_unit: str
    leader_user_id: uuid.UUID | None
    leader_person_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: uuid.UUID
    kind: str
    actor_id: uuid.UUID | None
    at: datetime
    detail: dict[str, Any]  # ids and numbers only


INSERT_ACTIVITY = """
INSERT INTO activity (community_id, activity_id, name, start_date, end_date, place, content, organising_unit,
                      leader_user_id, leader_person_id, created_by, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
GET_ACTIVITY = """
SELECT activity_id, name, start_date, end_date, place, content, organising_unit, leader_user_id,
       leader_person_id, created_by, created_at
FROM activity WHERE community_id = %s AND activity_id = %s
"""
LIST_ACTIVITIES = """
SELECT activity_id, name, start_date, end_date, place, content, organising_unit, leader_user_id,
       leader_person_id, created_by, created_at
FROM activity WHERE community_id = %(c)s AND (%(after)s::uuid IS NULL OR activity_id > %(after)s::uuid)
ORDER BY activity_id LIMIT %(limit)s
"""
# A record with what its activity contributes; the lock (FOR UPDATE OF r) is on the record only.
_SELECT_RECORD = """
SELECT r.record_id, r.activity_id, r.person_id, r.service_date, r.start_time, r.end_time, r.place, r.content,
       r.served_minutes, r.deadline, r.state, r.created_by, r.created_at, r.submitted_by, r.submitted_at,
       r.verified_by, r.verified_at, r.posted_by, r.posted_at, r.rejected_by, r.rejected_at,
       r.rejection_reason, r.override_by, r.override_at, r.override_reason, r.overdue, r.settings_version,
       r.transfer_id, r.credited_minutes, r.credited_points, r.earned_coin_minutes, r.credited_coin_minutes,
       r.pool_coin_minutes, a.name, a.organising_unit, a.leader_user_id, a.leader_person_id
FROM service_record r JOIN activity a USING (community_id, activity_id)
"""
GET_RECORD = _SELECT_RECORD + "WHERE r.community_id = %s AND r.record_id = %s"
LOCK_RECORD = GET_RECORD + " FOR UPDATE OF r"
LIST_RECORDS = (
    _SELECT_RECORD
    + """WHERE r.community_id = %(c)s
  AND (%(p)s::uuid IS NULL OR r.person_id = %(p)s::uuid)
  AND (%(a)s::uuid IS NULL OR r.activity_id = %(a)s::uuid)
  AND (%(s)s::text IS NULL OR r.state = %(s)s::text)
  AND (%(after)s::uuid IS NULL OR r.record_id > %(after)s::uuid)
ORDER BY r.record_id LIMIT %(limit)s"""
)


def _record(row: tuple[Any, ...]) -> RecordRow:
    values = list(row)
    values[10] = RecordState(values[10])
    return RecordRow(*values)


# ------------------------------------------------------------------------------------ references


def community_exists(conn: Conn, community_id: int) -> bool:
    row = conn.execute("SELECT 1 FROM community WHERE community_id = %s", (community_id,)).fetchone()
    return row is not None


def person_state(conn: Conn, community_id: int, person_id: uuid.UUID) -> bool | None:
    """None: no such person; else whether the person was erased. FOR SHARE: not erased meanwhile."""
    row = conn.execute(
        "SELECT erased_at IS NOT NULL FROM person WHERE community_id = %s AND person_id = %s FOR SHARE",
        (community_id, person_id),
    ).fetchone()
    return None if row is None else bool(row[0])


def user_exists(conn: Conn, user_id: uuid.UUID) -> bool:
    return conn.execute("SELECT 1 FROM app_user WHERE user_id = %s", (user_id,)).fetchone() is not None


# ------------------------------------------------------------------------------------ activities


def insert_activity(
    conn: Conn,
    community_id: int,
    fields: ActivityFields,
    *,
    leader_user_id: uuid.UUID | None,
    leader_person_id: uuid.UUID | None,
    created_by: uuid.UUID | None,
    created_at: datetime,
) -> uuid.UUID:
    activity_id = uuid7()
    conn.execute(
        INSERT_ACTIVITY,
        (
            community_id,
            activity_id,
            fields.name,
            fields.start_date,
            fields.end_date,
            fields.place,
            fields.content,
            fields.organising_unit,
            leader_user_id,
            leader_person_id,
            created_by,
            created_at,
        ),
    )
    return activity_id


def get_activity(conn: Conn, community_id: int, activity_id: uuid.UUID) -> ActivityRow | None:
    row = conn.execute(GET_ACTIVITY, (community_id, activity_id)).fetchone()
    return None if row is None else ActivityRow(*row)


def list_activities(
    conn: Conn, community_id: int, *, after: uuid.UUID | None, limit: int
) -> list[ActivityRow]:
    rows = conn.execute(LIST_ACTIVITIES, {"c": community_id, "after": after, "limit": limit}).fetchall()
    return [ActivityRow(*r) for r in rows]


# --------------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class NewRecord:
    record_id: uuid.UUID
    activity_id: uuid.UUID
    person_id: uuid.UUID
    service_date: date
    start_time: time
    end_time: time
    place: str
    content: str
    served_minutes: int
    deadline: date
    created_by: uuid.UUID
    created_at: datetime


def insert_record(conn: Conn, community_id: int, new: NewRecord) -> None:
    conn.execute(
        "INSERT INTO service_record (community_id, record_id, activity_id, person_id, service_date,"
        " start_time, end_time, place, content, served_minutes, deadline, created_by, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            community_id,
            new.record_id,
            new.activity_id,
            new.person_id,
            new.service_date,
            new.start_time,
            new.end_time,
            new.place,
            new.content,
            new.served_minutes,
            new.deadline,
            new.created_by,
            new.created_at,
        ),
    )


def get_record(
    conn: Conn, community_id: int, record_id: uuid.UUID, *, lock: bool = False
) -> RecordRow | None:
    row = conn.execute(LOCK_RECORD if lock else GET_RECORD, (community_id, record_id)).fetchone()
    return None if row is None else _record(row)


def list_records(
    conn: Conn,
    community_id: int,
    *,
    person_id: uuid.UUID | None,
    activity_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
    state: RecordState | None = None,
) -> list[RecordRow]:
    params = {
        "c": community_id,
        "p": person_id,
        "a": activity_id,
        "s": None if state is None else str(state),
        "after": after,
        "limit": limit,
    }
    rows = conn.execute(LIST_RECORDS, params).fetchall()
    return [_record(r) for r in rows]


def set_submitted(
    conn: Conn, community_id: int, record_id: uuid.UUID, actor: uuid.UUID, at: datetime
) -> None:
    conn.execute(
        "UPDATE service_record SET state = 'submitted', submitted_by = %s, submitted_at = %s"
        " WHERE community_id = %s AND record_id = %s",
        (actor, at, community_id, record_id),
    )


def set_verified(conn: Conn, community_id: int, record_id: uuid.UUID, actor: uuid.UUID, at: datetime) -> None:
    conn.execute(
        "UPDATE service_record SET state = 'verified', verified_by = %s, verified_at = %s"
        " WHERE community_id = %s AND record_id = %s",
        (actor, at, community_id, record_id),
    )


def set_rejected(
    conn: Conn, community_id: int, record_id: uuid.UUID, actor: uuid.UUID, at: datetime, reason: str
) -> None:
    conn.execute(
        "UPDATE service_record SET state = 'rejected', rejected_by = %s, rejected_at = %s,"
        " rejection_reason = %s WHERE community_id = %s AND record_id = %s",
        (actor, at, reason, community_id, record_id),
    )


def set_override(
    conn: Conn, community_id: int, record_id: uuid.UUID, actor: uuid.UUID, at: datetime, reason: str
) -> None:
    conn.execute(
        "UPDATE service_record SET override_by = %s, override_at = %s, override_reason = %s"
        " WHERE community_id = %s AND record_id = %s",
        (actor, at, reason, community_id, record_id),
    )


@dataclass(frozen=True, slots=True)
class Credited:
    """What a record's current transfer credited (the record row keeps the current values)."""

    settings_version: int
    transfer_id: uuid.UUID | None
    credited_minutes: int
    credited_points: int
    earned_coin_minutes: int
    credited_coin_minutes: int
    pool_coin_minutes: int


def set_posted(
    conn: Conn,
    community_id: int,
    record_id: uuid.UUID,
    *,
    actor: uuid.UUID,
    at: datetime,
    overdue: bool,
    credited: Credited,
) -> None:
    conn.execute(
        "UPDATE service_record SET state = 'posted', posted_by = %s, posted_at = %s, overdue = %s,"
        " settings_version = %s, transfer_id = %s, credited_minutes = %s, credited_points = %s,"
        " earned_coin_minutes = %s, credited_coin_minutes = %s, pool_coin_minutes = %s"
        " WHERE community_id = %s AND record_id = %s",
        (actor, at, overdue, *_credited(credited), community_id, record_id),
    )


def set_corrected(conn: Conn, community_id: int, record_id: uuid.UUID, credited: Credited) -> None:
    conn.execute(
        "UPDATE service_record SET settings_version = %s, transfer_id = %s, credited_minutes = %s,"
        " credited_points = %s, earned_coin_minutes = %s, credited_coin_minutes = %s, pool_coin_minutes = %s"
        " WHERE community_id = %s AND record_id = %s AND state = 'posted'",
        (*_credited(credited), community_id, record_id),
    )


def _credited(c: Credited) -> tuple[object, ...]:
    return (
        c.settings_version,
        c.transfer_id,
        c.credited_minutes,
        c.credited_points,
        c.earned_coin_minutes,
        c.credited_coin_minutes,
        c.pool_coin_minutes,
    )


# ---------------------------------------------------------------------------------------- events


def record_event(
    conn: Conn,
    community_id: int,
    record_id: uuid.UUID,
    kind: str,
    actor_id: uuid.UUID | None,
    at: datetime,
    detail: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO service_record_event (community_id, event_id, record_id, kind, actor_id, at, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (community_id, uuid7(), record_id, kind, actor_id, at, Jsonb(detail or {})),
    )


def events(conn: Conn, community_id: int, record_id: uuid.UUID) -> list[EventRow]:
    rows = conn.execute(
        "SELECT event_id, kind, actor_id, at, detail FROM service_record_event"
        " WHERE community_id = %s AND record_id = %s ORDER BY at, event_id",
        (community_id, record_id),
    ).fetchall()
    return [EventRow(r[0], str(r[1]), r[2], r[3], dict(r[4])) for r in rows]
