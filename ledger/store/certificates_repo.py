"""SQL for service certificates and their supersession (tables of migration 0011).

Every function takes an open connection and leaves committing to the caller. Issuing holds the
volunteer's advisory lock (``service_posting_repo.lock_volunteer``), as postings and accepted
corrections do, so that a certificate and a correction of one of its records never interleave:
either the correction comes first (the certificate covers the corrected transfers) or the
certificate does (the correction then finds it and supersedes it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ledger.store.db import Conn

# A posted record with its activity, and every transfer behind its current credit (the first
# posting under the record's idempotency key, then each accepted correction's reversal and new
# posting), each with its audit-log leaf index. A record that never credited anything has no
# transfer row (transfer_id and idx NULL).
_COVERED = """
WITH rec AS (
    SELECT r.record_id, r.service_date, a.name, r.content, a.organising_unit, r.credited_minutes
    FROM service_record r JOIN activity a USING (community_id, activity_id)
    WHERE r.community_id = %(c)s AND r.person_id = %(p)s AND r.state = 'posted'
      AND (%(start)s::date IS NULL OR r.service_date >= %(start)s::date)
      AND (%(end)s::date IS NULL OR r.service_date <= %(end)s::date)
), moved AS (
    SELECT rec.record_id, i.transfer_id
    FROM rec JOIN idempotency i ON i.community_id = %(c)s AND i.key = 'service-record:' || rec.record_id::text
    WHERE i.transfer_id IS NOT NULL
    UNION ALL
    SELECT k.record_id, x.transfer_id
    FROM service_correction k JOIN rec USING (record_id)
    CROSS JOIN LATERAL (VALUES (k.reversal_transfer_id), (k.new_transfer_id)) AS x (transfer_id)
    WHERE k.community_id = %(c)s AND k.state = 'accepted' AND x.transfer_id IS NOT NULL
)
SELECT rec.record_id, rec.service_date, rec.name, rec.content, rec.organising_unit, rec.credited_minutes,
       moved.transfer_id, l.idx
FROM rec
LEFT JOIN moved USING (record_id)
LEFT JOIN log_leaf l ON l.community_id = %(c)s AND l.transfer_id = moved.transfer_id
ORDER BY rec.service_date, rec.record_id, l.idx
"""
_SELECT = """
SELECT number, person_id, account_id, period_from, period_to, record_ids, transfer_ids, total_minutes,
       issued_on, issued_at, issued_by, checkpoint_size, bundle_sha256
FROM certificate
"""
_INSERT = """
INSERT INTO certificate (community_id, number, person_id, account_id, period_from, period_to, record_ids,
                         transfer_ids, total_minutes, issued_on, issued_at, issued_by, checkpoint_size,
                         bundle_sha256, bundle)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_GET = _SELECT + "WHERE community_id = %s AND number = %s"
_OF_PERSON = _SELECT + "WHERE community_id = %s AND person_id = %s ORDER BY issued_at DESC, number LIMIT %s"
_BUNDLE = "SELECT bundle FROM certificate WHERE community_id = %s AND number = %s"
# The earliest supersession decides the status; later ones (another correction) add nothing to it.
_SUPERSESSION = """
SELECT correction_id, record_id, superseded_at FROM certificate_supersession
WHERE community_id = %s AND number = %s ORDER BY superseded_at, correction_id LIMIT 1
"""
# The first certificate of the volunteer issued after the supersession that covers the record again.
_REPLACEMENT = """
SELECT number FROM certificate
WHERE community_id = %s AND person_id = %s AND issued_at > %s AND %s = ANY(record_ids)
ORDER BY issued_at, number LIMIT 1
"""
_SUPERSEDE = """
INSERT INTO certificate_supersession (community_id, number, correction_id, record_id, superseded_at)
SELECT community_id, number, %(k)s, %(r)s, %(at)s FROM certificate
WHERE community_id = %(c)s AND person_id = %(p)s AND %(r)s = ANY(record_ids)
ON CONFLICT DO NOTHING
RETURNING number
"""


@dataclass(frozen=True, slots=True)
class CoveredRow:
    record_id: uuid.UUID
    service_date: date
    activity: str
    content: str
    organising_unit: str
    credited_minutes: int
    transfer_id: uuid.UUID | None
    leaf_index: int | None


