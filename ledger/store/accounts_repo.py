"""SQL for account reads: lists, one account with its balance, statements, lots, communities."""

from __future__ import annotations

from ledger.store.ledger_repo import SORTED_IDS

ACCOUNT = """
SELECT a.account_id, a.owner_kind, a.owner_id, a.code, a.unit, a.flags, a.credit_limit, a.created_at,
       sum(b.posted), sum(b.pending_in), sum(b.pending_out), sum(b.version)
FROM account a JOIN balance b USING (community_id, account_id)
WHERE a.community_id = %(c)s AND a.account_id = %(a)s
GROUP BY a.community_id, a.account_id
"""

# The same rows as ACCOUNT for several accounts of one community (concurrent reads, coalesced), each
# looked up on its own whatever the statistics say (see ledger_repo.ACCOUNTS).
ACCOUNTS_BY_ID = f"""
SELECT r.*
FROM {SORTED_IDS}
CROSS JOIN LATERAL (
    SELECT a.account_id, a.owner_kind, a.owner_id, a.code, a.unit, a.flags, a.credit_limit, a.created_at,
           sum(b.posted), sum(b.pending_in), sum(b.pending_out), sum(b.version)
    FROM account a JOIN balance b USING (community_id, account_id)
    WHERE a.community_id = %(c)s AND a.account_id = i.id
    GROUP BY a.community_id, a.account_id
) AS r
"""  # noqa: S608 - joins a constant of ledger_repo, no input

# Keyset pagination on account_id; every filter is optional (NULL matches all).
ACCOUNTS = """
SELECT a.account_id, a.owner_kind, a.owner_id, a.code, a.unit, a.flags, a.credit_limit, a.created_at,
       sum(b.posted), sum(b.pending_in), sum(b.pending_out), sum(b.version)
FROM account a JOIN balance b USING (community_id, account_id)
WHERE a.community_id = %(c)s
  AND (%(after)s::uuid IS NULL OR a.account_id > %(after)s::uuid)
  AND (%(owner_kind)s::text IS NULL OR a.owner_kind = %(owner_kind)s::text)
  AND (%(owner_id)s::uuid IS NULL OR a.owner_id = %(owner_id)s::uuid)
  AND (%(unit)s::text IS NULL OR a.unit = %(unit)s::text)
GROUP BY a.community_id, a.account_id
ORDER BY a.account_id
LIMIT %(limit)s
"""

# Newest first; keyset on transfer_id (UUIDv7: time-ordered).
STATEMENT = """
SELECT p.transfer_id, p.seq, t.kind, p.phase, t.effective_at, t.recorded_at, p.amount, p.balance_after,
       p.expires_at, t.reverses_id, t.pending_id, t.actor_id
FROM posting p JOIN transfer t USING (community_id, transfer_id)
WHERE p.community_id = %(c)s AND p.account_id = %(a)s
  AND (%(before)s::uuid IS NULL OR p.transfer_id < %(before)s::uuid)
  AND (%(kind)s::text IS NULL OR t.kind = %(kind)s::text)
  AND (%(from)s::timestamptz IS NULL OR t.effective_at >= %(from)s::timestamptz)
  AND (%(to)s::timestamptz IS NULL OR t.effective_at < %(to)s::timestamptz)
ORDER BY p.transfer_id DESC
LIMIT %(limit)s
"""

LOTS = """
SELECT lot_id, transfer_id, amount, remaining, earned_at, expires_at
FROM lot
WHERE community_id = %(c)s AND account_id = %(a)s AND (%(open)s = false OR remaining > 0)
ORDER BY expires_at NULLS LAST, earned_at, lot_id
LIMIT %(limit)s
"""

COMMUNITY = """
SELECT community_id, region_id, code, name, origin, created_at FROM community WHERE community_id = %s
"""
COMMUNITIES = """
SELECT community_id, region_id, code, name, origin, created_at FROM community
WHERE community_id = ANY(%(ids)s) OR region_id = ANY(%(regions)s)
ORDER BY community_id
"""
TRANSFER_ACCOUNTS = "SELECT account_id FROM posting WHERE community_id = %s AND transfer_id = %s"
