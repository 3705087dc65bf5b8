"""SQL for people: the encrypted ``person`` rows, their wrapped data keys, blind-index lookups, erasure.

Every function takes an open connection and leaves committing to the caller (one transaction per
use case). Profiles arrive and leave here as ciphertext only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from ledger.domain.ids import uuid7
from ledger.store.db import Conn

# The unique index that catches two people with one ID number racing past the blind-index check.
ID_NUMBER_UNIQUE = "person_id_number_uq"


@dataclass(frozen=True, slots=True)
class PersonRow:
    """A ``person`` row with its wrapped data key (both None once erased)."""

    community_id: int
    person_id: uuid.UUID
    profile_enc: bytes | None
    consent_entry: bool
    consent_publish: bool
    minor: bool
    guardian_person_id: uuid.UUID | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None
    key_id: str | None
    wrapped_key: bytes | None


@dataclass(frozen=True, slots=True)
class KeyRow:
    community_id: int
    person_id: uuid.UUID
    key_id: str
    wrapped_key: bytes


_PERSON_COLUMNS = """
p.community_id, p.person_id, p.profile_enc, p.consent_entry, p.consent_publish, p.minor,
p.guardian_person_id, p.created_by, p.created_at, p.updated_at, p.erased_at, k.key_id, k.wrapped_key
"""
_FROM_PERSON = "FROM person p LEFT JOIN person_key k USING (community_id, person_id)"


def _person(row: tuple[object, ...]) -> PersonRow:
    return PersonRow(*row)  # type: ignore[arg-type]  # columns are in field order, typed by the schema


def community_exists(conn: Conn, community_id: int) -> bool:
    row = conn.execute("SELECT 1 FROM community WHERE community_id = %s", (community_id,)).fetchone()
    return row is not None


def insert_person(
    conn: Conn,
    row: PersonRow,
    *,
    id_number_bidx: bytes | None,
    phone_bidx: bytes | None,
) -> None:
    """Insert the person and its wrapped data key (the caller's transaction makes them one write)."""
    assert row.key_id is not None and row.wrapped_key is not None
    conn.execute(
        "INSERT INTO person (community_id, person_id, profile_enc, id_number_bidx, phone_bidx,"
        " consent_entry, consent_publish, minor, guardian_person_id, created_by, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            row.community_id,
            row.person_id,
            row.profile_enc,
            id_number_bidx,
            phone_bidx,
            row.consent_entry,
            row.consent_publish,
            row.minor,
            row.guardian_person_id,
            row.created_by,
            row.created_at,
            row.updated_at,
        ),
    )
    conn.execute(
        "INSERT INTO person_key (community_id, person_id, key_id, wrapped_key) VALUES (%s, %s, %s, %s)",
        (row.community_id, row.person_id, row.key_id, row.wrapped_key),
    )


def get_person(conn: Conn, community_id: int, person_id: uuid.UUID, *, lock: str = "") -> PersonRow | None:
    """One person; ``lock`` is "" or "UPDATE" or "SHARE" (row lock on the person row only)."""
    assert lock in ("", "UPDATE", "SHARE")
    suffix = f" FOR {lock} OF p" if lock else ""
    row = conn.execute(
        f"SELECT {_PERSON_COLUMNS} {_FROM_PERSON} WHERE p.community_id = %s AND p.person_id = %s{suffix}",
        (community_id, person_id),
    ).fetchone()
    return None if row is None else _person(row)


def list_persons(conn: Conn, community_id: int, *, after: uuid.UUID | None, limit: int) -> list[PersonRow]:
    """A page of people in person_id order (UUIDv7: roughly registration order), after ``after``."""
    rows = conn.execute(
        f"SELECT {_PERSON_COLUMNS} {_FROM_PERSON}"
        " WHERE p.community_id = %s AND (%s::uuid IS NULL OR p.person_id > %s::uuid)"
        " ORDER BY p.person_id LIMIT %s",
        (community_id, after, after, limit),
    ).fetchall()
    return [_person(r) for r in rows]


def find_by_id_number_bidx(conn: Conn, community_id: int, bidx: bytes) -> uuid.UUID | None:
    row = conn.execute(
        "SELECT person_id FROM person WHERE community_id = %s AND id_number_bidx = %s",
        (community_id, bidx),
    ).fetchone()
    return None if row is None else uuid.UUID(str(row[0]))