@dataclass(frozen=True, slots=True)
class CertificateRow:
    number: str
    person_id: uuid.UUID
    account_id: uuid.UUID
    period_from: date | None
    period_to: date | None
    record_ids: list[uuid.UUID]
    transfer_ids: list[uuid.UUID]
    total_minutes: int
    issued_on: date
    issued_at: datetime
    issued_by: uuid.UUID
    checkpoint_size: int
    bundle_sha256: bytes


@dataclass(frozen=True, slots=True)
class SupersessionRow:
    correction_id: uuid.UUID
    record_id: uuid.UUID
    superseded_at: datetime


def _row(row: tuple[Any, ...]) -> CertificateRow:
    values = list(row)
    values[-1] = bytes(values[-1])
    return CertificateRow(*values)


def covered(
    conn: Conn, community_id: int, person_id: uuid.UUID, start: date | None, end: date | None
) -> list[CoveredRow]:
    """The volunteer's posted records in the period, one row per transfer, in date and log order."""
    params = {"c": community_id, "p": person_id, "start": start, "end": end}
    return [CoveredRow(*r) for r in conn.execute(_COVERED, params).fetchall()]


def community(conn: Conn, community_id: int) -> tuple[str, str] | None:
    """(name, origin) of the community."""
    row = conn.execute(
        "SELECT name, origin FROM community WHERE community_id = %s", (community_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def latest_checkpoint(conn: Conn, community_id: int) -> tuple[int, bytes] | None:
    """(size, signed note) of the log's latest checkpoint."""
    row = conn.execute(
        "SELECT size, note FROM log_checkpoint WHERE community_id = %s ORDER BY size DESC LIMIT 1",
        (community_id,),
    ).fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))


def leaves(conn: Conn, community_id: int, indices: list[int]) -> dict[int, tuple[bytes, bytes]]:
    """index -> (leaf bytes, leaf hash)."""
    rows = conn.execute(
        "SELECT idx, leaf, leaf_hash FROM log_leaf WHERE community_id = %s AND idx = ANY(%s)",
        (community_id, indices),
    ).fetchall()
    return {int(i): (bytes(leaf), bytes(h)) for i, leaf, h in rows}


def insert(conn: Conn, community_id: int, row: CertificateRow, bundle: bytes) -> None:
    conn.execute(
        _INSERT,
        (
            community_id,
            row.number,
            row.person_id,
            row.account_id,
            row.period_from,
            row.period_to,
            row.record_ids,
            row.transfer_ids,
            row.total_minutes,
            row.issued_on,
            row.issued_at,
            row.issued_by,
            row.checkpoint_size,
            row.bundle_sha256,
            bundle,
        ),
    )


def get(conn: Conn, community_id: int, number: str) -> CertificateRow | None:
    row = conn.execute(_GET, (community_id, number)).fetchone()
    return None if row is None else _row(row)


def of_person(conn: Conn, community_id: int, person_id: uuid.UUID, limit: int) -> list[CertificateRow]:
    """The volunteer's certificates, newest first."""
    return [_row(r) for r in conn.execute(_OF_PERSON, (community_id, person_id, limit)).fetchall()]


def bundle(conn: Conn, community_id: int, number: str) -> bytes | None:
    row = conn.execute(_BUNDLE, (community_id, number)).fetchone()
    return None if row is None else bytes(row[0])


def supersession(conn: Conn, community_id: int, number: str) -> SupersessionRow | None:
    row = conn.execute(_SUPERSESSION, (community_id, number)).fetchone()
    return None if row is None else SupersessionRow(*row)


def replacement(
    conn: Conn, community_id: int, person_id: uuid.UUID, record_id: uuid.UUID, after: datetime
) -> str | None:
    row = conn.execute(_REPLACEMENT, (community_id, person_id, after, record_id)).fetchone()
    return None if row is None else str(row[0])


def supersede_covering(
    conn: Conn,
    community_id: int,
    *,
    person_id: uuid.UUID,
    record_id: uuid.UUID,
    correction_id: uuid.UUID,
    at: datetime,
) -> list[str]:
    """Mark every certificate of the volunteer that covers the record as superseded by the
    correction (once per certificate and correction); the numbers marked."""
    params = {"c": community_id, "p": person_id, "r": record_id, "k": correction_id, "at": at}
    return [str(r[0]) for r in conn.execute(_SUPERSEDE, params).fetchall()]
