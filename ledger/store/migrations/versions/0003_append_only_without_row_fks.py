"""Append-only ledger tables drop their per-row foreign keys.

Every foreign key is checked by a trigger for every inserted row. On the batch path those checks
were a third of the database's time (six per transfer), for references the ledger code has just
established itself in the same transaction: a posting's transfer is inserted beside it, its
account was read (and locked where it matters) before it was planned, and accounts, communities
and postings are never deleted (no role may: grants and append-only triggers). The invariant checker
(``ledger/services/invariant_rules.py``, rule "references") verifies the same references set-based.
See docs/decisions/0004-append-only-tables-without-row-foreign-keys.md.

Kept: foreign keys of the configuration tables (community, account, balance, log_head) and a
transfer's links to the transfer it reverses or resolves (NULL on almost every row).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (table, constraint, definition to restore on downgrade)
DROPPED = (
    ("transfer", "transfer_community_id_fkey", "(community_id) REFERENCES community (community_id)"),
    (
        "posting",
        "posting_community_id_transfer_id_fkey",
        "(community_id, transfer_id) REFERENCES transfer (community_id, transfer_id)",
    ),
    (
        "posting",
        "posting_community_id_account_id_fkey",
        "(community_id, account_id) REFERENCES account (community_id, account_id)",
    ),
    (
        "lot",
        "lot_community_id_transfer_id_seq_fkey",
        "(community_id, transfer_id, seq) REFERENCES posting (community_id, transfer_id, seq)",
    ),
    (
        "lot_movement",
        "lot_movement_community_id_transfer_id_seq_fkey",
        "(community_id, transfer_id, seq) REFERENCES posting (community_id, transfer_id, seq)",
    ),
    (
        "lot_movement",
        "lot_movement_community_id_lot_id_fkey",
        "(community_id, lot_id) REFERENCES lot (community_id, lot_id)",
    ),
    ("idempotency", "idempotency_community_id_fkey", "(community_id) REFERENCES community (community_id)"),
    ("log_leaf", "log_leaf_community_id_fkey", "(community_id) REFERENCES community (community_id)"),
)


def upgrade() -> None:
    for table, name, _ in DROPPED:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


def downgrade() -> None:
    for table, name, definition in DROPPED:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY {definition}")
