"""SQL for correction requests on posted service records (table service_correction, migration 0009)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Final

from ledger.domain.service_records import CorrectionState
from ledger.store.db import Conn

# The partial unique index that admits one undecided correction per record.
OPEN_UNIQUE: Final = "service_correction_open_uq"


@dataclass(frozen=True, slots=True)
class CorrectionRow:
    correction_id: uuid.UUID
    record_id: uuid.UUID
    start_time: time
    end_time: time
    served_minutes: int
    reason: str
    filed_by: uuid.UUID
    filed_at: datetime
    state: CorrectionState
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    rejection_reason: str | None
    attempt: int
    reversal_transfer_id: uuid.UUID | None
    new_transfer_id: uuid.UUID | None
    previous_credited_minutes: int | None
    credited_minutes: int | None


_SELECT = """
SELECT correction_id, record_id, start_time, end_time, served_minutes, reason, filed_by, filed_at, state,
       decided_by, decided_at, rejection_reason, attempt, reversal_transfer_id, new_transfer_id,
       previous_credited_minutes, credited_minutes
FROM service_correction
"""
GET = _SELECT + "WHERE community_id = %s AND correction_id = %s"
LOCK = GET + " FOR UPDATE"
OF_RECORD = _SELECT + "WHERE community_id = %s AND record_id = %s ORDER BY filed_at, correction_id"
# A page in id order; the volunteer's filter goes through their records. (S608 is about untrusted
# text; this joins constants of this module.)
LIST = (
    _SELECT  # noqa: S608
    + """WHERE community_id = %(c)s
  AND (%(p)s::uuid IS NULL OR record_id IN (
        SELECT record_id FROM service_record WHERE community_id = %(c)s AND person_id = %(p)s::uuid))
  AND (%(r)s::uuid IS NULL OR record_id = %(r)s::uuid)
  AND (%(s)s::text IS NULL OR state = %(s)s::text)
  AND (%(after)s::uuid IS NULL OR correction_id > %(after)s::uuid)
ORDER BY correction_id LIMIT %(limit)s"""
)
INSERT = """
INSERT INTO service_correction (community_id, correction_id, record_id, start_time, end_time, served_minutes,
                                reason, filed_by, filed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
OPEN_EXISTS = (
    "SELECT 1 FROM service_correction WHERE community_id = %s AND record_id = %s AND state = 'filed'"
)
ACCEPT = """
UPDATE service_correction SET state = 'accepted', decided_by = %s, decided_at = %s, reversal_transfer_id = %s,
       new_transfer_id = %s, previous_credited_minutes = %s, credited_minutes = %s
WHERE community_id = %s AND correction_id = %s AND state = 'filed'
"""
REJECT = """
UPDATE service_correction SET state = 'rejected', decided_by = %s, decided_at = %s, rejection_reason = %s
WHERE community_id = %s AND correction_id = %s AND state = 'filed'
"""
NEXT_ATTEMPT = """
UPDATE service_correction SET attempt = attempt + 1
WHERE community_id = %s AND correction_id = %s AND state = 'filed' AND attempt = %s
"""


def _row(row: tuple[Any, ...]) -> CorrectionRow:
    values = list(row)
    values[8] = CorrectionState(values[8])
    return CorrectionRow(*values)


@dataclass(frozen=True, slots=True)
class NewCorrection:
    correction_id: uuid.UUID
    record_id: uuid.UUID
    start_time: time
    end_time: time
    served_minutes: int
    reason: str
    filed_by: uuid.UUID
    filed_at: datetime


def insert(conn: Conn, community_id: int, new: NewCorrection) -> None:
    conn.execute(
        INSERT,
        (
            community_id,
            new.correction_id,
            new.record_id,
            new.start_time,
            new.end_time,
            new.served_minutes,
            new.reason,
            new.filed_by,
            new.filed_at,
        ),
    )


def open_exists(conn: Conn, community_id: int, record_id: uuid.UUID) -> bool:
    return conn.execute(OPEN_EXISTS, (community_id, record_id)).fetchone() is not None


def get(
    conn: Conn, community_id: int, correction_id: uuid.UUID, *, lock: bool = False
) -> CorrectionRow | None:
    row = conn.execute(LOCK if lock else GET, (community_id, correction_id)).fetchone()
    return None if row is None else _row(row)


def of_record(conn: Conn, community_id: int, record_id: uuid.UUID) -> list[CorrectionRow]:
    return [_row(r) for r in conn.execute(OF_RECORD, (community_id, record_id)).fetchall()]


def list_corrections(
    conn: Conn,
    community_id: int,
    *,
    person_id: uuid.UUID | None,
    record_id: uuid.UUID | None,
    state: CorrectionState | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[CorrectionRow]:
    params = {
        "c": community_id,
        "p": person_id,
        "r": record_id,
        "s": None if state is None else str(state),
        "after": after,
        "limit": limit,
    }
    return [_row(r) for r in conn.execute(LIST, params).fetchall()]


def set_accepted(
    conn: Conn,
    community_id: int,
    correction_id: uuid.UUID,
    *,
    actor: uuid.UUID,
    at: datetime,
    reversal_transfer_id: uuid.UUID | None,
    new_transfer_id: uuid.UUID | None,
    previous_credited_minutes: int,
    credited_minutes: int,
) -> None:
    conn.execute(
        ACCEPT,
        (
            actor,
            at,
            reversal_transfer_id,
            new_transfer_id,
            previous_credited_minutes,
            credited_minutes,
            community_id,
            correction_id,
        ),
    )


def set_rejected(
    conn: Conn, community_id: int, correction_id: uuid.UUID, *, actor: uuid.UUID, at: datetime, reason: str
) -> None:
    conn.execute(REJECT, (actor, at, reason, community_id, correction_id))


def next_attempt(conn: Conn, community_id: int, correction_id: uuid.UUID, attempt: int) -> None:
    """Move past a failed acceptance attempt (its ledger keys hold the failure); once per attempt."""
    conn.execute(NEXT_ATTEMPT, (community_id, correction_id, attempt))
