"""The runtime role logs in as itself.

Revision 0001 made ``vledger_app`` a NOLOGIN role that owner sessions switched to with
``-c role=vledger_app``. Such a session can ``SET ROLE`` back to the owner it logged in as and undo
every grant, so the runtime now logs in as ``vledger_app`` directly and is a member of no other role.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Roles are cluster-wide: another database on the same server may have altered it already.
    op.execute(
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vledger_app' AND rolcanlogin
                           AND NOT rolinherit AND NOT rolsuper AND NOT rolcreatedb AND NOT rolcreaterole
                           AND NOT rolreplication AND NOT rolbypassrls) THEN
                ALTER ROLE vledger_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                    NOBYPASSRLS NOINHERIT;
            END IF;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute("ALTER ROLE vledger_app WITH NOLOGIN")
