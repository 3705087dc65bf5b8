"""SQL for households: the household row, membership intervals and the append-only event trail.

Also the row views the service returns and ``MembershipChange``, the batch of closes, opens and
events that one change writes.

Lock order, everywhere: household rows sorted by household_id (one statement), then the membership
rows of those households. Membership rows are never deleted: a change closes rows (valid_to) and
inserts new ones, so every past date still answers as it did.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7_many
from ledger.store.db import Conn


class EventKind(StrEnum):
    """What a household_event row records (its ``kind`` column)."""

    CREATED = "created"
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    HEAD_CHANGED = "head_changed"
    SPLIT_OUT = "split_out"
    SPLIT_IN = "split_in"
    MERGED_FROM = "merged_from"
    MERGED_INTO = "merged_into"
    DISSOLVED = "dissolved"


@dataclass(frozen=True, slots=True)
class HouseholdRow:
    household_id: uuid.UUID
    code: str
    village_group: str
    grid: str
    created_by: uuid.UUID | None
    created_at: datetime
    dissolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberView:
    """One membership interval [valid_from, valid_to) of a person in a household."""

    member_id: uuid.UUID
    household_id: uuid.UUID
    person_id: uuid.UUID
    is_head: bool
    valid_from: datetime
    valid_to: datetime | None  # None: still a member


@dataclass(frozen=True, slots=True)
class HouseholdView:
    household_id: uuid.UUID
    code: str
    village_group: str
    grid: str
    created_by: uuid.UUID | None
    created_at: datetime
    dissolved_at: datetime | None
    members: tuple[MemberView, ...]  # as of the instant asked for, head first

    @property
    def head_person_id(self) -> uuid.UUID | None:
        return next((m.person_id for m in self.members if m.is_head), None)


@dataclass(frozen=True, slots=True)
class HouseholdEventView:
    event_id: uuid.UUID
    household_id: uuid.UUID
    kind: EventKind
    detail: dict[str, Any]  # ids only, as strings
    actor_id: uuid.UUID | None
    at: datetime


_TICK = timedelta(microseconds=1)  # timestamptz resolution
# Column lists are spelled out in every statement (no string building), in the dataclasses' order.

LOCK_HOUSEHOLDS = """
SELECT household_id, code, village_group, grid, created_by, created_at, dissolved_at FROM household
WHERE community_id = %s AND household_id = ANY(%s)
ORDER BY household_id FOR UPDATE
"""
GET_HOUSEHOLD = """
SELECT household_id, code, village_group, grid, created_by, created_at, dissolved_at FROM household
WHERE community_id = %s AND household_id = %s
"""
LIST_HOUSEHOLDS = (
    "SELECT household_id, code, village_group, grid, created_by, created_at, dissolved_at FROM household"
)
INSERT_HOUSEHOLD = """
INSERT INTO household (community_id, household_id, code, village_group, grid, created_by, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
DISSOLVE = "UPDATE household SET dissolved_at = %s WHERE community_id = %s AND household_id = %s"
COMMUNITY_EXISTS = "SELECT 1 FROM community WHERE community_id = %s"
PERSONS = (
    "SELECT person_id, erased_at IS NOT NULL FROM person WHERE community_id = %s AND person_id = ANY(%s)"
)
# Current rows of the given households, locked (the households are locked first by the caller).
CURRENT_OF_HOUSEHOLDS = """
SELECT member_id, household_id, person_id, is_head, valid_from, valid_to FROM household_member
WHERE community_id = %s AND household_id = ANY(%s) AND valid_to IS NULL
ORDER BY household_id, member_id FOR UPDATE
"""
CURRENT_OF_PERSONS = """
SELECT member_id, household_id, person_id, is_head, valid_from, valid_to FROM household_member
WHERE community_id = %s AND person_id = ANY(%s) AND valid_to IS NULL
"""
CLOSE_MEMBERS = """
UPDATE household_member SET valid_to = %s
WHERE community_id = %s AND member_id = ANY(%s) AND valid_to IS NULL
"""
OPEN_MEMBERS = """
INSERT INTO household_member (community_id, member_id, household_id, person_id, is_head, valid_from)
SELECT %s, u.member_id, %s, u.person_id, u.is_head, %s
FROM unnest(%s::uuid[], %s::uuid[], %s::bool[]) AS u(member_id, person_id, is_head)
"""
MEMBERS_AS_OF = """
SELECT member_id, household_id, person_id, is_head, valid_from, valid_to FROM household_member
WHERE community_id = %(c)s AND household_id = ANY(%(h)s)
  AND valid_from <= %(at)s AND (valid_to IS NULL OR valid_to > %(at)s)
ORDER BY household_id, is_head DESC, valid_from, member_id
"""
HOUSEHOLD_OF = """
SELECT household_id FROM household_member
WHERE community_id = %(c)s AND person_id = %(p)s
  AND valid_from <= %(at)s AND (valid_to IS NULL OR valid_to > %(at)s)
ORDER BY valid_from DESC LIMIT 1
"""
INSERT_EVENTS = """
INSERT INTO household_event (community_id, event_id, household_id, kind, detail, actor_id, at)
SELECT %s, u.event_id, u.household_id, u.kind, u.detail, %s, %s
FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::jsonb[]) AS u(event_id, household_id, kind, detail)
"""
EVENTS = """
SELECT event_id, household_id, kind, detail, actor_id, at FROM household_event
WHERE community_id = %s AND household_id = %s ORDER BY at, event_id
"""


def _household(row: tuple[Any, ...]) -> HouseholdRow:
    return HouseholdRow(*row)


def _member(row: tuple[Any, ...]) -> MemberView:
    return MemberView(*row)


def lock_households(conn: Conn, community_id: int, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, HouseholdRow]:
    rows = conn.execute(LOCK_HOUSEHOLDS, (community_id, sorted(set(ids)))).fetchall()
    return {r[0]: _household(r) for r in rows}


def get_household(conn: Conn, community_id: int, household_id: uuid.UUID) -> HouseholdRow | None:
    row = conn.execute(GET_HOUSEHOLD, (community_id, household_id)).fetchone()
    return None if row is None else _household(row)


def list_households(
    conn: Conn,
    community_id: int,
    *,
    after: uuid.UUID | None,
    limit: int,
    village_group: str | None,
    grid: str | None,
    include_dissolved: bool,
) -> list[HouseholdRow]:
    """One keyset page ordered by household_id; filters are exact matches."""
    # Only the filters asked for go into the statement, so each shape gets a plan that uses the key.
    where = [sql.SQL("community_id = %(c)s")]
    if after is not None:
        where.append(sql.SQL("household_id > %(after)s"))
    if village_group is not None:
        where.append(sql.SQL("village_group = %(group)s"))
    if grid is not None:
        where.append(sql.SQL("grid = %(grid)s"))
    if not include_dissolved:
        where.append(sql.SQL("dissolved_at IS NULL"))
    query = sql.SQL("{} WHERE {} ORDER BY household_id LIMIT %(limit)s").format(
        sql.SQL(LIST_HOUSEHOLDS), sql.SQL(" AND ").join(where)
    )
    args = {"c": community_id, "after": after, "group": village_group, "grid": grid, "limit": limit}
    return [_household(r) for r in conn.execute(query, args)]


def insert_household(
    conn: Conn,
    community_id: int,
    household_id: uuid.UUID,
    code: str,
    village_group: str,
    grid: str,
    created_by: uuid.UUID | None,
    at: datetime,
) -> None:
    conn.execute(INSERT_HOUSEHOLD, (community_id, household_id, code, village_group, grid, created_by, at))


def dissolve(conn: Conn, community_id: int, household_id: uuid.UUID, at: datetime) -> None:
    conn.execute(DISSOLVE, (at, community_id, household_id))


def community_exists(conn: Conn, community_id: int) -> bool:
    return conn.execute(COMMUNITY_EXISTS, (community_id,)).fetchone() is not None


def persons(conn: Conn, community_id: int, person_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """person_id -> erased, for those of ``person_ids`` that exist in the community."""
    if not person_ids:
        return {}
    return {r[0]: bool(r[1]) for r in conn.execute(PERSONS, (community_id, list(person_ids)))}


def current_of_households(
    conn: Conn, community_id: int, household_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MemberView]]:
    """Current membership rows of the households, locked, grouped by household."""
    out: dict[uuid.UUID, list[MemberView]] = {h: [] for h in household_ids}
    for row in conn.execute(CURRENT_OF_HOUSEHOLDS, (community_id, list(household_ids))):
        member = _member(row)
        out[member.household_id].append(member)
    return out


def current_of_persons(
    conn: Conn, community_id: int, person_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, MemberView]:
    """The current membership of each person that has one (at most one, by a partial unique index)."""
    if not person_ids:
        return {}
    rows = conn.execute(CURRENT_OF_PERSONS, (community_id, list(person_ids))).fetchall()
    return {r[2]: _member(r) for r in rows}


def close_members(conn: Conn, community_id: int, member_ids: Sequence[uuid.UUID], at: datetime) -> None:
    if member_ids:
        cur = conn.execute(CLOSE_MEMBERS, (at, community_id, list(member_ids)))
        assert cur.rowcount == len(member_ids), "closed a row that was not current (lock order broken?)"


def open_members(
    conn: Conn,
    community_id: int,
    household_id: uuid.UUID,
    members: Sequence[tuple[uuid.UUID, bool]],
    at: datetime,
) -> None:
    """Open one membership row per (person_id, is_head), valid from ``at``."""
    if members:
        ids = uuid7_many(len(members))
        conn.execute(
            OPEN_MEMBERS,
            (community_id, household_id, at, ids, [m[0] for m in members], [m[1] for m in members]),
        )


def members_as_of(
    conn: Conn, community_id: int, household_ids: Sequence[uuid.UUID], at: datetime
) -> dict[uuid.UUID, list[MemberView]]:
    out: dict[uuid.UUID, list[MemberView]] = {h: [] for h in household_ids}
    for row in conn.execute(MEMBERS_AS_OF, {"c": community_id, "h": list(household_ids), "at": at}):
        member = _member(row)
        out[member.household_id].append(member)
    return out


def household_of(conn: Conn, community_id: int, person_id: uuid.UUID, at: datetime) -> uuid.UUID | None:
    row = conn.execute(HOUSEHOLD_OF, {"c": community_id, "p": person_id, "at": at}).fetchone()
    return None if row is None else row[0]


def insert_events(
    conn: Conn,
    community_id: int,
    events: Sequence[tuple[uuid.UUID, str, dict[str, Any]]],
    actor_id: uuid.UUID | None,
    at: datetime,
) -> None:
    """Append (household_id, kind, detail) events; uuid7 ids keep their order within one instant."""
    if events:
        conn.execute(
            INSERT_EVENTS,
            (
                community_id,
                actor_id,
                at,
                uuid7_many(len(events)),
                [e[0] for e in events],
                [e[1] for e in events],
                [Jsonb(e[2]) for e in events],
            ),
        )


def events(conn: Conn, community_id: int, household_id: uuid.UUID) -> list[HouseholdEventView]:
    rows = conn.execute(EVENTS, (community_id, household_id))
    return [HouseholdEventView(r[0], r[1], EventKind(r[2]), r[3], r[4], r[5]) for r in rows]


def views_as_of(
    conn: Conn, community_id: int, rows: Sequence[HouseholdRow], at: datetime
) -> list[HouseholdView]:
    """The households with their members as of ``at``, in the order given."""
    members = members_as_of(conn, community_id, [r.household_id for r in rows], at)
    return [
        HouseholdView(
            r.household_id,
            r.code,
            r.village_group,
            r.grid,
            r.created_by,
            r.created_at,
            r.dissolved_at,
            tuple(members[r.household_id]),
        )
        for r in rows
    ]


def _json(value: object) -> object:
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return str(value) if isinstance(value, uuid.UUID) else value


class MembershipChange:
    """What one operation writes, in one transaction: memberships closed, memberships opened, events."""

    def __init__(self, community_id: int, clock: Callable[[], datetime], actor_id: uuid.UUID | None) -> None:
        self.community_id = community_id
        self._clock = clock
        self._now: datetime | None = None
        self.actor_id = actor_id
        self.closed: list[MemberView] = []
        self.opened: dict[uuid.UUID, list[tuple[uuid.UUID, bool]]] = {}
        self.events: list[tuple[uuid.UUID, str, dict[str, Any]]] = []

    def move(self, row: MemberView, to_household_id: uuid.UUID, *, is_head: bool) -> None:
        """Close ``row`` and open the same person in ``to_household_id`` (the same one for a head change)."""
        self.closed.append(row)
        self.open(to_household_id, row.person_id, is_head=is_head)

    def open(self, household_id: uuid.UUID, person_id: uuid.UUID, *, is_head: bool = False) -> None:
        self.opened.setdefault(household_id, []).append((person_id, is_head))

    def event(self, household_id: uuid.UUID, kind: EventKind, **detail: object) -> None:
        self.events.append((household_id, str(kind), {k: _json(v) for k, v in detail.items()}))

    @property
    def at(self) -> datetime:
        """The instant of the change, read from the clock once, after the caller took its locks (so
        changes to one household are dated in the order they commit). A row never closes before it
        opened (valid_to > valid_from is a CHECK): if this server's clock is behind the one that
        opened a row, the change is dated just after that row began instead."""
        if self._now is None:
            self._now = self._clock()
            assert self._now.tzinfo is not None, "the clock must give aware datetimes"
        starts = [row.valid_from + _TICK for row in self.closed]
        return max([self._now, *starts])

    def write(self, conn: Conn) -> datetime:
        at = self.at
        # Close before opening: the partial unique indexes allow one current row per person and head.
        close_members(conn, self.community_id, [row.member_id for row in self.closed], at)
        for household_id, members in self.opened.items():
            open_members(conn, self.community_id, household_id, members, at)
        insert_events(conn, self.community_id, self.events, self.actor_id, at)
        return at


# Which unique index a violation came from decides the error: races that slip past the checks
# (both transactions checked before either committed) end here.
_UNIQUE_ERRORS: Mapping[str, tuple[ErrorCode, str | None]] = {
    "household_member_current_uq": (ErrorCode.ALREADY_IN_HOUSEHOLD, None),
    "household_head_current_uq": (ErrorCode.INVALID_FIELD, "head_person_id"),
    "household_community_id_code_key": (ErrorCode.HOUSEHOLD_CODE_TAKEN, "code"),
}


@contextmanager
def violations_mapped() -> Iterator[None]:
    """Turn a unique violation of the household tables into the LedgerError it stands for."""
    try:
        yield
    except pg_errors.UniqueViolation as exc:
        mapped = _UNIQUE_ERRORS.get(exc.diag.constraint_name or "")
        if mapped is None:
            raise
        raise LedgerError(mapped[0], field=mapped[1]) from None
