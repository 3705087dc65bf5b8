"""Merkle tree nodes and signed checkpoints of each community's log.

``log_node`` holds the hash of every complete perfect subtree of level 1 and up (level 0 is the
leaf hash, already in ``log_leaf``): node (level, idx) covers leaves [idx·2^level, (idx+1)·2^level).
Any root, inclusion or consistency proof then reads O(log n) rows. ``log_tree`` records how many
leaves the nodes cover. ``log_checkpoint`` keeps every signed checkpoint note the service served;
only its note may change later, to carry fresher witness cosignatures over the same (size, root).
The signer's own record of what it signed lives outside the database (see ledger.audit.signer).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE log_node (
    community_id bigint NOT NULL,
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 63),
    idx bigint NOT NULL CHECK (idx >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (community_id, level, idx)
);
CREATE TRIGGER log_node_append_only BEFORE UPDATE OR DELETE ON log_node
    FOR EACH ROW EXECUTE FUNCTION vledger_reject_change();
CREATE TRIGGER log_node_no_truncate BEFORE TRUNCATE ON log_node
    FOR EACH STATEMENT EXECUTE FUNCTION vledger_reject_change();

CREATE TABLE log_tree (
    community_id bigint NOT NULL PRIMARY KEY REFERENCES community (community_id),
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    root bytea NOT NULL CHECK (length(root) = 32)
);

CREATE TABLE log_checkpoint (
    community_id bigint NOT NULL REFERENCES community (community_id),
    size bigint NOT NULL CHECK (size >= 0),
    root bytea NOT NULL CHECK (length(root) = 32),
    note bytea NOT NULL,
    signed_at timestamptz NOT NULL,
    PRIMARY KEY (community_id, size)
);

CREATE FUNCTION vledger_checkpoint_only_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.community_id, NEW.size, NEW.root) IS DISTINCT FROM (OLD.community_id, OLD.size, OLD.root) THEN
        RAISE EXCEPTION 'a checkpoint''s size and root never change' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER log_checkpoint_only_note BEFORE UPDATE ON log_checkpoint
    FOR EACH ROW EXECUTE FUNCTION vledger_checkpoint_only_note();
CREATE TRIGGER log_checkpoint_no_delete BEFORE DELETE ON log_checkpoint
    FOR EACH ROW EXECUTE FUNCTION vledger_reject_change();
CREATE TRIGGER log_checkpoint_no_truncate BEFORE TRUNCATE ON log_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION vledger_reject_change();

GRANT SELECT, INSERT ON log_node, log_tree, log_checkpoint TO vledger_app;
GRANT UPDATE (size, root) ON log_tree TO vledger_app;
GRANT UPDATE (note, signed_at) ON log_checkpoint TO vledger_app;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS log_checkpoint, log_tree, log_node")
    op.execute("DROP FUNCTION IF EXISTS vledger_checkpoint_only_note()")
