"""SQL for the batch path: COPY straight into the append-only tables, set-based updates.

COPY goes directly into the final tables rather than through stage tables: they are append-only,
so there is nothing to merge, and staging would write every row twice. Only the idempotency keys
are claimed from arrays in one statement. Postings, streamed while the batch is computed (when
Python is the slower side), use COPY's text form, cheaper to build in Python; transfers, lots and
leaves, written after the computation (when the server is the slower side), use the binary form,
which the server need not parse.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

from psycopg.types.json import Jsonb

from ledger.domain.balances import BalanceState
from ledger.domain.engine import AccountInfo
from ledger.domain.lots import LotState
from ledger.store.db import Conn
from ledger.store.ledger_repo import SORTED_IDS, account_infos, balance_states

# Claims a batch's keys in one statement; the keys it returns are this batch's, the others were used
# before. The columns come as comma-joined text (keys never contain a comma: see
# ledger.domain.transfers._KEY_RE), which the server splits: psycopg adapts a Python list element
# by element, which cost ~0.15 s per 10,000 keys.
CLAIM_KEYS = """
INSERT INTO idempotency (community_id, key, request_hash, transfer_id)
SELECT %s, k.key, decode(k.hash, 'hex'), k.transfer_id::uuid
FROM unnest(string_to_array(%s, ','), string_to_array(%s, ','), string_to_array(%s, ','))
    AS k (key, hash, transfer_id)
ON CONFLICT DO NOTHING RETURNING key
"""
READ_KEYS = """
SELECT key, request_hash, transfer_id, error FROM idempotency WHERE community_id = %s AND key = ANY(%s)
"""
# The bucket a batch adds to in each hot account it touches, locked before the log head.
# Each id looked up on its own, in account order (see ledger_repo.ACCOUNTS).
LOCK_HOT_BUCKETS = f"""
SELECT b.account_id
FROM {SORTED_IDS}
CROSS JOIN LATERAL (
    SELECT b.account_id FROM account a JOIN balance b USING (community_id, account_id)
    WHERE a.community_id = %(c)s AND a.account_id = i.id AND a.flags & 2 <> 0
      AND b.bucket = %(bucket)s %% a.buckets
    FOR UPDATE OF b
) AS b
"""  # noqa: S608 - joins a constant of ledger_repo, no input
LOCK_HEAD = "SELECT size, last_hash FROM log_head WHERE community_id = %s FOR UPDATE"
SET_HEAD = "UPDATE log_head SET size = %s, last_hash = %s WHERE community_id = %s"


def copy_text(conn: Conn, statement: str, lines: Sequence[str]) -> None:
    """COPY rows already formatted as COPY text lines (tab-separated, newline-terminated)."""
    if not lines:
        return
    with conn.cursor().copy(statement) as cp:
        for start in range(0, len(lines), 5000):
            cp.write("".join(lines[start : start + 5000]))


def jsonb(value: dict[str, object]) -> Jsonb:
    """A transfer's metadata for the binary COPY (one shared value for the usual empty metadata)."""
    return Jsonb(value) if value else _EMPTY_JSONB


_EMPTY_JSONB = Jsonb({})


def json_text(value: dict[str, object]) -> str:
    """A transfer's metadata as JSON text for a text row (see _FROM_LINES): ASCII, and no raw
    control character (json escapes them), so never a tab or a newline."""
    return json.dumps(value, separators=(",", ":")) if value else "{}"


