"""``vledger bench-http`` works end to end at a tiny scale (a smoke test of the command, not a timed test)."""

from __future__ import annotations

import pytest

from vledger.bench import ROW_KEYS
from vledger.bench_http import POST, READ, run


def test_bench_http_runs_both_workloads(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table wraps to the terminal; keep headers whole
    printed: list[object] = []
    rows = run(
        db_url,
        transfers=50,
        reads=50,
        concurrency_post=4,
        concurrency_read=4,
        workers=2,  # the pre-fork server (vledger.prefork), as the benchmark runs by default
        out=lambda *a, **k: printed.extend(a),
    )

    assert [row["workload"] for row in rows] == [POST, READ]
    for row in rows:
        assert set(ROW_KEYS) <= set(row), row
        throughput = row["throughput"]
        assert isinstance(throughput, float)
        assert throughput > 0
        assert row["count"] == 50
    post = rows[0]
    # The issuance account moved by exactly the successful posts (warm-up included), checked by run().
    assert post["issuance_moved"] == post["posts_ok"]
    assert isinstance(post["posts_ok"], int) and post["posts_ok"] > 50  # the warm-up posts count too
    assert len(printed) == 1
    assert "ratio to target" in str(printed[0])
