"""Migration 0018's steps run on PostgreSQL: down to what migration 0017 left, then up again, in
one transaction that is rolled back (the test database stays at head)."""

from __future__ import annotations

import importlib
from typing import Any

import psycopg

from ledger.store.db import Conn
from tests.unit.migration_steps import executed

fields = importlib.import_module("ledger.store.migrations.versions.0018_group_write_fields")


def _source(conn: Conn, function: str) -> str | None:
    row = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (function,)).fetchone()
    return None if row is None else str(row[0])


def test_downgrade_then_upgrade_on_the_server(db_url: str, monkeypatch: Any) -> None:
    with psycopg.connect(db_url) as conn:
        try:
            assert _source(conn, "vledger_lines") is None
            assert "split_part(x, E'\\t', 10)" in (_source(conn, "vledger_write_group") or "")

            executed(fields, "downgrade", monkeypatch, conn.execute)
            assert "FROM vledger_lines(postings)" in (_source(conn, "vledger_write_group") or "")
            rows = conn.execute("SELECT * FROM vledger_lines(%s::text)", ("a\tb\n\nc\n",)).fetchall()
            assert rows == [(["a", "b"],), (["c"],)]
            assert conn.execute("SELECT count(*) FROM vledger_lines(NULL)").fetchone() == (0,)

            executed(fields, "upgrade", monkeypatch, conn.execute)
            assert _source(conn, "vledger_lines") is None
            assert _source(conn, "vledger_write_group") == _source_of(fields.FUNCTION)
        finally:
            conn.rollback()


def _source_of(create: str) -> str:
    """The body between the function's dollar quotes, as pg_proc stores it."""
    return create[create.index("AS $$") + len("AS $$") : create.rindex("$$;")]
