"""Master-key rotation: re-wrap every person's data key under the active master key.

Profiles are not touched: only the small wrapped keys change, so rotation costs one AES-GCM
unwrap and wrap per person. Rows already under the active key are skipped, which makes a second
run a no-op and an interrupted run resumable.
"""

from __future__ import annotations

import uuid

from psycopg_pool import ConnectionPool

from ledger.privacy.envelope import rewrap_data_key
from ledger.privacy.keyring import Keyring
from ledger.store import people_repo as sql
from ledger.store.db import Conn

BATCH_SIZE = 500


def rewrap_all(
    source: ConnectionPool[Conn] | Conn,
    keyring: Keyring,
    *,
    community_id: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Re-wrap the data keys not under ``keyring.active_key_id``; returns how many were re-wrapped.

    With a pool, each batch commits on its own (a long rotation holds no lock for long); with a
    connection, everything runs in the caller's transaction and the caller commits. Every key id
    found must be in the keyring (KeyringError otherwise), which is why the old key stays
    configured until rotation has finished. ``community_id`` limits the run to one community.
    """
    assert batch_size > 0
    if isinstance(source, ConnectionPool):
        total, after = 0, None
        while True:
            with source.connection() as conn:
                count, after = _rewrap_batch(conn, keyring, community_id, after, batch_size)
            total += count
            if after is None:
                return total
    total, after = 0, None
    while True:
        count, after = _rewrap_batch(source, keyring, community_id, after, batch_size)
        total += count
        if after is None:
            return total


def _rewrap_batch(
    conn: Conn,
    keyring: Keyring,
    community_id: int | None,
    after: tuple[int, uuid.UUID] | None,
    batch_size: int,
) -> tuple[int, tuple[int, uuid.UUID] | None]:
    """One locked batch; returns (re-wrapped, where to continue) with None when nothing is left."""
    rows = sql.keys_to_rewrap(
        conn, active_key_id=keyring.active_key_id, after=after, limit=batch_size, community_id=community_id
    )
    for row in rows:
        key_id, wrapped = rewrap_data_key(
            keyring, row.community_id, row.person_id, row.key_id, row.wrapped_key
        )
        sql.replace_wrapped_key(conn, row, key_id=key_id, wrapped_key=wrapped)
    if len(rows) < batch_size:
        return len(rows), None
    return len(rows), (rows[-1].community_id, rows[-1].person_id)
