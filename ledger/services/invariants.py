"""Ledger invariants of one community, recomputed from its rows: balances, lots, postings, the log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from ledger.audit.jcs import CanonicalError
from ledger.audit.leaf import ZERO_HASH, decode_leaf, leaf_hash
from ledger.store.ledger_repo import to_us

__all__ = ["MAX_REPORTED_PER_CHECK", "check_community"]

#: A tampered database can break one rule for every row; the first few name the problem well enough.
MAX_REPORTED_PER_CHECK = 50

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Check:
    """One set-based rule: ``sql`` returns the rows that break it, ``describe`` says how (ids and
    numbers only: violation text goes to logs and auditors' reports, never personal data)."""

    name: str
    sql: str
    describe: Callable[[Row], str]


_CHECKS: tuple[_Check, ...] = (
    _Check(
        "zero-sum",
        """
        SELECT transfer_id, unit, sum(amount) FROM posting WHERE community_id = %(c)s
        GROUP BY transfer_id, unit HAVING sum(amount) <> 0
        ORDER BY transfer_id, unit LIMIT %(limit)s
        """,
        lambda r: f"transfer {r[0]}: {r[1]} postings sum to {r[2]}, not 0",
    ),
    _Check(
        "transfer without postings",
        """
        SELECT t.transfer_id FROM transfer t
        WHERE t.community_id = %(c)s AND NOT EXISTS (
            SELECT 1 FROM posting p WHERE p.community_id = t.community_id AND p.transfer_id = t.transfer_id)
        ORDER BY t.transfer_id LIMIT %(limit)s
        """,
        lambda r: f"transfer {r[0]} has no postings",
    ),
    _Check(
        # A posting's phase decides which balance component it moves; its unit must be its account's.
        "posting shape",
        """
        SELECT p.transfer_id, p.seq, p.phase <> t.phase, p.unit <> a.unit,
               a.flags & 2 <> 0 AND (p.balance_after IS NOT NULL OR p.account_version IS NOT NULL)
        FROM posting p
        JOIN transfer t ON t.community_id = p.community_id AND t.transfer_id = p.transfer_id
        JOIN account a ON a.community_id = p.community_id AND a.account_id = p.account_id
        WHERE p.community_id = %(c)s
          AND (p.phase <> t.phase OR p.unit <> a.unit
               OR (a.flags & 2 <> 0 AND (p.balance_after IS NOT NULL OR p.account_version IS NOT NULL)))
        ORDER BY p.transfer_id, p.seq LIMIT %(limit)s
        """,
        lambda r: (
            f"transfer {r[0]} posting {r[1]}: "
            + ", ".join(
                what
                for what, bad in (
                    ("phase differs from its transfer's", r[2]),
                    ("unit differs from its account's", r[3]),
                    ("hot account posting carries a running balance", r[4]),
                )
                if bad
            )
        ),
    ),
    _Check(
        # Hot accounts spread over ``buckets`` rows 0..n-1; others have the single row 0. The floor
        # column backs the non-negative rule with a CHECK constraint, so it must say -credit_limit.
        "balance rows",
        """
        SELECT a.account_id, a.buckets, count(b.bucket), min(b.bucket), max(b.bucket),
               bool_and(b.floor IS NOT DISTINCT FROM
                        CASE WHEN a.flags & 1 <> 0 THEN -a.credit_limit END)
        FROM account a
        LEFT JOIN balance b ON b.community_id = a.community_id AND b.account_id = a.account_id
        WHERE a.community_id = %(c)s
        GROUP BY a.account_id, a.buckets, a.flags
        HAVING count(b.bucket) <> a.buckets OR min(b.bucket) <> 0 OR max(b.bucket) <> a.buckets - 1
            OR (a.flags & 2 = 0 AND a.buckets <> 1)
            OR NOT bool_and(b.floor IS NOT DISTINCT FROM CASE WHEN a.flags & 1 <> 0 THEN -a.credit_limit END)
        ORDER BY a.account_id LIMIT %(limit)s
        """,
        lambda r: (
            f"account {r[0]}: balance rows do not match its {r[1]} bucket(s) and floor "
            f"(rows {r[2]}, buckets {r[3]}..{r[4]}, floors consistent: {r[5]})"
        ),
    ),
    _Check(
        "balance equals postings",
        # Pending transfers are unresolved until a post or void names them as its pending_id.
        """
        WITH resolved AS (
            SELECT DISTINCT pending_id FROM transfer WHERE community_id = %(c)s AND pending_id IS NOT NULL
        ),
        sums AS (
            SELECT p.account_id,
                   coalesce(sum(p.amount) FILTER (WHERE p.phase IN ('single', 'post')), 0) AS posted,
                   coalesce(sum(p.amount) FILTER (WHERE p.phase = 'pending' AND p.amount > 0
                                                  AND r.pending_id IS NULL), 0) AS pending_in,
                   coalesce(sum(-p.amount) FILTER (WHERE p.phase = 'pending' AND p.amount < 0
                                                   AND r.pending_id IS NULL), 0) AS pending_out,
                   count(*) AS postings
            FROM posting p LEFT JOIN resolved r ON r.pending_id = p.transfer_id
            WHERE p.community_id = %(c)s
            GROUP BY p.account_id
        ),
        bal AS (
            SELECT account_id, sum(posted) AS posted, sum(pending_in) AS pending_in,
                   sum(pending_out) AS pending_out, sum(version) AS version
            FROM balance WHERE community_id = %(c)s GROUP BY account_id
        )
        SELECT a.account_id, b.posted, b.pending_in, b.pending_out, b.version,
               coalesce(s.posted, 0), coalesce(s.pending_in, 0), coalesce(s.pending_out, 0),
               coalesce(s.postings, 0)
        FROM account a
        LEFT JOIN bal b ON b.account_id = a.account_id
        LEFT JOIN sums s ON s.account_id = a.account_id
        WHERE a.community_id = %(c)s
          AND ((b.posted, b.pending_in, b.pending_out) IS DISTINCT FROM
                   (coalesce(s.posted, 0), coalesce(s.pending_in, 0), coalesce(s.pending_out, 0))
               -- Only non-hot accounts: a future batch path may bump a hot bucket once for many postings.
               OR (a.flags & 2 = 0 AND b.version IS DISTINCT FROM coalesce(s.postings, 0)))
        ORDER BY a.account_id LIMIT %(limit)s
        """,
        lambda r: (
            f"account {r[0]}: balance (posted, pending_in, pending_out, version) = "
            f"({r[1]}, {r[2]}, {r[3]}, {r[4]}) but its postings give "
            f"({r[5]}, {r[6]}, {r[7]}, {r[8]} postings)"
        ),
    ),
    _Check(
        "non-negative floor",
        """
        SELECT a.account_id, sum(b.posted - b.pending_out), a.credit_limit
        FROM account a JOIN balance b ON b.community_id = a.community_id AND b.account_id = a.account_id
        WHERE a.community_id = %(c)s AND a.flags & 1 <> 0
        GROUP BY a.account_id, a.credit_limit
        HAVING sum(b.posted - b.pending_out) < -a.credit_limit
        ORDER BY a.account_id LIMIT %(limit)s
        """,
        lambda r: f"account {r[0]}: available {r[1]} is below its floor {-r[2]}",
    ),
    _Check(
        # History is a read, not a recomputation, only if every stored running balance is right.
        # One row per account (the first wrong posting): a gap would otherwise flag all later ones.
        "running balance",
        """
        SELECT DISTINCT ON (account_id) account_id, transfer_id, n, account_version, running, balance_after
        FROM (
            SELECT p.account_id, p.transfer_id, p.account_version, p.balance_after,
                   row_number() OVER w AS n,
                   sum(CASE WHEN p.phase IN ('single', 'post') THEN p.amount ELSE 0 END) OVER w AS running
            FROM posting p
            JOIN account a ON a.community_id = p.community_id AND a.account_id = p.account_id
            WHERE p.community_id = %(c)s AND a.flags & 2 = 0
            WINDOW w AS (PARTITION BY p.account_id ORDER BY p.account_version, p.transfer_id
                         ROWS UNBOUNDED PRECEDING)
        ) x
        WHERE account_version IS DISTINCT FROM n OR balance_after IS DISTINCT FROM running
        ORDER BY account_id, n LIMIT %(limit)s
        """,
        lambda r: (
            f"account {r[0]}: posting of transfer {r[1]} is number {r[2]} in version order but has "
            f"version {r[3]}, and the running posted balance is {r[4]} but balance_after is {r[5]}"
        ),
    ),
    _Check(
        # A non-hot account's row lock is held until commit, and the leaf is appended before the
        # commit, so its postings' versions must follow log order; otherwise history was reordered.
        "versions follow the log",
        """
        SELECT DISTINCT ON (account_id) account_id, transfer_id, idx, prev_idx
        FROM (
            SELECT p.account_id, p.transfer_id, l.idx,
                   lag(l.idx) OVER (PARTITION BY p.account_id ORDER BY p.account_version) AS prev_idx
            FROM posting p
            JOIN account a ON a.community_id = p.community_id AND a.account_id = p.account_id
            JOIN log_leaf l ON l.community_id = p.community_id AND l.transfer_id = p.transfer_id
            WHERE p.community_id = %(c)s AND a.flags & 2 = 0
        ) x
        WHERE idx < prev_idx
        ORDER BY account_id, idx LIMIT %(limit)s
        """,
        lambda r: f"account {r[0]}: transfer {r[1]} (leaf {r[2]}) has a later version than leaf {r[3]}",
    ),
    _Check(
        "lot remaining",
        """
        SELECT l.lot_id, l.amount, l.remaining, coalesce(m.moved, 0)
        FROM lot l
        LEFT JOIN (SELECT lot_id, sum(amount) AS moved FROM lot_movement WHERE community_id = %(c)s
                   GROUP BY lot_id) m ON m.lot_id = l.lot_id
        WHERE l.community_id = %(c)s AND l.remaining <> l.amount + coalesce(m.moved, 0)
        ORDER BY l.lot_id LIMIT %(limit)s
        """,
        lambda r: f"lot {r[0]}: remaining {r[2]} but amount {r[1]} plus movements {r[3]} is {r[1] + r[3]}",
    ),
    _Check(
        "lots cover available",
        """
        SELECT a.account_id, coalesce(lr.total, 0), b.available
        FROM account a
        JOIN (SELECT account_id, sum(posted - pending_out) AS available FROM balance
              WHERE community_id = %(c)s GROUP BY account_id) b ON b.account_id = a.account_id
        LEFT JOIN (SELECT account_id, sum(remaining) AS total FROM lot WHERE community_id = %(c)s
                   GROUP BY account_id) lr ON lr.account_id = a.account_id
        WHERE a.community_id = %(c)s AND a.flags & 4 <> 0 AND coalesce(lr.total, 0) <> b.available
        ORDER BY a.account_id LIMIT %(limit)s
        """,
        lambda r: f"account {r[0]}: lots hold {r[1]} but available is {r[2]}",
    ),
    _Check(
        # A lot is created by one credit posting to a lot-holding account, for that posting's amount
        # and expiry; a movement touches only lots of its own posting's account.
        "lot provenance",
        """
        SELECT 'lot', l.lot_id, l.transfer_id, l.seq
        FROM lot l
        LEFT JOIN posting p ON p.community_id = l.community_id AND p.transfer_id = l.transfer_id
                           AND p.seq = l.seq
        LEFT JOIN account a ON a.community_id = l.community_id AND a.account_id = l.account_id
        WHERE l.community_id = %(c)s
          AND (p.account_id IS DISTINCT FROM l.account_id OR p.amount IS DISTINCT FROM l.amount
               OR p.expires_at IS DISTINCT FROM l.expires_at OR a.flags & 4 = 0)
        UNION ALL
        SELECT 'movement', m.lot_id, m.transfer_id, m.seq
        FROM lot_movement m
        JOIN posting p ON p.community_id = m.community_id AND p.transfer_id = m.transfer_id AND p.seq = m.seq
        JOIN lot l ON l.community_id = m.community_id AND l.lot_id = m.lot_id
        WHERE m.community_id = %(c)s AND p.account_id <> l.account_id
        ORDER BY 1, 2, 3 LIMIT %(limit)s
        """,
        lambda r: f"{r[0]} of lot {r[1]} does not match posting {r[3]} of transfer {r[2]}",
    ),
    _Check(
        "one leaf per transfer",
        """
        SELECT t.transfer_id, count(l.idx)
        FROM transfer t
        LEFT JOIN log_leaf l ON l.community_id = t.community_id AND l.transfer_id = t.transfer_id
        WHERE t.community_id = %(c)s
        GROUP BY t.transfer_id HAVING count(l.idx) <> 1
        ORDER BY t.transfer_id LIMIT %(limit)s
        """,
        lambda r: f"transfer {r[0]} has {r[1]} log leaves, not 1",
    ),
    _Check(
        # A reversal is the exact mirror, posting by posting, of a single or post transfer.
        "reversal mirrors original",
        """
        WITH agg AS (
            SELECT transfer_id,
                   array_agg(ARRAY[account_id::text, unit, amount::text] ORDER BY seq) AS ps,
                   array_agg(ARRAY[account_id::text, unit, (-amount)::text] ORDER BY seq) AS mirror
            FROM posting WHERE community_id = %(c)s GROUP BY transfer_id
        )
        SELECT r.transfer_id, r.reverses_id
        FROM transfer r
        JOIN transfer o ON o.community_id = r.community_id AND o.transfer_id = r.reverses_id
        LEFT JOIN agg ra ON ra.transfer_id = r.transfer_id
        LEFT JOIN agg oa ON oa.transfer_id = o.transfer_id
        WHERE r.community_id = %(c)s
          AND (r.phase <> 'single' OR o.phase NOT IN ('single', 'post') OR ra.ps IS DISTINCT FROM oa.mirror)
        ORDER BY r.transfer_id LIMIT %(limit)s
        """,
        lambda r: f"reversal {r[0]} is not the mirror of a posted transfer {r[1]}",
    ),
    _Check(
        # A post or void names the pending's accounts and units; a void releases exactly what was
        # reserved, a post at most that much, with the same sign.
        "resolution matches pending",
        """
        SELECT r.transfer_id, r.pending_id
        FROM transfer r
        JOIN transfer o ON o.community_id = r.community_id AND o.transfer_id = r.pending_id
        CROSS JOIN LATERAL (
            SELECT count(*) AS bad FROM
                (SELECT account_id, unit, amount FROM posting
                 WHERE community_id = r.community_id AND transfer_id = r.transfer_id) rp
                FULL JOIN
                (SELECT account_id, unit, amount FROM posting
                 WHERE community_id = o.community_id AND transfer_id = o.transfer_id) op
                ON rp.account_id = op.account_id
            WHERE rp.account_id IS NULL OR op.account_id IS NULL OR rp.unit <> op.unit
               OR sign(rp.amount) <> sign(op.amount) OR abs(rp.amount) > abs(op.amount)
               OR (r.phase = 'void' AND rp.amount <> op.amount)
        ) x
        WHERE r.community_id = %(c)s
          AND (o.phase <> 'pending' OR r.phase NOT IN ('post', 'void') OR x.bad > 0)
        ORDER BY r.transfer_id LIMIT %(limit)s
        """,
        lambda r: f"resolution {r[0]} does not match its pending transfer {r[1]}",
    ),
)

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
    for check in _CHECKS:
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
