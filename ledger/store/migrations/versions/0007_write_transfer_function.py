"""One statement writes a planned transfer: rows, balances, lots and the log leaf.

The single-transfer path used to send eight to twelve statements per transfer in a pipeline; the
client-side cost of each (parameter adaptation, pipeline bookkeeping) dominated. Python still does
everything that decides anything (validation, the domain engine, the canonical leaf); this function
only writes what it is handed, in the fixed lock order: balance rows (already locked), hot buckets,
lots, then the community's log head, held only until commit. It runs with the caller's rights
(SECURITY INVOKER), so the runtime role's grants still apply.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FUNCTIONS = r"""
CREATE FUNCTION vledger_ts(us bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN timestamptz 'epoch' + us * interval '1 microsecond';

CREATE FUNCTION vledger_write_transfer(d jsonb) RETURNS TABLE (leaf_index bigint, leaf_hash bytea)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    c bigint := (d->>'c')::bigint;
    t uuid := (d->>'t')::uuid;
    r record;
    head record;
    leaf bytea;
    digest bytea;
BEGIN
    INSERT INTO transfer (community_id, transfer_id, kind, phase, effective_at, recorded_at, actor_id,
                          idempotency_key, reverses_id, pending_id, timeout_at, metadata)
    VALUES (c, t, d->>'kind', d->>'phase', vledger_ts((d->>'eff')::bigint), vledger_ts((d->>'rec')::bigint),
            (d->>'actor')::uuid, d->>'key', (d->>'rev')::uuid, (d->>'pend')::uuid,
            vledger_ts((d->>'timeout')::bigint), coalesce(d->'meta', '{}'::jsonb));

    INSERT INTO posting (community_id, transfer_id, seq, account_id, unit, phase, amount, balance_after,
                         account_version, expires_at)
    SELECT c, t, x.seq, x.a, x.u, x.ph, x.amt, x.bal, x.ver, vledger_ts(x.exp)
    FROM jsonb_to_recordset(d->'p') AS x(seq int2, a uuid, u text, ph text, amt int8, bal int8, ver int8, exp int8);

    IF d ? 'lots' THEN
        INSERT INTO lot (community_id, lot_id, account_id, transfer_id, seq, amount, remaining, earned_at,
                         expires_at)
        SELECT c, x.id, x.a, t, x.seq, x.amt, x.amt, vledger_ts(x.earned), vledger_ts(x.exp)
        FROM jsonb_to_recordset(d->'lots') AS x(id uuid, a uuid, seq int2, amt int8, earned int8, exp int8);
    END IF;
    IF d ? 'moves' THEN
        INSERT INTO lot_movement (community_id, transfer_id, seq, lot_id, amount)
        SELECT c, t, x.seq, x.lot, x.amt FROM jsonb_to_recordset(d->'moves') AS x(seq int2, lot uuid, amt int8);
    END IF;

    -- Lock order: non-hot balance rows (locked by the caller, sorted), hot buckets, lots, log head.
    FOR r IN SELECT * FROM jsonb_to_recordset(d->'bal') AS x(a uuid, posted int8, pin int8, pout int8, ver int8)
    LOOP
        UPDATE balance SET posted = r.posted, pending_in = r.pin, pending_out = r.pout, version = r.ver
        WHERE community_id = c AND account_id = r.a AND bucket = 0;
    END LOOP;
    FOR r IN SELECT * FROM jsonb_to_recordset(d->'hot') AS x(a uuid, b int2, posted int8, pin int8, pout int8)
    LOOP
        UPDATE balance SET posted = posted + r.posted, pending_in = pending_in + r.pin,
                           pending_out = pending_out + r.pout, version = version + 1
        WHERE community_id = c AND account_id = r.a AND bucket = r.b;
    END LOOP;
    FOR r IN SELECT * FROM jsonb_to_recordset(d->'lotd') AS x(id uuid, delta int8)
    LOOP
        UPDATE lot SET remaining = remaining + r.delta WHERE community_id = c AND lot_id = r.id;
    END LOOP;

    SELECT size, last_hash INTO head FROM log_head WHERE community_id = c FOR UPDATE;
    leaf := convert_to(d->>'pre', 'UTF8') || convert_to(head.size::text, 'UTF8')
         || convert_to(d->>'mid', 'UTF8') || convert_to(encode(head.last_hash, 'hex'), 'UTF8')
         || convert_to(d->>'suf', 'UTF8');
    digest := sha256('\x00'::bytea || leaf);
    INSERT INTO log_leaf (community_id, idx, leaf, leaf_hash, transfer_id) VALUES (c, head.size, leaf, digest, t);
    UPDATE log_head SET size = head.size + 1, last_hash = digest WHERE community_id = c;
    leaf_index := head.size;
    leaf_hash := digest;
    RETURN NEXT;
END
$$;

GRANT EXECUTE ON FUNCTION vledger_write_transfer(jsonb) TO vledger_app;
GRANT EXECUTE ON FUNCTION vledger_ts(bigint) TO vledger_app;
"""


def upgrade() -> None:
    op.execute(FUNCTIONS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS vledger_write_transfer(jsonb)")
    op.execute("DROP FUNCTION IF EXISTS vledger_ts(bigint)")
