"""SQL for log exports: a log's head, checkpoints, leaves and balances, read in one snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger.store.db import Conn

# The first statement of the export's transaction: every read below sees one moment of the database,
# so the balances are exactly those produced by the transfers whose leaves are exported.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
HEAD = """
SELECT c.origin, coalesce(h.size, 0)
FROM community c LEFT JOIN log_head h USING (community_id)
WHERE c.community_id = %s
"""
CHECKPOINTS = "SELECT note FROM log_checkpoint WHERE community_id = %s ORDER BY size"
LEAVES = "SELECT idx, leaf FROM log_leaf WHERE community_id = %s AND idx < %s ORDER BY idx"
# Posted balances as the account reads report them (hot accounts are spread over bucket rows).
BALANCES = """
SELECT a.account_id::text, a.unit, coalesce(sum(b.posted), 0)::bigint
FROM account a LEFT JOIN balance b USING (community_id, account_id)
WHERE a.community_id = %s
GROUP BY a.account_id, a.unit
ORDER BY a.account_id
"""
_ITERSIZE = 5000


def begin_snapshot(conn: Conn) -> None:
    """Start a REPEATABLE READ, READ ONLY transaction on ``conn`` (it must be idle)."""
    conn.execute(SNAPSHOT)


def head(conn: Conn, community_id: int) -> tuple[str, int] | None:
    """(origin, number of leaves) of a community's log, or None if there is no such community."""
    row = conn.execute(HEAD, (community_id,)).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def checkpoint_notes(conn: Conn, community_id: int) -> list[bytes]:
    """Every stored signed checkpoint note, by size (a log has few: one per signing)."""
    return [bytes(r[0]) for r in conn.execute(CHECKPOINTS, (community_id,))]


def _stream(conn: Conn, name: str, query: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    # A server-side cursor: rows arrive _ITERSIZE at a time, so memory stays flat at any log size.
    with conn.cursor(name=name, binary=True) as cur:
        cur.itersize = _ITERSIZE
        cur.execute(query, params)
        yield from cur


def leaves(conn: Conn, community_id: int, size: int) -> Iterator[tuple[int, bytes]]:
    """The stored leaves with index below ``size``, in index order (gaps show as skipped indices)."""
    for idx, leaf in _stream(conn, "export_leaves", LEAVES, (community_id, size)):
        yield int(idx), bytes(leaf)


def balances(conn: Conn, community_id: int) -> Iterator[tuple[str, str, int]]:
    """(account id, unit, posted balance) of every account of the community, by account id."""
    for account_id, unit, posted in _stream(conn, "export_balances", BALANCES, (community_id,)):
        yield str(account_id), str(unit), int(posted)