def find_by_id_number_bidxs(conn: Conn, community_id: int, bidxs: list[bytes]) -> dict[bytes, uuid.UUID]:
    """Many lookups in one statement: each index found, with its person (erased people have none)."""
    rows = conn.execute(
        "SELECT id_number_bidx, person_id FROM person WHERE community_id = %s AND id_number_bidx = ANY(%s)",
        (community_id, bidxs),
    ).fetchall()
    return {bytes(r[0]): uuid.UUID(str(r[1])) for r in rows}


def find_by_phone_bidx(conn: Conn, community_id: int, bidx: bytes) -> list[uuid.UUID]:
    rows = conn.execute(
        "SELECT person_id FROM person WHERE community_id = %s AND phone_bidx = %s ORDER BY person_id",
        (community_id, bidx),
    ).fetchall()
    return [uuid.UUID(str(r[0])) for r in rows]


def update_profile(
    conn: Conn,
    community_id: int,
    person_id: uuid.UUID,
    *,
    profile_enc: bytes,
    id_number_bidx: bytes | None,
    phone_bidx: bytes | None,
    minor: bool,
    updated_at: datetime,
) -> None:
    conn.execute(
        "UPDATE person SET profile_enc = %s, id_number_bidx = %s, phone_bidx = %s, minor = %s,"
        " updated_at = %s WHERE community_id = %s AND person_id = %s AND erased_at IS NULL",
        (profile_enc, id_number_bidx, phone_bidx, minor, updated_at, community_id, person_id),
    )


def update_consent(
    conn: Conn,
    community_id: int,
    person_id: uuid.UUID,
    *,
    consent_entry: bool,
    consent_publish: bool,
    updated_at: datetime,
) -> None:
    conn.execute(
        "UPDATE person SET consent_entry = %s, consent_publish = %s, updated_at = %s"
        " WHERE community_id = %s AND person_id = %s",
        (consent_entry, consent_publish, updated_at, community_id, person_id),
    )


def erase_person(conn: Conn, community_id: int, person_id: uuid.UUID, *, erased_at: datetime) -> None:
    """Crypto-shred: delete the wrapped data key, then blank the ciphertext and blind indexes."""
    conn.execute(
        "DELETE FROM person_key WHERE community_id = %s AND person_id = %s", (community_id, person_id)
    )
    conn.execute(
        "UPDATE person SET profile_enc = NULL, id_number_bidx = NULL, phone_bidx = NULL,"
        " erased_at = %s, updated_at = %s WHERE community_id = %s AND person_id = %s",
        (erased_at, erased_at, community_id, person_id),
    )


def keys_to_rewrap(
    conn: Conn,
    *,
    active_key_id: str,
    after: tuple[int, uuid.UUID] | None,
    limit: int,
    community_id: int | None = None,
) -> list[KeyRow]:
    """Locks and returns the next keys not wrapped under the active key, in (community, person) order."""
    after_c, after_p = after if after is not None else (None, None)
    rows = conn.execute(
        "SELECT community_id, person_id, key_id, wrapped_key FROM person_key"
        " WHERE key_id <> %s AND (%s::bigint IS NULL OR community_id = %s::bigint)"
        " AND (%s::bigint IS NULL OR (community_id, person_id) > (%s::bigint, %s::uuid))"
        " ORDER BY community_id, person_id LIMIT %s FOR UPDATE",
        (active_key_id, community_id, community_id, after_c, after_c, after_p, limit),
    ).fetchall()
    return [KeyRow(int(r[0]), uuid.UUID(str(r[1])), str(r[2]), bytes(r[3])) for r in rows]


def replace_wrapped_key(conn: Conn, row: KeyRow, *, key_id: str, wrapped_key: bytes) -> None:
    conn.execute(
        "UPDATE person_key SET key_id = %s, wrapped_key = %s"
        " WHERE community_id = %s AND person_id = %s AND key_id = %s",
        (key_id, wrapped_key, row.community_id, row.person_id, row.key_id),
    )


def record_event(
    conn: Conn, community_id: int, person_id: uuid.UUID, kind: str, actor_id: uuid.UUID | None, at: datetime
) -> None:
    """Who wrote the record (ids only), in the same transaction as the write."""
    conn.execute(
        "INSERT INTO person_event (community_id, event_id, person_id, kind, actor_id, at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (community_id, uuid7(), person_id, kind, actor_id, at),
    )


def events(
    conn: Conn, community_id: int, person_id: uuid.UUID
) -> list[tuple[str, uuid.UUID | None, datetime]]:
    rows = conn.execute(
        "SELECT kind, actor_id, at FROM person_event WHERE community_id = %s AND person_id = %s"
        " ORDER BY at, event_id",
        (community_id, person_id),
    ).fetchall()
    return [(str(r[0]), r[1], r[2]) for r in rows]
