r"""``vledger_lines`` is inlined into the statements that read it.

``vledger_write_group`` (migration 0014) splits each of its text arguments into rows with
``vledger_lines``, a one-line SQL function. Declared STRICT, it could not be inlined (PostgreSQL
inlines a set-returning SQL function only if it is not STRICT), so each of the seven statements
that read it called it as a function: parse, analyse and plan its body again on every call. Not
STRICT, the planner puts its body into the calling statement, where the statement's plan is
cached. A NULL argument still gives no rows: ``string_to_table`` of NULL has none.

Measured on groups of 8 awards through ``post_group`` (three alternating pairs of 1,000 groups):
2,090 / 2,100 / 2,090 µs of server CPU per group with the STRICT function, 2,020 / 2,010 / 2,010
without.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER FUNCTION vledger_lines(text) CALLED ON NULL INPUT")


def downgrade() -> None:
    op.execute("ALTER FUNCTION vledger_lines(text) STRICT")
