r"""A group's balance rows and its leaves each go in with one statement.

``vledger_write_group`` (migration 0014) updated a group's balance rows with one statement per row
and inserted its leaves with one statement per leaf: sixteen executor start-ups for a group of 8,
the leaves under the log head's lock while another server process's group waited for it. Now:

- The balance rows are updated by one statement. Each row is found by its key, in a fenced
  LATERAL subquery (as every lookup by a list of accounts is, decision 0013), and updated through
  its tuple id: whatever the statistics say, the plan is an index probe and a TID scan per line.
  Hash and merge joins are off for the function, so that a plan made when the table was small
  cannot become a hash join over the whole table (its plans are generic, made once per connection:
  migration 0016). The rows were locked by ``vledger_group_reads``, in account order, before.
- The leaves are chained leaf after leaf as before, into arrays, and inserted with one
  ``INSERT … SELECT`` from them.

The rows, the leaves, their hashes and indexes, and the function's answer are unchanged.

Measured on groups of 8 awards through ``post_group`` (alternating runs of 1,000 groups), server
CPU per group: leaves one by one 1,810 / 1,690 / 1,690 µs, in one statement 1,640 / 1,610 / 1,620;
then the balance rows one by one 2,080 / 1,940 / 1,660, in one statement 1,710 / 1,790 / 1,590.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION vledger_write_group(
    c bigint, postings text, transfers text, lots text, movements text, balances text, hot text,
    lot_deltas text, leaves text
) RETURNS TABLE (first_index bigint, hashes bytea)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    f text[];
    head record;
    idx bigint;
    prev bytea;
    leaf bytea;
    out bytea := '\x'::bytea;
    leaf_rows bytea[] := '{}';
    leaf_hashes bytea[] := '{}';
    leaf_transfers uuid[] := '{}';
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
    UPDATE balance b SET posted = v.posted, pending_in = v.pending_in, pending_out = v.pending_out,
                         version = v.version
    FROM (
        SELECT r.tid, x[2]::int8 AS posted, x[3]::int8 AS pending_in, x[4]::int8 AS pending_out,
               x[5]::int8 AS version
        FROM vledger_lines(balances) AS x
        CROSS JOIN LATERAL (
            SELECT k.ctid AS tid FROM balance k
            WHERE k.community_id = c AND k.account_id = x[1]::uuid AND k.bucket = 0 OFFSET 0
        ) AS r
    ) AS v
    WHERE b.ctid = v.tid;
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
        leaf_rows := leaf_rows || leaf;
        leaf_hashes := leaf_hashes || prev;
        leaf_transfers := leaf_transfers || f[4]::uuid;
        out := out || prev;
        idx := idx + 1;
    END LOOP;
    INSERT INTO log_leaf (community_id, idx, leaf, leaf_hash, transfer_id)
    SELECT c, head.size + u.n - 1, u.leaf, u.hash, u.transfer
    FROM unnest(leaf_rows, leaf_hashes, leaf_transfers) WITH ORDINALITY AS u (leaf, hash, transfer, n);
    UPDATE log_head SET size = idx, last_hash = prev WHERE community_id = c;
    first_index := head.size;
    hashes := out;
    RETURN NEXT;
END
$$;
"""

# The function as migrations 0014 and 0016 left it: what downgrade() restores.
PREVIOUS = r"""
CREATE OR REPLACE FUNCTION vledger_write_group(
    c bigint, postings text, transfers text, lots text, movements text, balances text, hot text,
    lot_deltas text, leaves text
) RETURNS TABLE (first_index bigint, hashes bytea)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $$
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
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS)
