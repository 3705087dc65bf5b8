"""Migration 0017 replaces vledger_write_group's leaf loop by one insert; its downgrade must give
back exactly the function that migrations 0014 and 0016 left (the body of 0014, with 0016's plan
setting), and its upgrade must change nothing else."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

write_group = importlib.import_module("ledger.store.migrations.versions.0014_write_group_function")
leaves = importlib.import_module("ledger.store.migrations.versions.0017_group_leaves_in_one_statement")


def _executed(module: ModuleType, step: str, monkeypatch: Any) -> list[str]:
    sent: list[str] = []

    class _Op:
        def execute(self, sql: str) -> None:
            sent.append(sql)

    monkeypatch.setattr(module, "op", _Op())
    getattr(module, step)()
    return sent


def _as_0016_left_it() -> str:
    text: str = write_group.FUNCTIONS
    function = text[text.index("CREATE FUNCTION vledger_write_group") : text.index("GRANT EXECUTE")].strip()
    return function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(
        "LANGUAGE plpgsql SECURITY INVOKER AS $$",
        "LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $$",
    )


def test_downgrade_restores_the_function_0014_and_0016_left(monkeypatch: Any) -> None:
    (sql,) = _executed(leaves, "downgrade", monkeypatch)
    assert sql.strip() == _as_0016_left_it()


def test_upgrade_changes_only_how_the_leaves_are_inserted(monkeypatch: Any) -> None:
    (sql,) = _executed(leaves, "upgrade", monkeypatch)
    assert "SET plan_cache_mode = force_generic_plan" in sql
    assert "VALUES (c, idx, leaf, prev" not in sql
    assert sql.count("INSERT INTO log_leaf") == 1
    before, after = _as_0016_left_it().splitlines(), sql.strip().splitlines()
    removed = [line for line in before if line not in after]
    assert removed == [line for line in before if "INSERT INTO log_leaf" in line]
