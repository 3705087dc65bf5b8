"""SQL for bulk imports of service records: set-based reads for a whole sheet, and COPY writes.

Every read takes arrays (one statement per sheet, not per row); the writes stream the records and
their events with COPY in the caller's transaction (ledger/services/record_import.py commits it
together with the ledger batch).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time

from psycopg.types.json import Jsonb

from ledger.domain.service_records import RecordState
from ledger.domain.units import Unit
from ledger.store.db import Conn
from ledger.store.service_records_repo import ActivityRow

_ACTIVITIES = """
SELECT activity_id, name, start_date, end_date, place, content, organising_unit, leader_user_id,
       leader_person_id, created_by, created_at
FROM activity WHERE community_id = %s AND (activity_id = ANY(%s) OR name = ANY(%s)) ORDER BY activity_id
"""
Event = tuple[int, uuid.UUID, uuid.UUID, str, uuid.UUID | None, datetime, dict[str, object]]


def activities(conn: Conn, community_id: int, ids: list[uuid.UUID], names: list[str]) -> list[ActivityRow]:
    """The activities named by id or by exact name (several may share a name)."""
    rows = conn.execute(_ACTIVITIES, (community_id, ids, names)).fetchall()
    return [ActivityRow(*r) for r in rows]


def person_states(conn: Conn, community_id: int, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """Each person found, with whether their data was erased."""
    rows = conn.execute(
        "SELECT person_id, erased_at IS NOT NULL FROM person WHERE community_id = %s AND person_id = ANY(%s)",
        (community_id, person_ids),
    ).fetchall()
    return {r[0]: bool(r[1]) for r in rows}


@dataclass(frozen=True, slots=True)
class ExistingRecord:
    record_id: uuid.UUID
    person_id: uuid.UUID
    activity_id: uuid.UUID
    service_date: date
    start_time: time
    end_time: time
    state: RecordState


def records_on(
    conn: Conn, community_id: int, person_ids: list[uuid.UUID], first: date, last: date
) -> list[ExistingRecord]:
    """The records (not rejected) of these volunteers between two dates: overlaps and repeats."""
    rows = conn.execute(
        "SELECT record_id, person_id, activity_id, service_date, start_time, end_time, state"
        " FROM service_record WHERE community_id = %s AND person_id = ANY(%s)"
        " AND service_date BETWEEN %s AND %s AND state <> 'rejected'",
        (community_id, person_ids, first, last),
    ).fetchall()
    return [ExistingRecord(r[0], r[1], r[2], r[3], r[4], r[5], RecordState(r[6])) for r in rows]


@dataclass(frozen=True, slots=True)
class PostedTotals:
    """What the volunteers' posted records credited, by (person, activity) and (person, date)."""

    activity_minutes: dict[tuple[uuid.UUID, uuid.UUID], int]
    day_minutes: dict[tuple[uuid.UUID, date], int]
    day_coin_minutes: dict[tuple[uuid.UUID, date], int]


def posted_totals(
    conn: Conn,
    community_id: int,
    person_ids: list[uuid.UUID],
    activity_ids: list[uuid.UUID],
    days: list[date],
) -> PostedTotals:
    rows = conn.execute(
        "SELECT person_id, activity_id, service_date, sum(credited_minutes), sum(earned_coin_minutes)"
        " FROM service_record WHERE community_id = %s AND person_id = ANY(%s) AND state = 'posted'"
        " AND (activity_id = ANY(%s) OR service_date = ANY(%s))"
        " GROUP BY person_id, activity_id, service_date",
        (community_id, person_ids, activity_ids, days),
    ).fetchall()
    totals = PostedTotals({}, {}, {})
    for person, activity, day, minutes, coins in rows:
        a, d = (person, activity), (person, day)
        totals.activity_minutes[a] = totals.activity_minutes.get(a, 0) + int(minutes)
        totals.day_minutes[d] = totals.day_minutes.get(d, 0) + int(minutes)
        totals.day_coin_minutes[d] = totals.day_coin_minutes.get(d, 0) + int(coins)
    return totals


def member_accounts(
    conn: Conn, community_id: int, person_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[Unit, uuid.UUID]]:
    rows = conn.execute(
        "SELECT owner_id, unit, account_id FROM account WHERE community_id = %s AND owner_kind = 'person'"
        " AND owner_id = ANY(%s)",
        (community_id, person_ids),
    ).fetchall()
    out: dict[uuid.UUID, dict[Unit, uuid.UUID]] = {}
    for owner, unit, account in rows:
        out.setdefault(owner, {})[Unit(unit)] = account
    return out


def balances(conn: Conn, community_id: int, account_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = conn.execute(
        "SELECT account_id, sum(posted) FROM balance WHERE community_id = %s AND account_id = ANY(%s)"
        " GROUP BY account_id",
        (community_id, account_ids),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def used_keys(conn: Conn, community_id: int, keys: list[str]) -> list[str]:
    """Which of these ledger idempotency keys were already claimed."""
    rows = conn.execute(
        "SELECT key FROM idempotency WHERE community_id = %s AND key = ANY(%s)", (community_id, keys)
    ).fetchall()
    return [str(r[0]) for r in rows]


# ------------------------------------------------------------------------------------- writes

RECORD_COLUMNS = (
    "community_id, record_id, activity_id, person_id, service_date, start_time, end_time, place, content,"
    " served_minutes, deadline, state, created_by, created_at, submitted_by, submitted_at, verified_by,"
    " verified_at, posted_by, posted_at, overdue, settings_version, transfer_id, credited_minutes,"
    " credited_points, earned_coin_minutes, credited_coin_minutes, pool_coin_minutes"
)
EVENT_COLUMNS = "community_id, event_id, record_id, kind, actor_id, at, detail"


def copy_records(conn: Conn, rows: Iterable[tuple[object, ...]]) -> None:
    """Posted records, one tuple per record in RECORD_COLUMNS order."""
    with conn.cursor().copy(f"COPY service_record ({RECORD_COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def copy_events(conn: Conn, rows: Iterable[Event]) -> None:
    """Events, one tuple per event in EVENT_COLUMNS order (the detail as a dict)."""
    with conn.cursor().copy(f"COPY service_record_event ({EVENT_COLUMNS}) FROM STDIN") as copy:
        for c, event_id, record_id, kind, actor, at, detail in rows:
            copy.write_row((c, event_id, record_id, kind, actor, at, Jsonb(detail)))
