"""SQL for bulk imports of service records: set-based reads for a whole sheet, and COPY writes.

Every read takes arrays (one statement per sheet, not per row). The records stream with COPY in the
caller's transaction; their events are then derived from them by one statement, which the caller
queues in the ledger batch's pipeline (ledger/services/record_import.py commits it all together).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Final, NamedTuple

from ledger.domain.service_records import RecordState
from ledger.domain.units import Unit
from ledger.store.db import Conn
from ledger.store.ledger_repo import Cur
from ledger.store.service_records_repo import ActivityRow, Credited

_ACTIVITIES = """
SELECT activity_id, name, start_date, end_date, place, content, organising_unit, leader_user_id,
       leader_person_id, created_by, created_at
FROM activity WHERE community_id = %s AND (activity_id = ANY(%s) OR name = ANY(%s)) ORDER BY activity_id
"""


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


def coin_balances(conn: Conn, community_id: int, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The volunteers' time-coin balances (those with a coin account), by volunteer."""
    rows = conn.execute(
        "SELECT a.owner_id, sum(b.posted) FROM account a JOIN balance b USING (community_id, account_id)"
        " WHERE a.community_id = %s AND a.owner_kind = 'person' AND a.owner_id = ANY(%s)"
        " AND a.unit = 'coin_minutes' GROUP BY a.owner_id",
        (community_id, person_ids),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def used_keys(conn: Conn, community_id: int, keys: list[str]) -> list[str]:
    """Which of these ledger idempotency keys were already claimed. The keys go as one comma-joined
    text (they never hold a comma: ledger.domain.transfers._KEY_RE), which the server splits;
    psycopg would adapt a list element by element."""
    assert not any("," in k for k in keys)
    rows = conn.execute(
        "SELECT key FROM idempotency WHERE community_id = %s AND key = ANY(string_to_array(%s, ','))",
        (community_id, ",".join(keys)),
    ).fetchall()
    return [str(r[0]) for r in rows]


# ------------------------------------------------------------------------------------- writes

RECORD_COLUMNS = (
    "community_id, record_id, activity_id, person_id, service_date, start_time, end_time, place, content,"
    " served_minutes, deadline, state, created_by, created_at, submitted_by, submitted_at, verified_by,"
    " verified_at, posted_by, posted_at, overdue, settings_version, transfer_id, credited_minutes,"
    " credited_points, earned_coin_minutes, credited_coin_minutes, pool_coin_minutes"
)
_NULL: Final = "\\N"
_SPECIAL: Final = re.compile(r"[\\\t\n\r]")


def copy_escape(text: str) -> str:
    """``text`` as a value of COPY's text format: backslash, tab, newline and carriage return escaped."""
    if _SPECIAL.search(text) is None:
        return text
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class _Memo(dict[Any, str]):
    """``memo[value]`` is ``render(value)``, computed once per distinct value."""

    def __init__(self, render: Callable[[Any], str]) -> None:
        super().__init__()
        self._render = render

    def __missing__(self, value: object) -> str:
        text = self[value] = self._render(value)
        return text


class PostedRecord(NamedTuple):
    """A record an import writes, posted (its other columns are the import's: ``ImportText``)."""

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
    verified_by: uuid.UUID
    credited: Credited


class ImportText:
    """The COPY text lines of one import's records, in RECORD_COLUMNS order. The importer created,
    submitted and posted every record at ``at`` (not overdue); each row's verifier verified it
    then. Repeated values (volunteers, activities, dates, times, texts) are rendered once;
    timestamps as psycopg would send them (``str``)."""

    def __init__(self, community_id: int, actor_id: uuid.UUID, at: datetime) -> None:
        self._ids = _Memo(str)
        self._days = _Memo(date.isoformat)
        self._times = _Memo(time.isoformat)
        self._texts = _Memo(copy_escape)
        self._community = f"{community_id}\t"
        actor, when = str(actor_id), str(at)
        self._actor, self._at = actor, when
        self._created = f"{actor}\t{when}\t{actor}\t{when}"  # created_by/at, submitted_by/at

    def record(self, r: PostedRecord) -> str:
        ids, days, times, texts, c = self._ids, self._days, self._times, self._texts, r.credited
        transfer = _NULL if c.transfer_id is None else str(c.transfer_id)
        return (
            f"{self._community}{r.record_id}\t{ids[r.activity_id]}\t{ids[r.person_id]}"
            f"\t{days[r.service_date]}\t{times[r.start_time]}\t{times[r.end_time]}\t{texts[r.place]}"
            f"\t{texts[r.content]}\t{r.served_minutes}\t{days[r.deadline]}\tposted\t{self._created}"
            f"\t{ids[r.verified_by]}\t{self._at}\t{self._actor}\t{self._at}\tf\t{c.settings_version}"
            f"\t{transfer}\t{c.credited_minutes}\t{c.credited_points}\t{c.earned_coin_minutes}"
            f"\t{c.credited_coin_minutes}\t{c.pool_coin_minutes}\n"
        )


def copy_records(conn: Conn, chunks: Iterable[str]) -> None:
    """Posted records, as ImportText lines: each chunk is sent as soon as it is produced, so the
    server inserts while the caller renders the next one."""
    with conn.cursor().copy(f"COPY service_record ({RECORD_COLUMNS}) FROM STDIN") as copy:
        for chunk in chunks:
            copy.write(chunk)


# Each record's four steps, from its own columns: who took each step, when, and the detail the
# service writes for it (service_posting.credited_detail with the overdue flag), with the source
# and the sheet's row. Event ids are the caller's series (ids.uuid7_series_prefix): four
# per record, in sheet order, so that history's order (at, event_id) is the steps' order.
_INSERT_EVENTS = """
INSERT INTO service_record_event (community_id, event_id, record_id, kind, actor_id, at, detail)
SELECT r.community_id,
       (%(prefix)s || lpad(to_hex(4 * (s.n - 1) + k.step), 12, '0'))::uuid,
       r.record_id,
       k.kind,
       CASE k.step WHEN 0 THEN r.created_by WHEN 1 THEN r.submitted_by
                   WHEN 2 THEN r.verified_by ELSE r.posted_by END,
       CASE k.step WHEN 0 THEN r.created_at WHEN 1 THEN r.submitted_at
                   WHEN 2 THEN r.verified_at ELSE r.posted_at END,
       CASE k.step WHEN 3 THEN jsonb_build_object(
               'transfer_id', r.transfer_id,
               'settings_version', r.settings_version,
               'credited_minutes', r.credited_minutes,
               'credited_points', r.credited_points,
               'credited_coin_minutes', r.credited_coin_minutes,
               'pool_coin_minutes', r.pool_coin_minutes,
               'overdue', r.overdue,
               'source', 'import',
               'row', s.sheet_row)
           ELSE jsonb_build_object('source', 'import', 'row', s.sheet_row) END
FROM unnest(string_to_array(%(records)s, ',')::uuid[], string_to_array(%(rows)s, ',')::int[])
         WITH ORDINALITY AS s(record_id, sheet_row, n)
JOIN service_record r ON r.community_id = %(community_id)s AND r.record_id = s.record_id
CROSS JOIN (VALUES (0, 'created'), (1, 'submitted'), (2, 'verified'), (3, 'posted')) AS k(step, kind)
"""
EVENTS_PER_RECORD = 4  # created, submitted, verified, posted


def insert_events(
    conn: Conn, community_id: int, prefix: str, records: list[uuid.UUID], sheet_rows: list[int]
) -> Cur:
    """The events of these posted records (written before, in this transaction), ``sheet_rows``
    giving each one's row: one statement, whose cursor's rowcount is EVENTS_PER_RECORD per record
    found. Ids and rows go as comma-joined texts, which the server splits (psycopg would adapt a
    list element by element). In a pipeline, it runs while the caller goes on."""
    assert len(records) == len(sheet_rows) and len(prefix) == 20
    params = {
        "prefix": prefix,
        "records": ",".join([str(r) for r in records]),
        "rows": ",".join([str(n) for n in sheet_rows]),
        "community_id": community_id,
    }
    return conn.execute(_INSERT_EVENTS, params)
