"""One statement appends a group's leaves to a community's log: the chain computed under its lock.

Group commit (ledger/services/group_commit.py) writes concurrent posts a group at a time. The
batch path computes the chain in Python, so it has to hold the community's log head from the
moment it reads it: for a group, from its first round trip to its commit, while another server
process's group waits. Here Python hands over each leaf as the three canonical fragments around
"index" and "prev" (ledger.audit.leaf.LeafTemplate, as vledger_write_transfer takes one), and the
function, run last before the commit, locks the head, fills the holes leaf after leaf, inserts the
leaves and moves the head: the head is held only from then until the commit.

The leaves come as one text, a line per leaf of four tab-separated fields: prefix, middle, suffix
(canonical JSON, which holds no raw tab or newline) and the transfer id. The function answers the
first leaf's index and the leaf hashes, 32 bytes each, in order. It runs with the caller's rights
(SECURITY INVOKER).

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

FUNCTION = r"""
CREATE FUNCTION vledger_append_leaves(c bigint, leaves text) RETURNS TABLE (first_index bigint, hashes bytea)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    head record;
    idx bigint;
    prev bytea;
    f text[];
    leaf bytea;
    out bytea := '\x'::bytea;
BEGIN
    SELECT size, last_hash INTO head FROM log_head WHERE community_id = c FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no log head for community %', c USING ERRCODE = 'no_data_found';
    END IF;
    idx := head.size;
    prev := head.last_hash;
    FOR f IN SELECT string_to_array(line, E'\t') FROM string_to_table(leaves, E'\n') AS line WHERE line <> ''
    LOOP
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

GRANT EXECUTE ON FUNCTION vledger_append_leaves(bigint, text) TO vledger_app;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS vledger_append_leaves(bigint, text)")
