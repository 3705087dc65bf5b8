"""The SQL helpers of the single-transfer write (migration 0007) agree with Python to the microsecond."""

from __future__ import annotations

import random

from ledger.domain.times import to_dt
from ledger.store.db import Conn


def test_vledger_ts_is_exact_to_the_microsecond(owner: Conn) -> None:
    rng = random.Random(7)
    values = [0, 1, -1, 999_999, 1_735_689_600_123_456, 4_102_444_799_999_999]
    values += [rng.randrange(-(10**15), 4 * 10**15) for _ in range(200)]
    rows = owner.execute("SELECT us, vledger_ts(us) FROM unnest(%s::int8[]) AS us", (values,)).fetchall()
    assert [(us, ts) for us, ts in rows] == [(us, to_dt(us)) for us in values]


def test_vledger_ts_of_null_is_null(owner: Conn) -> None:
    assert owner.execute("SELECT vledger_ts(NULL)").fetchone() == (None,)
