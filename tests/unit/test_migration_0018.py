"""Migration 0018 reads the group write's fields with split_part. Its downgrade must give back
exactly what migration 0017 left (the line splitter as 0014 and 0016 left it, and 0017's function),
and its upgrade must read no field through a text array."""

from __future__ import annotations

import importlib
import re
from typing import Any

from tests.unit.migration_steps import executed

write_group = importlib.import_module("ledger.store.migrations.versions.0014_write_group_function")
statements = importlib.import_module("ledger.store.migrations.versions.0017_group_write_statements")
fields = importlib.import_module("ledger.store.migrations.versions.0018_group_write_fields")


def test_downgrade_restores_what_0017_left(monkeypatch: Any) -> None:
    lines, function = executed(fields, "downgrade", monkeypatch)
    assert function == statements.FUNCTION
    text: str = write_group.FUNCTIONS
    start = text.index("CREATE FUNCTION vledger_lines")
    created = text[start : text.index("CREATE FUNCTION vledger_write_group")]
    granted = "GRANT EXECUTE ON FUNCTION vledger_lines(text) TO vledger_app;"
    assert granted in text
    # 0016 made it CALLED ON NULL INPUT (not STRICT), so that it is inlined.
    assert lines.split() == (created.replace(" STRICT", "") + granted).split()


def test_upgrade_reads_every_field_by_position_in_its_line(monkeypatch: Any) -> None:
    function, drop = executed(fields, "upgrade", monkeypatch)
    assert drop == "DROP FUNCTION vledger_lines(text)"
    assert "vledger_lines" not in function and "string_to_array" not in function
    assert not re.search(r"\b[xf]\[\d+\]", function), "a field read by array subscript"
    # Every field 0017 read by subscript is read by split_part at the same position.
    for subscript in sorted(set(re.findall(r"\bx\[(\d+)\]", statements.FUNCTION)), key=int):
        assert f"split_part(x, E'\\t', {subscript})" in function
    header = "SET plan_cache_mode = force_generic_plan SET enable_hashjoin = off SET enable_mergejoin = off"
    assert header in function and "-- Lock order:" in function
