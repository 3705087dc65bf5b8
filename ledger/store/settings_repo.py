"""SQL for versioned community rule settings (table community_setting, append-only)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from psycopg.types.json import Jsonb

from ledger.store.db import Conn

# Every read returns (version, effective_from, params, note, created_by, created_at), spelled out.

COMMUNITY_EXISTS = "SELECT 1 FROM community WHERE community_id = %s"
IN_FORCE = """
SELECT version, effective_from, params, note, created_by, created_at FROM community_setting
WHERE community_id = %s AND effective_from <= %s
ORDER BY version DESC LIMIT 1
"""
ALL_VERSIONS = """
SELECT version, effective_from, params, note, created_by, created_at FROM community_setting
WHERE community_id = %s ORDER BY version
"""
LATEST = """
SELECT version, effective_from, params, note, created_by, created_at FROM community_setting
WHERE community_id = %s ORDER BY version DESC LIMIT 1
"""
INSERT = """
INSERT INTO community_setting (community_id, version, effective_from, params, note, created_by)
VALUES (%s, %s, %s, %s, %s, %s)
RETURNING version, effective_from, params, note, created_by, created_at
"""

SettingRow = tuple[int, date, dict[str, Any], str, uuid.UUID | None, datetime]


def community_exists(conn: Conn, community_id: int) -> bool:
    return conn.execute(COMMUNITY_EXISTS, (community_id,)).fetchone() is not None


def in_force(conn: Conn, community_id: int, on: date) -> SettingRow | None:
    """The version in force on ``on``: effective dates rise with versions, so the highest one due."""
    row = conn.execute(IN_FORCE, (community_id, on)).fetchone()
    return None if row is None else _row(row)


def all_versions(conn: Conn, community_id: int) -> list[SettingRow]:
    return [_row(r) for r in conn.execute(ALL_VERSIONS, (community_id,))]


def latest(conn: Conn, community_id: int) -> SettingRow | None:
    row = conn.execute(LATEST, (community_id,)).fetchone()
    return None if row is None else _row(row)


def insert(
    conn: Conn,
    community_id: int,
    version: int,
    effective_from: date,
    params: dict[str, object],
    note: str,
    created_by: uuid.UUID | None,
) -> SettingRow:
    row = conn.execute(
        INSERT, (community_id, version, effective_from, Jsonb(params), note, created_by)
    ).fetchone()
    assert row is not None
    return _row(row)


def _row(row: tuple[Any, ...]) -> SettingRow:
    version, effective_from, params, note, created_by, created_at = row
    return int(version), effective_from, dict(params), str(note), created_by, created_at
