"""What a migration step sends: its statements, captured (for tests that compare a migration's SQL
with the text of earlier migrations) and, if asked, run on a connection too."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any


def executed(
    module: ModuleType, step: str, monkeypatch: Any, run: Callable[[str], object] | None = None
) -> list[str]:
    """The statements ``module.<step>()`` ("upgrade" or "downgrade") passes to ``op.execute``, in
    order; each also goes to ``run`` when one is given (``conn.execute``, to apply the step)."""
    sent: list[str] = []

    class _Op:
        def execute(self, sql: str) -> None:
            sent.append(sql)
            if run is not None:
                run(sql)

    monkeypatch.setattr(module, "op", _Op())
    getattr(module, step)()
    return sent
