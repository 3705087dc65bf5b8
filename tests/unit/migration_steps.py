"""What a migration step sends: its statements, captured instead of executed (for tests that compare
a migration's SQL with the text of earlier migrations)."""

from __future__ import annotations

from types import ModuleType
from typing import Any


def executed(module: ModuleType, step: str, monkeypatch: Any) -> list[str]:
    """The statements ``module.<step>()`` ("upgrade" or "downgrade") passes to ``op.execute``."""
    sent: list[str] = []

    class _Op:
        def execute(self, sql: str) -> None:
            sent.append(sql)

    monkeypatch.setattr(module, "op", _Op())
    getattr(module, step)()
    return sent
