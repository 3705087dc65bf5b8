"""SQL for the points-expiry run: which accounts hold points in lots whose expiry has passed."""

from __future__ import annotations

import uuid
from datetime import datetime

from ledger.store.db import Conn

# Points still in expired lots, per account. Points an open order holds are not in its lots'
# ``remaining`` (the pending transfer took them), so the run skips them by construction.
_EXPIRED_BY_ACCOUNT = """
SELECT account_id, sum(remaining) FROM lot
WHERE community_id = %s AND remaining > 0 AND expires_at <= %s
  AND (%s::uuid[] IS NULL OR account_id = ANY(%s::uuid[]))
GROUP BY account_id
ORDER BY account_id
"""
_COMMUNITIES = """
SELECT DISTINCT community_id FROM lot WHERE remaining > 0 AND expires_at <= %s ORDER BY community_id
"""


def expired_by_account(
    conn: Conn, community_id: int, now: datetime, accounts: list[uuid.UUID] | None = None
) -> list[tuple[uuid.UUID, int]]:
    rows = conn.execute(_EXPIRED_BY_ACCOUNT, (community_id, now, accounts, accounts)).fetchall()
    return [(r[0], int(r[1])) for r in rows]


def communities_with_expired_lots(conn: Conn, now: datetime) -> list[int]:
    return [int(r[0]) for r in conn.execute(_COMMUNITIES, (now,))]
