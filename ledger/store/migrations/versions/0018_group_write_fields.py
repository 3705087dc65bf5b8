r"""The group write reads each field of its lines with ``split_part``, not through a text array.

``vledger_write_group`` (migrations 0014 and 0017) turned each line of its arguments into a text
array (``vledger_lines``: ``string_to_array`` per line) and read the fields by subscript. Both are
slow for what they do: every line built an array in a memory context of its own, and a subscript of
an array of variable-length elements walks the array from its start. ``split_part(line, E'\t', n)``
scans the line's text and builds nothing. The rows, the leaves, the lock order, the plans and the
function's answer are unchanged; ``vledger_lines`` has no other caller and is dropped.

Measured: inserting 48,000 posting lines (10 fields each) into a temporary table, 573 / 633 ms
through arrays, 237 / 238 ms with ``split_part``. Groups of 8 awards through ``post_group``
(alternating runs of 1,500 groups on one connection), server CPU per group 1,580 / 1,587 µs before,
1,340 / 1,327 µs after; wall time per group 3,166 / 3,279 µs before, 2,957 / 2,957 µs after.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION vledger_write_group(
    c bigint, postings text, transfers text, lots text, movements text, balances text, hot text,
    lot_deltas text, leaves text
) RETURNS TABLE (first_index bigint, hashes bytea)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    f record;
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
    SELECT split_part(x, E'\t', 1)::int8, split_part(x, E'\t', 2)::uuid, split_part(x, E'\t', 3)::int2,
           split_part(x, E'\t', 4)::uuid, split_part(x, E'\t', 5), split_part(x, E'\t', 6),
           split_part(x, E'\t', 7)::int8, nullif(split_part(x, E'\t', 8), '\N')::int8,
           nullif(split_part(x, E'\t', 9), '\N')::int8, nullif(split_part(x, E'\t', 10), '\N')::timestamptz
    FROM string_to_table(postings, E'\n') AS x WHERE x <> '';
    INSERT INTO transfer (community_id, transfer_id, kind, phase, effective_at, recorded_at, actor_id,
                          idempotency_key, metadata)
    SELECT split_part(x, E'\t', 1)::int8, split_part(x, E'\t', 2)::uuid, split_part(x, E'\t', 3),
           split_part(x, E'\t', 4), split_part(x, E'\t', 5)::timestamptz, split_part(x, E'\t', 6)::timestamptz,
           nullif(split_part(x, E'\t', 7), '\N')::uuid, split_part(x, E'\t', 8), split_part(x, E'\t', 9)::jsonb
    FROM string_to_table(transfers, E'\n') AS x WHERE x <> '';
    INSERT INTO lot (community_id, lot_id, account_id, transfer_id, seq, amount, remaining, earned_at, expires_at)
    SELECT split_part(x, E'\t', 1)::int8, split_part(x, E'\t', 2)::uuid, split_part(x, E'\t', 3)::uuid,
           split_part(x, E'\t', 4)::uuid, split_part(x, E'\t', 5)::int2, split_part(x, E'\t', 6)::int8,
           split_part(x, E'\t', 7)::int8, split_part(x, E'\t', 8)::timestamptz,
           nullif(split_part(x, E'\t', 9), '\N')::timestamptz
    FROM string_to_table(lots, E'\n') AS x WHERE x <> '';
    INSERT INTO lot_movement (community_id, transfer_id, seq, lot_id, amount)
    SELECT split_part(x, E'\t', 1)::int8, split_part(x, E'\t', 2)::uuid, split_part(x, E'\t', 3)::int2,
           split_part(x, E'\t', 4)::uuid, split_part(x, E'\t', 5)::int8
    FROM string_to_table(movements, E'\n') AS x WHERE x <> '';

    -- Lock order: balance rows (locked by the caller, sorted), hot buckets, lots, then the log head.
    UPDATE balance b SET posted = v.posted, pending_in = v.pending_in, pending_out = v.pending_out,
                         version = v.version
    FROM (
        SELECT r.tid, split_part(x, E'\t', 2)::int8 AS posted, split_part(x, E'\t', 3)::int8 AS pending_in,
               split_part(x, E'\t', 4)::int8 AS pending_out, split_part(x, E'\t', 5)::int8 AS version
        FROM string_to_table(balances, E'\n') AS x
        CROSS JOIN LATERAL (
            SELECT k.ctid AS tid FROM balance k
            WHERE k.community_id = c AND k.account_id = split_part(x, E'\t', 1)::uuid AND k.bucket = 0 OFFSET 0
        ) AS r
        WHERE x <> ''
    ) AS v
    WHERE b.ctid = v.tid;
    FOR f IN SELECT split_part(x, E'\t', 1)::uuid AS account_id, split_part(x, E'\t', 2)::int4 AS bucket,
                    split_part(x, E'\t', 3)::int8 AS posted, split_part(x, E'\t', 4)::int8 AS pending_in,
                    split_part(x, E'\t', 5)::int8 AS pending_out
             FROM string_to_table(hot, E'\n') AS x WHERE x <> '' LOOP
        UPDATE balance SET posted = posted + f.posted, pending_in = pending_in + f.pending_in,
                           pending_out = pending_out + f.pending_out, version = version + 1
        WHERE community_id = c AND account_id = f.account_id AND bucket = f.bucket;
    END LOOP;
    FOR f IN SELECT split_part(x, E'\t', 1)::uuid AS lot_id, split_part(x, E'\t', 2)::int8 AS delta
             FROM string_to_table(lot_deltas, E'\n') AS x WHERE x <> '' LOOP
        UPDATE lot SET remaining = remaining + f.delta WHERE community_id = c AND lot_id = f.lot_id;
    END LOOP;

    SELECT size, last_hash INTO head FROM log_head WHERE community_id = c FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no log head for community %', c USING ERRCODE = 'no_data_found';
    END IF;
    idx := head.size;
    prev := head.last_hash;
    FOR f IN SELECT split_part(x, E'\t', 1) AS before_index, split_part(x, E'\t', 2) AS before_prev,
                    split_part(x, E'\t', 3) AS after_prev, split_part(x, E'\t', 4)::uuid AS transfer_id
             FROM string_to_table(leaves, E'\n') AS x WHERE x <> '' LOOP
        leaf := convert_to(f.before_index || idx::text || f.before_prev || encode(prev, 'hex') || f.after_prev, 'UTF8');
        prev := sha256('\x00'::bytea || leaf);
        leaf_rows := leaf_rows || leaf;
        leaf_hashes := leaf_hashes || prev;
        leaf_transfers := leaf_transfers || f.transfer_id;
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

# What the downgrade restores: the line splitter as migrations 0014 and 0016 left it, and the
# function as migration 0017 left it (its FUNCTION, verbatim).
LINES = r"""
CREATE FUNCTION vledger_lines(body text) RETURNS SETOF text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT string_to_array(line, E'\t') FROM string_to_table(body, E'\n') AS line WHERE line <> '' $$;

GRANT EXECUTE ON FUNCTION vledger_lines(text) TO vledger_app;
"""

PREVIOUS = r"""
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


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute("DROP FUNCTION vledger_lines(text)")


def downgrade() -> None:
    op.execute(LINES)
    op.execute(PREVIOUS)
