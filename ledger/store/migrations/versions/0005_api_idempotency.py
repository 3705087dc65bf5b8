"""Idempotency for HTTP POSTs that are not ledger transfers (people, households, users, settings).

Ledger transfers keep their own idempotency table (per community, stored with the transfer).
Other POSTs store the response they gave under (caller, key): a replay with the same request gets
it again, the same key with another request is a conflict. ``status_code`` is NULL while the first
request is still running; a request that fails unexpectedly (5xx) releases its key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_idempotency (
            user_id uuid NOT NULL REFERENCES app_user (user_id),
            key text NOT NULL,
            route text NOT NULL,
            request_hash bytea NOT NULL CHECK (length(request_hash) = 32),
            status_code integer CHECK (status_code BETWEEN 200 AND 499),
            response jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key),
            CHECK ((status_code IS NULL) = (response IS NULL))
        )
        """
    )
    op.execute("GRANT SELECT, INSERT, DELETE ON api_idempotency TO vledger_app")
    op.execute("GRANT UPDATE (status_code, response) ON api_idempotency TO vledger_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_idempotency")
