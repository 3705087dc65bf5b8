"""``vledger bench`` works end to end at a tiny scale (a smoke test of the command, not a timed test)."""

from __future__ import annotations

import pytest

from vledger.bench import BATCH, MEMBER, READ, ROW_KEYS, SINGLE, run


def test_bench_runs_every_workload(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table wraps to the terminal; keep headers whole
    printed: list[object] = []
    rows = run(db_url, transfers=200, singles=50, reads=50, threads=2, out=lambda *a, **k: printed.extend(a))

    assert [row["workload"] for row in rows] == [SINGLE, MEMBER, BATCH, READ]
    for row in rows:
        assert set(ROW_KEYS) <= set(row), row
        throughput = row["throughput"]
        assert isinstance(throughput, float)
        assert throughput > 0
        assert row["count"] == {SINGLE: 50, MEMBER: 50, BATCH: 400, READ: 50}[str(row["workload"])]
    assert len(printed) == 1
    assert "ratio to target" in str(printed[0])
