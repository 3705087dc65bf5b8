"""Non-transfer leaves: events the log records besides ledger transfers (key rotations, adopted
rule sets, published boards). Same chain, same lock, same canonical encoding as transfer leaves.

An event leaf carries the common keys (``v``, ``origin``, ``index``, ``prev``, ``type``) plus the
event's own fields, which must be canonical JSON values with no personal data (ids only).
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg_pool import ConnectionPool

from ledger.audit.leaf import LEAF_VERSION, leaf_template
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.services.results import Receipt
from ledger.store import ledger_repo as sql
from ledger.store.db import Conn

EVENT_TYPES = frozenset({"key_rotation", "rule_set", "board"})
_RESERVED = frozenset({"v", "origin", "index", "prev", "type"})

# The same chain step as a transfer's (vledger_write_transfer), for a leaf without ledger rows.
APPEND_EVENT = """
WITH head AS (
    SELECT size, last_hash FROM log_head WHERE community_id = %(c)s FOR UPDATE
), leaf AS (
    SELECT size AS idx,
           %(prefix)s::bytea || convert_to(size::text, 'UTF8') || %(middle)s::bytea
             || convert_to(encode(last_hash, 'hex'), 'UTF8') || %(suffix)s::bytea AS bytes
    FROM head
), ins AS (
    INSERT INTO log_leaf (community_id, idx, leaf, leaf_hash, transfer_id)
    SELECT %(c)s, idx, bytes, sha256('\\x00'::bytea || bytes), NULL FROM leaf
    RETURNING idx, leaf_hash
)
UPDATE log_head h SET size = ins.idx + 1, last_hash = ins.leaf_hash
FROM ins WHERE h.community_id = %(c)s
RETURNING ins.idx, ins.leaf_hash
"""


def append_event(
    pool: ConnectionPool[Conn], community_id: int, event_type: str, fields: Mapping[str, object]
) -> Receipt:
    """Append one event leaf to the community's log in its own transaction; returns its receipt."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event leaf type {event_type!r}")
    if _RESERVED & set(fields):
        raise ValueError("event fields must not use the common leaf keys")
    with pool.connection() as conn:
        row = conn.execute(sql.COMMUNITY_ORIGIN, (community_id,)).fetchone()
        if row is None:
            raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
        template = leaf_template({"v": LEAF_VERSION, "origin": str(row[0]), "type": event_type, **fields})
        result = conn.execute(
            APPEND_EVENT,
            {
                "c": community_id,
                "prefix": template.prefix,
                "middle": template.middle,
                "suffix": template.suffix,
            },
        ).fetchone()
        assert result is not None
        conn.commit()
    return Receipt(community_id, int(result[0]), bytes(result[1]))
