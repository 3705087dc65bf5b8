r"""One statement claims a group's keys and reads and locks what it touches.

A group of concurrent posts (group commit) used to send six statements in its first round trip: the
key claims, the community's origin, the accounts, the balance rows locked, the open lots, the hot
buckets locked. Each was cheap, but each cost its protocol messages, its parse and bind, and its
client-side handling: measured on groups of 8 awards (scratch harness, claims rolled back), the six
statements cost the server ~1.31 ms and Python ~0.78 ms per group; the same work as one function
call, ~0.86 ms and ~0.43 ms.

``vledger_group_reads`` runs the same statements, in the same order, so the locks are taken in the
ledger's one order (claimed keys, non-hot balance rows in account order, then the hot buckets; the
log head is taken later, by ``vledger_write_group``). Each account is looked up by its key, from
the sorted distinct ids (see ledger_repo.ACCOUNTS). It answers tab-separated lines, one per row, by
kind:

- ``k`` key: a key this call claimed (the others were used before);
- ``o`` origin: the community's log origin (no line: no such community);
- ``a`` account, unit, flags, credit_limit, buckets;
- ``b`` account, posted, pending_in, pending_out, version: a non-hot balance row, locked;
- ``l`` account, lot, remaining, expires_at (µs since the epoch, ``\N``: never), earned_at (µs);
- ``h`` account: a hot account whose bucket ``hot_bucket % buckets`` is locked.

Keys, hashes and transfer ids come comma-joined, as CLAIM_KEYS takes them (keys never contain a
comma). SECURITY INVOKER: the runtime role's grants apply.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SIGNATURE = "vledger_group_reads(bigint, text, text, text, uuid[], uuid[], integer)"

FUNCTION = r"""
CREATE FUNCTION vledger_group_reads(
    c bigint, keys text, hashes text, transfers text, account_ids uuid[], debited uuid[], hot_bucket int
) RETURNS SETOF text
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    RETURN QUERY WITH claimed AS (
        INSERT INTO idempotency (community_id, key, request_hash, transfer_id)
        SELECT c, k.key, decode(k.hash, 'hex'), k.transfer_id::uuid
        FROM unnest(string_to_array(keys, ','), string_to_array(hashes, ','), string_to_array(transfers, ','))
            AS k (key, hash, transfer_id)
        ON CONFLICT DO NOTHING RETURNING key
    ) SELECT 'k' || E'\t' || claimed.key FROM claimed;

    RETURN QUERY SELECT 'o' || E'\t' || origin FROM community WHERE community_id = c;

    RETURN QUERY SELECT concat_ws(E'\t', 'a', a.account_id, a.unit, a.flags, a.credit_limit, a.buckets)
    FROM (SELECT DISTINCT u.id FROM unnest(account_ids) AS u (id) ORDER BY 1) AS i
    CROSS JOIN LATERAL (
        SELECT * FROM account a WHERE a.community_id = c AND a.account_id = i.id OFFSET 0
    ) AS a;

    RETURN QUERY SELECT concat_ws(E'\t', 'b', b.account_id, b.posted, b.pending_in, b.pending_out, b.version)
    FROM (SELECT DISTINCT u.id FROM unnest(account_ids) AS u (id) ORDER BY 1) AS i
    CROSS JOIN LATERAL (
        SELECT b.* FROM balance b
        WHERE b.community_id = c AND b.account_id = i.id
          AND NOT EXISTS (
            SELECT FROM account a
            WHERE a.community_id = b.community_id AND a.account_id = b.account_id AND a.flags & 2 <> 0
          )
        FOR UPDATE OF b
    ) AS b;

    RETURN QUERY SELECT concat_ws(E'\t', 'l', l.account_id, l.lot_id, l.remaining,
                                  coalesce((extract(epoch FROM l.expires_at) * 1000000)::int8::text, '\N'),
                                  (extract(epoch FROM l.earned_at) * 1000000)::int8)
    FROM (SELECT DISTINCT u.id FROM unnest(debited) AS u (id) ORDER BY 1) AS i
    CROSS JOIN LATERAL (
        SELECT * FROM lot l WHERE l.community_id = c AND l.account_id = i.id AND l.remaining > 0 OFFSET 0
    ) AS l;

    RETURN QUERY SELECT 'h' || E'\t' || h.account_id
    FROM (SELECT DISTINCT u.id FROM unnest(account_ids) AS u (id) ORDER BY 1) AS i
    CROSS JOIN LATERAL (
        SELECT b.account_id FROM account a JOIN balance b USING (community_id, account_id)
        WHERE a.community_id = c AND a.account_id = i.id AND a.flags & 2 <> 0
          AND b.bucket = hot_bucket % a.buckets
        FOR UPDATE OF b
    ) AS h;
END
$$;

GRANT EXECUTE ON FUNCTION vledger_group_reads(bigint, text, text, text, uuid[], uuid[], integer) TO vledger_app;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
