r"""The group functions plan their statements once per connection.

Measured on groups of 8 awards through ``post_group`` (one connection, alternating runs of 1,000
groups each), two changes to how the server plans the statements of ``vledger_group_reads`` and
``vledger_write_group``:

- ``vledger_lines`` is no longer STRICT. PostgreSQL inlines a set-returning SQL function only if
  it is not STRICT, so each of the group write's seven statements that read it called it as a
  function and parsed, analysed and planned its one-line body again on every call. Inlined, its
  body is planned with the calling statement. A NULL argument still gives no rows
  (``string_to_table`` of NULL has none). Server CPU per group: 2,090 / 2,100 / 2,090 µs →
  2,020 / 2,010 / 2,010.
- Both group functions run with ``plan_cache_mode = force_generic_plan``. PL/pgSQL caches each
  statement's plan, but the plan cache chose a custom plan (a new plan per call, for the call's
  values) every time: the generic plan's estimates for ``unnest`` of an array argument looked
  worse than the custom plans'. Every statement looks its rows up by key (decision 0013) and
  sees a few rows, so the generic plan is the same plan, made once per connection. Server CPU
  per group: 1,910 / 1,890 / 1,900 µs → 1,620 / 1,650 / 1,690.

``tests/integration/test_plans.py`` checks the generic plans still probe each account by key.

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

GROUP_FUNCTIONS = (
    "vledger_group_reads(bigint, text, text, text, uuid[], uuid[], integer)",
    "vledger_write_group(bigint, text, text, text, text, text, text, text, text)",
)


def upgrade() -> None:
    op.execute("ALTER FUNCTION vledger_lines(text) CALLED ON NULL INPUT")
    for function in GROUP_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SET plan_cache_mode = force_generic_plan")


def downgrade() -> None:
    for function in GROUP_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} RESET plan_cache_mode")
    op.execute("ALTER FUNCTION vledger_lines(text) STRICT")
