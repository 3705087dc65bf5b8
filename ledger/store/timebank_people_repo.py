"""SQL for what the time bank knows about people and regions: relations, hardship flags, and the
region switch for cross-community exchange (tables person_relation, hardship_flag, region,
region_cross_community_event). The caller's transaction commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from ledger.domain.ids import uuid7
from ledger.domain.timebank_rules import RelationKind
from ledger.store.db import Conn


@dataclass(frozen=True, slots=True)
class RelationRow:
    """As stored: ``person_id < relative_person_id``; ``kind`` is what the relative is to the person."""

    relation_id: uuid.UUID
    person_id: uuid.UUID
    relative_person_id: uuid.UUID
    kind: RelationKind
    recorded_by: uuid.UUID
    recorded_at: datetime
    ended_by: uuid.UUID | None
    ended_at: datetime | None


_RELATION = "relation_id, person_id, relative_person_id, kind, recorded_by, recorded_at, ended_by, ended_at"
# The f-strings below only join constants of this module (S608 is about untrusted text).
_PAIR = f"""
SELECT {_RELATION} FROM person_relation
WHERE community_id = %s AND person_id = %s AND relative_person_id = %s AND ended_at IS NULL
"""  # noqa: S608
_BY_ID = f"SELECT {_RELATION} FROM person_relation WHERE community_id = %s AND relation_id = %s"  # noqa: S608
_OF_PERSON = f"""
SELECT {_RELATION} FROM person_relation
WHERE community_id = %(c)s AND ended_at IS NULL AND (person_id = %(p)s OR relative_person_id = %(p)s)
ORDER BY recorded_at, relation_id
"""  # noqa: S608


def _relation(row: tuple[object, ...]) -> RelationRow:
    values = list(row)
    values[3] = RelationKind(str(values[3]))
    return RelationRow(*values)  # type: ignore[arg-type]  # columns in field order, typed by the schema


def current_relation(
    conn: Conn, community_id: int, low: uuid.UUID, high: uuid.UUID, *, lock: str = ""
) -> RelationRow | None:
    """The current relation of a pair given in id order; ``lock`` is "", "SHARE" or "UPDATE"."""
    assert low < high and lock in ("", "SHARE", "UPDATE")
    row = conn.execute(_PAIR + (f" FOR {lock}" if lock else ""), (community_id, low, high)).fetchone()
    return None if row is None else _relation(row)


def get_relation(conn: Conn, community_id: int, relation_id: uuid.UUID, *, lock: bool) -> RelationRow | None:
    row = conn.execute(_BY_ID + (" FOR UPDATE" if lock else ""), (community_id, relation_id)).fetchone()
    return None if row is None else _relation(row)


def insert_relation(
    conn: Conn,
    community_id: int,
    low: uuid.UUID,
    high: uuid.UUID,
    kind: RelationKind,
    actor_id: uuid.UUID,
    at: datetime,
) -> uuid.UUID:
    relation_id = uuid7()
    conn.execute(
        "INSERT INTO person_relation (community_id, relation_id, person_id, relative_person_id, kind,"
        " recorded_by, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (community_id, relation_id, low, high, str(kind), actor_id, at),
    )
    return relation_id


def end_relation(
    conn: Conn, community_id: int, relation_id: uuid.UUID, actor_id: uuid.UUID, at: datetime
) -> None:
    conn.execute(
        "UPDATE person_relation SET ended_by = %s, ended_at = %s"
        " WHERE community_id = %s AND relation_id = %s",
        (actor_id, at, community_id, relation_id),
    )


def relations_of(conn: Conn, community_id: int, person_id: uuid.UUID) -> list[RelationRow]:
    """Current relations with the person on either side, oldest first."""
    rows = conn.execute(_OF_PERSON, {"c": community_id, "p": person_id}).fetchall()
    return [_relation(r) for r in rows]


# -------------------------------------------------------------------------------- hardship flags


@dataclass(frozen=True, slots=True)
class HardshipRow:
    flag_id: uuid.UUID
    person_id: uuid.UUID
    valid_from: date
    valid_until: date | None
    granted_by: uuid.UUID
    granted_at: datetime
    revoked_by: uuid.UUID | None
    revoked_at: datetime | None


_FLAG = "flag_id, person_id, valid_from, valid_until, granted_by, granted_at, revoked_by, revoked_at"
_FLAG_BY_ID = f"SELECT {_FLAG} FROM hardship_flag WHERE community_id = %s AND flag_id = %s"  # noqa: S608
_FLAGS_OF = f"""
SELECT {_FLAG} FROM hardship_flag WHERE community_id = %s AND person_id = %s ORDER BY granted_at, flag_id
"""  # noqa: S608


def insert_flag(
    conn: Conn,
    community_id: int,
    person_id: uuid.UUID,
    valid_from: date,
    valid_until: date | None,
    actor_id: uuid.UUID,
    at: datetime,
) -> uuid.UUID:
    flag_id = uuid7()
    conn.execute(
        "INSERT INTO hardship_flag (community_id, flag_id, person_id, valid_from, valid_until, granted_by,"
        " granted_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (community_id, flag_id, person_id, valid_from, valid_until, actor_id, at),
    )
    return flag_id


def get_flag(conn: Conn, community_id: int, flag_id: uuid.UUID, *, lock: bool) -> HardshipRow | None:
    row = conn.execute(_FLAG_BY_ID + (" FOR UPDATE" if lock else ""), (community_id, flag_id)).fetchone()
    return None if row is None else HardshipRow(*row)


def revoke_flag(conn: Conn, community_id: int, flag_id: uuid.UUID, actor_id: uuid.UUID, at: datetime) -> None:
    conn.execute(
        "UPDATE hardship_flag SET revoked_by = %s, revoked_at = %s WHERE community_id = %s AND flag_id = %s",
        (actor_id, at, community_id, flag_id),
    )


def flags_of(
    conn: Conn, community_id: int, person_id: uuid.UUID, *, share: bool = False
) -> list[HardshipRow]:
    """Every hardship flag of the person, oldest first (``share``: a revocation waits for the caller)."""
    rows = conn.execute(_FLAGS_OF + (" FOR SHARE" if share else ""), (community_id, person_id)).fetchall()
    return [HardshipRow(*r) for r in rows]


# ---------------------------------------------------------------------------------------- regions


@dataclass(frozen=True, slots=True)
class SwitchEvent:
    event_id: uuid.UUID
    enabled: bool
    actor_id: uuid.UUID
    at: datetime
    note: str


_SWITCH = "SELECT cross_community FROM region WHERE region_id = %s"


def region_switch(conn: Conn, region_id: int, *, lock: str = "") -> bool | None:
    """The region's cross-community switch; None if there is no such region. ``lock``: "", "SHARE"
    (a change of the switch waits for the caller) or "NO KEY UPDATE" (to change it; new
    communities of the region are not held up)."""
    assert lock in ("", "SHARE", "NO KEY UPDATE")
    query = _SWITCH + (f" FOR {lock}" if lock else "")
    row = conn.execute(query, (region_id,)).fetchone()
    return None if row is None else bool(row[0])


def set_region_switch(
    conn: Conn, region_id: int, enabled: bool, actor_id: uuid.UUID, at: datetime, note: str
) -> None:
    conn.execute("UPDATE region SET cross_community = %s WHERE region_id = %s", (enabled, region_id))
    conn.execute(
        "INSERT INTO region_cross_community_event (region_id, event_id, enabled, actor_id, at, note)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (region_id, uuid7(), enabled, actor_id, at, note),
    )


def switch_history(conn: Conn, region_id: int) -> list[SwitchEvent]:
    rows = conn.execute(
        "SELECT event_id, enabled, actor_id, at, note FROM region_cross_community_event"
        " WHERE region_id = %s ORDER BY at, event_id",
        (region_id,),
    ).fetchall()
    return [SwitchEvent(*r) for r in rows]


def regions_of(conn: Conn, community_ids: list[int]) -> dict[int, int]:
    """community_id → region_id for those that exist."""
    rows = conn.execute(
        "SELECT community_id, region_id FROM community WHERE community_id = ANY(%s)", (community_ids,)
    ).fetchall()
    return {int(c): int(r) for c, r in rows}
