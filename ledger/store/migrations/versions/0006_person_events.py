"""Who changed a person's record, and when: an append-only event per write (no personal data).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE person_event (
            community_id bigint NOT NULL,
            event_id uuid NOT NULL,
            person_id uuid NOT NULL,
            kind text NOT NULL CHECK (kind IN ('created', 'profile_updated', 'consent_updated', 'erased')),
            actor_id uuid,
            at timestamptz NOT NULL,
            PRIMARY KEY (community_id, event_id),
            FOREIGN KEY (community_id, person_id) REFERENCES person (community_id, person_id)
        );
        CREATE INDEX person_event_by_person ON person_event (community_id, person_id, at);
        CREATE TRIGGER person_event_append_only BEFORE UPDATE OR DELETE ON person_event
            FOR EACH ROW EXECUTE FUNCTION vledger_reject_change();
        GRANT SELECT, INSERT ON person_event TO vledger_app;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS person_event")
