"""The set-based ledger rules of one community: each is a query returning the rows that break it.

Used by ``ledger.services.invariants.check_community``. Every query takes ``%(c)s`` (the community)
and ``%(limit)s`` (how many violations to return at most).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CHECKS", "Check"]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Check:
    """One set-based rule: ``sql`` returns the rows that break it, ``describe`` says how (ids and
    numbers only: violation text goes to logs and auditors' reports, never personal data)."""

    name: str
    sql: str
    describe: Callable[[Row], str]


CHECKS: tuple[Check, ...] = (
    Check(
        # The append-only tables carry no per-row foreign keys (migrations 0003, 0013): check them here.
        "references",
        """
        SELECT 'posting', p.transfer_id::text, p.seq, 'transfer' FROM posting p
        WHERE p.community_id = %(c)s AND NOT EXISTS (SELECT FROM transfer t
            WHERE t.community_id = p.community_id AND t.transfer_id = p.transfer_id)
        UNION ALL
        SELECT 'posting', p.transfer_id::text, p.seq, 'account' FROM posting p
        WHERE p.community_id = %(c)s AND NOT EXISTS (SELECT FROM account a
            WHERE a.community_id = p.community_id AND a.account_id = p.account_id)
        UNION ALL
        SELECT 'lot', l.lot_id::text, l.seq, 'posting' FROM lot l
        WHERE l.community_id = %(c)s AND NOT EXISTS (SELECT FROM posting p
            WHERE p.community_id = l.community_id AND p.transfer_id = l.transfer_id AND p.seq = l.seq)
        UNION ALL
        SELECT 'lot_movement', m.transfer_id::text, m.seq, 'posting' FROM lot_movement m
        WHERE m.community_id = %(c)s AND NOT EXISTS (SELECT FROM posting p
            WHERE p.community_id = m.community_id AND p.transfer_id = m.transfer_id AND p.seq = m.seq)
        UNION ALL
        SELECT 'lot_movement', m.transfer_id::text, m.seq, 'lot' FROM lot_movement m
        WHERE m.community_id = %(c)s AND NOT EXISTS (SELECT FROM lot l
            WHERE l.community_id = m.community_id AND l.lot_id = m.lot_id)
        UNION ALL
        SELECT 'log_leaf', l.idx::text, 0, 'transfer' FROM log_leaf l
        WHERE l.community_id = %(c)s AND l.transfer_id IS NOT NULL AND NOT EXISTS (SELECT FROM transfer t
            WHERE t.community_id = l.community_id AND t.transfer_id = l.transfer_id)
        UNION ALL
        SELECT 'idempotency', i.transfer_id::text, 0, 'transfer' FROM idempotency i
        WHERE i.community_id = %(c)s AND i.transfer_id IS NOT NULL AND i.error IS NULL
          AND NOT EXISTS (SELECT FROM transfer t
            WHERE t.community_id = i.community_id AND t.transfer_id = i.transfer_id)
        UNION ALL
        -- Service records and their events carry none either (migration 0013).
        SELECT 'service_record_event', e.event_id::text, 0, 'service_record' FROM service_record_event e
        WHERE e.community_id = %(c)s AND NOT EXISTS (SELECT FROM service_record r
            WHERE r.community_id = e.community_id AND r.record_id = e.record_id)
        UNION ALL
        SELECT 'service_record', r.record_id::text, 0, 'person' FROM service_record r
        WHERE r.community_id = %(c)s AND NOT EXISTS (SELECT FROM person p
            WHERE p.community_id = r.community_id AND p.person_id = r.person_id)
        UNION ALL
        SELECT 'service_record', r.record_id::text, 0, 'activity' FROM service_record r
        WHERE r.community_id = %(c)s AND NOT EXISTS (SELECT FROM activity a
            WHERE a.community_id = r.community_id AND a.activity_id = r.activity_id)
        LIMIT %(limit)s
        """,
        lambda r: (
            f"{r[0]} {r[1]} (seq {r[2]}) refers to {'an' if r[3][0] in 'aeiou' else 'a'} {r[3]}"
            " that does not exist"
        ),
    ),
    Check(
        "zero-sum",
        """
        SELECT transfer_id, unit, sum(amount) FROM posting WHERE community_id = %(c)s
        GROUP BY transfer_id, unit HAVING sum(amount) <> 0
        ORDER BY transfer_id, unit LIMIT %(limit)s
        """,
        lambda r: f"transfer {r[0]}: {r[1]} postings sum to {r[2]}, not 0",
    ),
    Check(
        "transfer without postings",
        """
        SELECT t.transfer_id FROM transfer t
        WHERE t.community_id = %(c)s AND NOT EXISTS (
            SELECT 1 FROM posting p WHERE p.community_id = t.community_id AND p.transfer_id = t.transfer_id)
        ORDER BY t.transfer_id LIMIT %(limit)s
        """,
        lambda r: f"transfer {r[0]} has no postings",
    ),
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
    Check(
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
