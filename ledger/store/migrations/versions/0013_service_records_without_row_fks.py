"""Service records and their events drop their per-row foreign keys, as the ledger tables did (0003).

A sheet import writes a record and four events per row: with the keys, the server checked five
references per row (event → record four times, record → person and → activity), about half of
the import's record-writing time. Each reference is one the service has just established itself:
an event is inserted beside its record, in the same transaction; a record's person and activity
were read (and found) before it was planned; and persons and activities are never deleted (the
runtime role has no DELETE grant on either, activities are append-only, erasing a person keeps
the row). The invariant checker (``ledger/services/invariant_rules.py``, rule "references")
verifies the same references set-based. See docs/decisions/0004.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (table, constraint, definition to restore on downgrade)
DROPPED = (
    (
        "service_record_event",
        "service_record_event_community_id_record_id_fkey",
        "(community_id, record_id) REFERENCES service_record (community_id, record_id)",
    ),
    (
        "service_record",
        "service_record_community_id_person_id_fkey",
        "(community_id, person_id) REFERENCES person (community_id, person_id)",
    ),
    (
        "service_record",
        "service_record_community_id_activity_id_fkey",
        "(community_id, activity_id) REFERENCES activity (community_id, activity_id)",
    ),
)


def upgrade() -> None:
    for table, name, _ in DROPPED:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


def downgrade() -> None:
    for table, name, definition in DROPPED:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY {definition}")