def copy_binary(conn: Conn, statement: str, types: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """COPY rows in the binary form: the server has no text to parse (timestamps above all), which
    matters for the tables written after a batch's computation, while Python waits for the server."""
    if not rows:
        return
    with conn.cursor().copy(statement) as cp:
        cp.set_types(list(types))
        for row in rows:
            cp.write_row(row)


def copy_leaves(
    conn: Conn,
    community_id: int,
    first_index: int,
    leaves: Sequence[bytes],
    hashes: Sequence[bytes],
    transfer_ids: Sequence[uuid.UUID],
) -> None:
    """COPY consecutive leaves of one log, from index ``first_index``, with their hashes."""
    if not leaves:
        return
    with conn.cursor().copy(COPY_LEAVES) as cp:
        cp.set_types(list(LEAF_TYPES))
        n = len(leaves)
        indexes = range(first_index, first_index + n)
        for row in zip(repeat(community_id, n), indexes, leaves, hashes, transfer_ids, strict=True):
            cp.write_row(row)


COPY_POSTINGS = (
    "COPY posting (community_id, transfer_id, seq, account_id, unit, phase, amount, balance_after,"
    " account_version, expires_at) FROM STDIN"
)
# Transfers and lots go in the binary form (copy_binary), with these column types; a transfer's
# metadata as psycopg's Jsonb.
COPY_TRANSFERS = (
    "COPY transfer (community_id, transfer_id, kind, phase, effective_at, recorded_at, actor_id,"
    " idempotency_key, metadata) FROM STDIN (FORMAT BINARY)"
)
TRANSFER_TYPES = ("int8", "uuid", "text", "text", "timestamptz", "timestamptz", "uuid", "text", "jsonb")
COPY_LOTS = (
    "COPY lot (community_id, lot_id, account_id, transfer_id, seq, amount, remaining, earned_at,"
    " expires_at) FROM STDIN (FORMAT BINARY)"
)
LOT_TYPES = ("int8", "uuid", "uuid", "uuid", "int2", "int8", "int8", "timestamptz", "timestamptz")
COPY_MOVEMENTS = "COPY lot_movement (community_id, transfer_id, seq, lot_id, amount) FROM STDIN"

COPY_LEAVES = "COPY log_leaf (community_id, idx, leaf, leaf_hash, transfer_id) FROM STDIN (FORMAT BINARY)"
LEAF_TYPES = ("int8", "int8", "bytea", "bytea", "uuid")

# A small batch (a group of concurrent posts) writes everything in one statement, last before its
# commit: the rows, the balances, then its leaves chained under the log head's lock (migration 0014,
# whose docstring gives each text's lines).
WRITE_GROUP = "SELECT first_index, hashes FROM vledger_write_group(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
# A small batch's claims, reads and locks in one statement (migration 0015); its answer's lines are
# read by group_reads().
GROUP_READS = "SELECT line FROM vledger_group_reads(%s, %s, %s, %s, %s, %s, %s) AS line"


@dataclass(frozen=True, slots=True)
class GroupReads:
    """What a batch read and locked before computing: the same for both ways of reading it."""

    origin: str | None  # None: no such community
    claimed: frozenset[str]  # the keys this batch claimed (the others were used before)
    accounts: dict[uuid.UUID, AccountInfo]
    balances: dict[uuid.UUID, BalanceState]  # the locked rows of the non-hot accounts
    lots: dict[uuid.UUID, list[LotState]]  # the open lots of the debited accounts


def group_reads(lines: Iterable[tuple[str]]) -> GroupReads:
    """Read the lines of vledger_group_reads (migration 0015 documents them)."""
    origin: str | None = None
    claimed: set[str] = set()
    accounts: list[tuple[object, ...]] = []
    balances: list[tuple[uuid.UUID, int, int, int, int]] = []
    lots: dict[uuid.UUID, list[LotState]] = {}
    for (line,) in lines:
        kind, _, rest = line.partition("\t")
        if kind == "k":
            claimed.add(rest)
            continue
        if kind == "o":
            origin = rest
            continue
        f = rest.split("\t")
        if kind == "a":
            accounts.append((uuid.UUID(f[0]), f[1], int(f[2]), int(f[3]), int(f[4])))
        elif kind == "b":
            balances.append((uuid.UUID(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4])))
        elif kind == "l":
            expires = None if f[3] == "\\N" else int(f[3])
            lots.setdefault(uuid.UUID(f[0]), []).append(
                LotState(uuid.UUID(f[1]), int(f[2]), expires, int(f[4]))
            )
        # "h": a hot bucket locked; nothing to read
    infos = account_infos(accounts)
    return GroupReads(origin, frozenset(claimed), infos, balance_states(balances, infos), lots)
