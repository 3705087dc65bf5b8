"""Migration 0017 writes a group's balance rows and its leaves with one statement each. Its
downgrade must give back exactly the function that migrations 0014 and 0016 left (the body of 0014,
with 0016's plan setting), and its upgrade must change nothing but those two parts and the joins
the function may plan."""

from __future__ import annotations

import importlib
from typing import Any

from tests.unit.migration_steps import executed

write_group = importlib.import_module("ledger.store.migrations.versions.0014_write_group_function")
statements = importlib.import_module("ledger.store.migrations.versions.0017_group_write_statements")


def _as_0016_left_it() -> str:
    text: str = write_group.FUNCTIONS
    function = text[text.index("CREATE FUNCTION vledger_write_group") : text.index("GRANT EXECUTE")].strip()
    return function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(
        "LANGUAGE plpgsql SECURITY INVOKER AS $$",
        "LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $$",
    )


def test_downgrade_restores_the_function_0014_and_0016_left(monkeypatch: Any) -> None:
    (sql,) = executed(statements, "downgrade", monkeypatch)
    assert sql.strip() == _as_0016_left_it()


def test_upgrade_replaces_only_the_per_row_statements(monkeypatch: Any) -> None:
    (sql,) = executed(statements, "upgrade", monkeypatch)
    header = "SET plan_cache_mode = force_generic_plan SET enable_hashjoin = off SET enable_mergejoin = off"
    assert header in sql
    assert "VALUES (c, idx, leaf, prev" not in sql and sql.count("INSERT INTO log_leaf") == 1
    assert "vledger_lines(balances) LOOP" not in sql and "WHERE b.ctid = v.tid" in sql
    before, after = _as_0016_left_it().splitlines(), sql.strip().splitlines()
    removed = [line for line in before if line not in after]
    per_row = [
        line
        for line in before
        if "INSERT INTO log_leaf" in line
        or "vledger_lines(balances) LOOP" in line
        or line.strip().startswith(
            (
                "UPDATE balance SET posted = f[2]",
                "version = f[5]",
                "WHERE community_id = c AND account_id = f[1]::uuid AND bucket = 0",
            )
        )
        or "LANGUAGE plpgsql" in line
    ]
    assert removed == per_row
