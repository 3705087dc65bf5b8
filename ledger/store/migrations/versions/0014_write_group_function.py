r"""One statement writes a group of concurrent posts: rows, balances, lots, and the leaves chained
under the log head's lock.

Group commit (ledger/services/group_commit.py) writes concurrent posts a group at a time. The
batch path computes the chain in Python, so it has to hold the community's log head from the
moment it reads it: for a group, from its first round trip to its commit, while another server
process's group waits. And written as one statement per table and per balance row, a group of 16
posts sent some twenty statements, whose per-statement cost (client and server) was a good part
of the group's time.

Here Python hands over everything the group writes as texts of tab-separated lines (no field can
hold a tab or a newline: ids, integers, timestamps, restricted keys and kinds, JSON, whose control
characters are escaped; ``\N`` is NULL), and each leaf as the three canonical fragments around
"index" and "prev" (ledger.audit.leaf.LeafTemplate, as vledger_write_transfer takes one). The
function inserts the rows, writes the balance rows (already locked by the caller), the hot buckets
and the lots, then locks the head, fills in each leaf's holes leaf after leaf, inserts the leaves
and moves the head: the head is held only from there to the commit. It answers the first leaf's
index and the leaf hashes, 32 bytes each, in order. It runs with the caller's rights (SECURITY
INVOKER), so the runtime role's grants still apply.

Lines, by argument:
- postings: community, transfer, seq, account, unit, phase, amount, balance_after, version, expires_at
- transfers: community, transfer, kind, phase, effective_at, recorded_at, actor, key, metadata
- lots: community, lot, account, transfer, seq, amount, remaining, earned_at, expires_at
- movements: community, transfer, seq, lot, amount
- balances (bucket 0, new values): account, posted, pending_in, pending_out, version
- hot (added to one bucket): account, bucket, posted, pending_in, pending_out
- lot_deltas: lot, delta
- leaves: prefix, middle, suffix, transfer

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FUNCTIONS = r"""
CREATE FUNCTION vledger_lines(body text) RETURNS SETOF text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT string_to_array(line, E'\t') FROM string_to_table(body, E'\n') AS line WHERE line <> '' $$;

CREATE FUNCTION vledger_write_group(
    c bigint, postings text, transfers text, lots text, movements text, balances text, hot text,
    lot_deltas text, leaves text
) RETURNS TABLE (first_index bigint, hashes bytea)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    f text[];
    head record;
    idx bigint;
    prev bytea;
    leaf bytea;
    out bytea := '\x'::bytea;
BEGIN
    INSERT INTO posting (community_id, transfer_id, seq, account_id, unit, phase, amount, balance_after,
                         account_version, expires_at)
    SELECT x[1]::int8, x[2]::uuid, x[3]::int2, x[4]::uuid, x[5], x[6], x[7]::int8, nullif(x[8], '\N')::int8,
           nullif(x[9], '\N')::int8, nullif(x[10], '\N')::timestamptz
    FROM vledger_lines(postings) AS x;
    INSERT INTO transfer (community_id, transfer_id, kind, phase, effective_at, recorded_at, actor_id,
                          idempotency_key, metadata)
    SELECT x[1]::int8, x[2]::uuid, x[3], x[4], x[5]::timestamptz, x[6]::timestamptz, nullif(x[7], '\N')::uuid,
           x[8], x[9]::jsonb
    FROM vledger_lines(transfers) AS x;
    INSERT INTO lot (community_id, lot_id, account_id, transfer_id, seq, amount, remaining, earned_at, expires_at)
    SELECT x[1]::int8, x[2]::uuid, x[3]::uuid, x[4]::uuid, x[5]::int2, x[6]::int8, x[7]::int8,
           x[8]::timestamptz, nullif(x[9], '\N')::timestamptz
    FROM vledger_lines(lots) AS x;
    INSERT INTO lot_movement (community_id, transfer_id, seq, lot_id, amount)
    SELECT x[1]::int8, x[2]::uuid, x[3]::int2, x[4]::uuid, x[5]::int8
    FROM vledger_lines(movements) AS x;

    -- Lock order: balance rows (locked by the caller, sorted), hot buckets, lots, then the log head.
    FOR f IN SELECT * FROM vledger_lines(balances) LOOP
        UPDATE balance SET posted = f[2]::int8, pending_in = f[3]::int8, pending_out = f[4]::int8,
                           version = f[5]::int8
        WHERE community_id = c AND account_id = f[1]::uuid AND bucket = 0;
    END LOOP;
    FOR f IN SELECT * FROM vledger_lines(hot) LOOP
        UPDATE balance SET posted = posted + f[3]::int8, pending_in = pending_in + f[4]::int8,
                           pending_out = pending_out + f[5]::int8, version = version + 1
        WHERE community_id = c AND account_id = f[1]::uuid AND bucket = f[2]::int4;
    END LOOP;
    FOR f IN SELECT * FROM vledger_lines(lot_deltas) LOOP
        UPDATE lot SET remaining = remaining + f[2]::int8 WHERE community_id = c AND lot_id = f[1]::uuid;
    END LOOP;

    SELECT size, last_hash INTO head FROM log_head WHERE community_id = c FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no log head for community %', c USING ERRCODE = 'no_data_found';
    END IF;
    idx := head.size;
    prev := head.last_hash;
    FOR f IN SELECT * FROM vledger_lines(leaves) LOOP
        leaf := convert_to(f[1] || idx::text || f[2] || encode(prev, 'hex') || f[3], 'UTF8');
        prev := sha256('\x00'::bytea || leaf);
        INSERT INTO log_leaf (community_id, idx, leaf, leaf_hash, transfer_id) VALUES (c, idx, leaf, prev, f[4]::uuid);
        out := out || prev;
        idx := idx + 1;
    END LOOP;
    UPDATE log_head SET size = idx, last_hash = prev WHERE community_id = c;
    first_index := head.size;
    hashes := out;
    RETURN NEXT;
END
$$;

GRANT EXECUTE ON FUNCTION vledger_lines(text) TO vledger_app;
GRANT EXECUTE ON FUNCTION vledger_write_group(bigint, text, text, text, text, text, text, text, text) TO vledger_app;
"""


def upgrade() -> None:
    op.execute(FUNCTIONS)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS vledger_write_group(bigint, text, text, text, text, text, text, text, text)"
    )
    op.execute("DROP FUNCTION IF EXISTS vledger_lines(text)")
