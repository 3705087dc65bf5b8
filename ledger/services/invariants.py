"""Ledger invariants of one community, recomputed from its rows: balances, lots, postings, the log."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from ledger.audit.jcs import CanonicalError
from ledger.audit.leaf import ZERO_HASH, decode_leaf, leaf_hash
from ledger.domain.times import to_us
from ledger.services.invariant_rules import CHECKS

__all__ = ["MAX_REPORTED_PER_CHECK", "check_community"]

#: A tampered database can break one rule for every row; the first few name the problem well enough.
MAX_REPORTED_PER_CHECK = 50

Row = tuple[Any, ...]


# Leaves in index order with the transfer each one records: one streamed pass checks the chain and
# compares every transfer leaf with its rows, in bounded memory however long the log is.
_LEAVES = """
SELECT l.idx, l.leaf, l.leaf_hash, l.transfer_id, t.transfer_id, t.kind, t.phase, t.effective_at,
       t.recorded_at, t.actor_id, t.idempotency_key, t.reverses_id, t.pending_id, t.timeout_at,
       (SELECT array_agg(ARRAY[p.account_id::text, p.unit, p.amount::text] ORDER BY p.seq)
          FROM posting p WHERE p.community_id = l.community_id AND p.transfer_id = l.transfer_id)
FROM log_leaf l
LEFT JOIN transfer t ON t.community_id = l.community_id AND t.transfer_id = l.transfer_id
WHERE l.community_id = %(c)s
ORDER BY l.idx
"""
_COMMUNITY = """
SELECT c.origin, h.size, h.last_hash FROM community c
LEFT JOIN log_head h ON h.community_id = c.community_id
WHERE c.community_id = %(c)s
"""


def check_community(conn: psycopg.Connection[Any], community_id: int) -> list[str]:
    """Return every broken ledger invariant of ``community_id`` as a message; ``[]`` means all hold.

    Runs in one REPEATABLE READ, READ ONLY snapshot (rolled back at the end) when ``conn`` is idle, so
    that balances and postings written concurrently are seen consistently; inside a caller's
    transaction it uses that transaction's view. Each rule reports at most MAX_REPORTED_PER_CHECK
    violations. Messages name indices, ids, units and amounts only, never personal data.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return _check(conn, community_id)
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _check(conn, community_id)


def _check(conn: psycopg.Connection[Any], community_id: int) -> list[str]:
    cur = conn.cursor(row_factory=tuple_row)
    head = cur.execute(_COMMUNITY, {"c": community_id}).fetchone()
    if head is None:
        return [f"community {community_id} does not exist"]
    origin, head_size, head_hash = head
    violations: list[str] = []
    params = {"c": community_id, "limit": MAX_REPORTED_PER_CHECK + 1}
    for check in CHECKS:
        rows = cur.execute(check.sql, params).fetchall()
        violations.extend(_capped(check.name, [check.describe(r) for r in rows]))
    chain = _Chain(str(origin))
    # Read the whole log even once the leaf messages are capped: the head is compared with its end.
    leaf_violations: list[str] = []
    for row in conn.cursor(row_factory=tuple_row).stream(_LEAVES, {"c": community_id}):
        for message in chain.add(row):
            if len(leaf_violations) <= MAX_REPORTED_PER_CHECK:
                leaf_violations.append(message)
    violations.extend(_capped("log chain", leaf_violations))
    violations.extend(chain.finish(head_size, None if head_hash is None else bytes(head_hash)))
    return violations


def _capped(name: str, messages: list[str]) -> list[str]:
    if len(messages) <= MAX_REPORTED_PER_CHECK:
        return messages
    return [*messages[:MAX_REPORTED_PER_CHECK], f"{name}: further violations not shown"]


class _Chain:
    """Walks a log in index order: contiguous indices from 0, stored hashes, canonical leaves with the
    right index, prev and origin, transfer leaves equal to their rows, and finally the head."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.expected_idx = 0
        self.count = 0
        # The hash recomputed from the previous leaf's bytes, never the stored one: an edited leaf
        # whose stored hash was "fixed" still breaks the link from the next leaf.
        self.prev = ZERO_HASH

    def add(self, row: Row) -> list[str]:
        idx, raw_leaf, stored_hash = row[0], bytes(row[1]), bytes(row[2])
        out: list[str] = []
        if idx != self.expected_idx:
            out.append(f"leaf {idx}: expected index {self.expected_idx} (gap or reordering)")
        computed = leaf_hash(raw_leaf)
        if stored_hash != computed:
            out.append(f"leaf {idx}: stored leaf_hash is not SHA-256(0x00 || leaf)")
        out.extend(self._leaf(idx, raw_leaf, row))
        self.prev = computed
        self.expected_idx = idx + 1
        self.count += 1
        return out

    def _leaf(self, idx: int, raw_leaf: bytes, row: Row) -> list[str]:
        try:
            leaf = decode_leaf(raw_leaf)
        except CanonicalError as exc:
            # CanonicalError messages carry a path and a byte offset, never the offending text.
            return [f"leaf {idx}: not a canonical leaf ({exc})"]
        out: list[str] = []
        if leaf["index"] != idx:
            out.append(f'leaf {idx}: its "index" field is {leaf["index"]}')
        if leaf["prev"] != self.prev.hex():
            out.append(f'leaf {idx}: "prev" is not the hash of the leaf before it')
        if leaf["origin"] != self.origin:
            out.append(f'leaf {idx}: "origin" is not this community\'s')
        leaf_transfer_id, transfer_id = row[3], row[4]
        if leaf_transfer_id is None:
            if leaf.get("type") == "transfer":
                out.append(f"leaf {idx}: a transfer leaf linked to no transfer")
        elif transfer_id is None:
            out.append(f"leaf {idx}: names transfer {leaf_transfer_id}, which does not exist")
        else:
            differing = [k for k, v in _transfer_fields(row).items() if leaf.get(k, _MISSING) != v]
            if differing:
                out.append(f"leaf {idx}: {', '.join(differing)} differ from transfer {transfer_id}")
        return out

    def finish(self, head_size: int | None, head_hash: bytes | None) -> list[str]:
        if head_size is None or head_hash is None:
            return ["log head is missing"]
        out: list[str] = []
        if head_size != self.count or head_size != self.expected_idx:
            out.append(
                f"log head: size {head_size} but the log has {self.count} leaves, "
                f"the last at index {self.expected_idx - 1}"
            )
        if head_hash != self.prev:
            out.append("log head: last_hash is not the hash of the last leaf")
        return out


_MISSING = object()


def _transfer_fields(row: Row) -> dict[str, object]:
    """What a transfer leaf must hold (see ledger.audit.leaf.transfer_leaf_body), from its rows."""
    (transfer_id, kind, phase, effective_at, recorded_at, actor_id, key, reverses_id, pending_id,
     timeout_at, postings) = row[4:]  # fmt: skip
    return {
        "type": "transfer",
        "id": str(transfer_id),
        "kind": kind,
        "phase": phase,
        "effective_us": to_us(effective_at),
        "recorded_us": to_us(recorded_at),
        "actor": _opt_str(actor_id),
        "idempotency_key": key,
        # array_agg over no rows is NULL; the stored amounts come back as text inside the array.
        "postings": [[account, unit, int(amount)] for account, unit, amount in postings or ()],
        "reverses": _opt_str(reverses_id),
        "pending_id": _opt_str(pending_id),
        "timeout_us": to_us(timeout_at),
    }


def _opt_str(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
