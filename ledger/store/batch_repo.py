"""SQL for the batch path: binary COPY straight into the append-only tables, set-based updates.

COPY goes directly into the final tables rather than through stage tables: they are append-only,
so there is nothing to merge, and staging would write every row twice. Only the idempotency keys
are staged, because they must be compared with what is already stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from ledger.store.db import Conn

STAGE_KEYS = """
CREATE TEMP TABLE IF NOT EXISTS stage_keys (key text, request_hash bytea, transfer_id uuid)
ON COMMIT DELETE ROWS
"""
CLAIM_STAGED = """
INSERT INTO idempotency (community_id, key, request_hash, transfer_id)
SELECT %s, key, request_hash, transfer_id FROM stage_keys
ON CONFLICT DO NOTHING RETURNING key
"""
READ_STAGED = """
SELECT s.key, i.request_hash = s.request_hash, i.transfer_id, i.error
FROM stage_keys s JOIN idempotency i ON i.community_id = %s AND i.key = s.key
WHERE s.key = ANY(%s)
"""
LOCK_HEAD = "SELECT size, last_hash FROM log_head WHERE community_id = %s FOR UPDATE"
SET_HEAD = "UPDATE log_head SET size = %s, last_hash = %s WHERE community_id = %s"


def stage_keys(conn: Conn, rows: Sequence[tuple[str, bytes, uuid.UUID]]) -> None:
    conn.execute(STAGE_KEYS)
    with conn.cursor().copy(
        "COPY stage_keys (key, request_hash, transfer_id) FROM STDIN (FORMAT BINARY)"
    ) as cp:
        cp.set_types(["text", "bytea", "uuid"])
        for row in rows:
            cp.write_row(row)


def copy_rows(
    conn: Conn, table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if not rows:
        return
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with conn.cursor().copy(statement) as cp:
        cp.set_types(list(types))
        for row in rows:
            cp.write_row(row)


TRANSFER_COLUMNS = (
    "community_id",
    "transfer_id",
    "kind",
    "phase",
    "effective_at",
    "recorded_at",
    "actor_id",
    "idempotency_key",
    "metadata",
)
TRANSFER_TYPES = ("int8", "uuid", "text", "text", "timestamptz", "timestamptz", "uuid", "text", "jsonb")
POSTING_COLUMNS = (
    "community_id",
    "transfer_id",
    "seq",
    "account_id",
    "unit",
    "phase",
    "amount",
    "balance_after",
    "account_version",
    "expires_at",
)
POSTING_TYPES = ("int8", "uuid", "int2", "uuid", "text", "text", "int8", "int8", "int8", "timestamptz")
LOT_COLUMNS = (
    "community_id",
    "lot_id",
    "account_id",
    "transfer_id",
    "seq",
    "amount",
    "remaining",
    "earned_at",
    "expires_at",
)
LOT_TYPES = ("int8", "uuid", "uuid", "uuid", "int2", "int8", "int8", "timestamptz", "timestamptz")
MOVEMENT_COLUMNS = ("community_id", "transfer_id", "seq", "lot_id", "amount")
MOVEMENT_TYPES = ("int8", "uuid", "int2", "uuid", "int8")
LEAF_COLUMNS = ("community_id", "idx", "leaf", "leaf_hash", "transfer_id")
LEAF_TYPES = ("int8", "int8", "bytea", "bytea", "uuid")


# Most transfers carry no metadata: one shared wrapper skips a json.dumps per row.
_EMPTY_JSONB = Jsonb({}, dumps=lambda _: "{}")


def jsonb(value: dict[str, object]) -> Jsonb:
    return Jsonb(value) if value else _EMPTY_JSONB
