"""SQL that posting a service record reads: settings by version, accounts, what is already credited,
and what the ledger already holds under a key (to finish a posting interrupted after the transfer).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ledger.domain.units import Unit
from ledger.store.db import Conn
from ledger.store.service_records_repo import IMPORT_LOCK_CLASS, VOLUNTEER_LOCK_CLASS


def lock_volunteer(conn: Conn, community_id: int, person_id: uuid.UUID) -> None:
    """Serialise the postings of one volunteer's records until the transaction ends (caps depend on
    what was credited before). A hash collision only makes two volunteers wait for each other.

    The community's import lock is taken first, shared: postings do not wait for each other on it,
    but a bulk import (which takes it exclusive instead of one lock per volunteer) waits for them
    and they for it. The subquery is evaluated first (volatile functions are not pulled up).
    """
    conn.execute(
        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
        " FROM (SELECT pg_advisory_xact_lock_shared(%s, %s::int)) AS community_lock",
        (VOLUNTEER_LOCK_CLASS, f"{community_id}:{person_id}", IMPORT_LOCK_CLASS, community_id),
    )


def lock_community_for_import(conn: Conn, community_id: int) -> None:
    """A bulk import's exclusive hold on the community's postings of service records (see above)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s::int)", (IMPORT_LOCK_CLASS, community_id))


def settings_version(conn: Conn, community_id: int, version: int) -> dict[str, Any] | None:
    """The stored parameters of one published version (version 0, the defaults, is not stored)."""
    row = conn.execute(
        "SELECT params FROM community_setting WHERE community_id = %s AND version = %s",
        (community_id, version),
    ).fetchone()
    return None if row is None else dict(row[0])


def person_accounts(conn: Conn, community_id: int, person_id: uuid.UUID) -> dict[Unit, uuid.UUID]:
    rows = conn.execute(
        "SELECT unit, account_id FROM account WHERE community_id = %s AND owner_kind = 'person'"
        " AND owner_id = %s",
        (community_id, person_id),
    ).fetchall()
    return {Unit(unit): account_id for unit, account_id in rows}


def system_accounts(conn: Conn, community_id: int) -> dict[tuple[str, Unit], uuid.UUID]:
    rows = conn.execute(
        "SELECT code, unit, account_id FROM account WHERE community_id = %s AND owner_id IS NULL",
        (community_id,),
    ).fetchall()
    return {(str(code), Unit(unit)): account_id for code, unit, account_id in rows}


@dataclass(frozen=True, slots=True)
class Totals:
    activity_minutes: int
    day_minutes: int
    day_coin_minutes: int
    stored_coin_minutes: int


# One statement, so one snapshot: posted records and the coin balance are read at the same instant.
_TOTALS = """
SELECT
    coalesce(sum(r.credited_minutes) FILTER (WHERE r.activity_id = %(a)s), 0),
    coalesce(sum(r.credited_minutes) FILTER (WHERE r.service_date = %(d)s), 0),
    coalesce(sum(r.earned_coin_minutes) FILTER (WHERE r.service_date = %(d)s), 0),
    (SELECT coalesce(sum(b.posted), 0) FROM balance b
      WHERE b.community_id = %(c)s AND b.account_id = %(coins)s)
FROM service_record r
WHERE r.community_id = %(c)s AND r.person_id = %(p)s AND r.state = 'posted' AND r.record_id <> %(r)s
  AND (r.activity_id = %(a)s OR r.service_date = %(d)s)
"""


def totals(
    conn: Conn,
    community_id: int,
    *,
    person_id: uuid.UUID,
    record_id: uuid.UUID,
    activity_id: uuid.UUID,
    service_date: object,
    coin_account: uuid.UUID,
) -> Totals:
    """What other posted records of the volunteer credited for the activity and on the date, and the
    volunteer's coin balance now."""
    row = conn.execute(
        _TOTALS,
        {
            "c": community_id,
            "p": person_id,
            "r": record_id,
            "a": activity_id,
            "d": service_date,
            "coins": coin_account,
        },
    ).fetchone()
    assert row is not None
    return Totals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def keyed_transfer(conn: Conn, community_id: int, key: str) -> uuid.UUID | None:
    """The transfer committed under an idempotency key, if any."""
    row = conn.execute(
        "SELECT transfer_id FROM idempotency"
        " WHERE community_id = %s AND key = %s AND transfer_id IS NOT NULL",
        (community_id, key),
    ).fetchone()
    return None if row is None else row[0]


def transfer_metadata(
    conn: Conn, community_id: int, transfer_id: uuid.UUID
) -> tuple[dict[str, Any], uuid.UUID | None]:
    row = conn.execute(
        "SELECT metadata, actor_id FROM transfer WHERE community_id = %s AND transfer_id = %s",
        (community_id, transfer_id),
    ).fetchone()
    assert row is not None
    return dict(row[0]), row[1]


def reversal_of(conn: Conn, community_id: int, transfer_id: uuid.UUID) -> uuid.UUID | None:
    row = conn.execute(
        "SELECT transfer_id FROM transfer WHERE community_id = %s AND reverses_id = %s",
        (community_id, transfer_id),
    ).fetchone()
    return None if row is None else row[0]


def account_balance(conn: Conn, community_id: int, account_id: uuid.UUID) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(posted), 0) FROM balance WHERE community_id = %s AND account_id = %s",
        (community_id, account_id),
    ).fetchone()
    assert row is not None
    return int(row[0])
