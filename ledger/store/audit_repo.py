"""SQL for the Merkle tree and checkpoints of each community's log (tables of migration 0008)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from psycopg import Cursor
from psycopg.rows import TupleRow

from ledger.store.db import Conn

LOGS = """
SELECT c.community_id, c.origin, coalesce(k.size, 0)
FROM community c
LEFT JOIN LATERAL (
    SELECT size FROM log_checkpoint WHERE community_id = c.community_id ORDER BY size DESC LIMIT 1
) k ON true
ORDER BY c.community_id
"""
ORIGIN = "SELECT origin FROM community WHERE community_id = %s"
HEAD_SIZE = "SELECT size FROM log_head WHERE community_id = %s"
LOCK_TREE = "SELECT size, root FROM log_tree WHERE community_id = %s FOR UPDATE"
NEW_TREE = "INSERT INTO log_tree (community_id, size, root) VALUES (%s, 0, %s) ON CONFLICT DO NOTHING"
SET_TREE = "UPDATE log_tree SET size = %s, root = %s WHERE community_id = %s"
TREE = "SELECT size, root FROM log_tree WHERE community_id = %s"
LEAF_HASHES = """
SELECT idx, leaf_hash FROM log_leaf WHERE community_id = %s AND idx >= %s AND idx < %s ORDER BY idx
"""
NODES = """
SELECT n.level, n.idx, n.hash
FROM unnest(%s::int2[], %s::int8[]) AS q(level, idx)
JOIN log_node n ON n.community_id = %s AND n.level = q.level AND n.idx = q.idx
"""
LEAVES_AT = "SELECT idx, leaf_hash FROM log_leaf WHERE community_id = %s AND idx = ANY(%s)"
ENTRIES = """
SELECT idx, leaf, leaf_hash FROM log_leaf WHERE community_id = %s AND idx >= %s AND idx < %s ORDER BY idx
"""
LATEST_CHECKPOINT = """
SELECT size, root, note, signed_at FROM log_checkpoint WHERE community_id = %s ORDER BY size DESC LIMIT 1
"""
CHECKPOINTS = "SELECT size, root, note, signed_at FROM log_checkpoint WHERE community_id = %s ORDER BY size"
CHECKPOINT_AT = "SELECT size, root, note, signed_at FROM log_checkpoint WHERE community_id = %s AND size = %s"
COPY_NODES = "COPY log_node (community_id, level, idx, hash) FROM STDIN (FORMAT BINARY)"
STORE_CHECKPOINT = """
INSERT INTO log_checkpoint (community_id, size, root, note, signed_at) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (community_id, size) DO UPDATE SET note = EXCLUDED.note, signed_at = EXCLUDED.signed_at
"""


def nodes(conn: Conn, community_id: int, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored hashes of ``wanted`` perfect subtrees, level 0 read from the leaves, in two queries."""
    found: dict[tuple[int, int], bytes] = {}
    leaves = [i for level, i in wanted if level == 0]
    inner = [(level, i) for level, i in wanted if level > 0]
    if leaves:
        for idx, digest in conn.execute(LEAVES_AT, (community_id, leaves)):
            found[(0, int(idx))] = bytes(digest)
    if inner:
        params = ([lv for lv, _ in inner], [i for _, i in inner], community_id)
        for level, idx, digest in conn.execute(NODES, params):
            found[(int(level), int(idx))] = bytes(digest)
    return found


def leaf_hashes(conn: Conn, community_id: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    cur: Cursor[TupleRow] = conn.cursor()
    for idx, digest in cur.stream(LEAF_HASHES, (community_id, start, end)):
        yield int(idx), bytes(digest)


def copy_nodes(conn: Conn, community_id: int, rows: Iterable[tuple[int, int, bytes]]) -> None:
    with conn.cursor().copy(COPY_NODES) as cp:
        cp.set_types(["int8", "int2", "int8", "bytea"])
        for level, idx, digest in rows:
            cp.write_row((community_id, level, idx, digest))
