"""The points-expiry run: expired lots empty into the expiry sink, held points are skipped, the
run is idempotent, and scenario 7 ends as domain.md says (the 10 points left expire at year end)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from psycopg_pool import ConnectionPool
from shop_world import ShopWorld, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import SystemAccount
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.services.points_expiry import BATCH_ACCOUNTS, PointsExpiry
from ledger.services.rule_settings import CHINA_TZ
from ledger.store.db import Conn

YEAR_END = datetime(2026, 1, 1, tzinfo=CHINA_TZ)


@pytest.fixture
def w(
    pool: ConnectionPool[Conn],
    owner: Conn,
    ledger: Ledger,
    communities: Communities,
    community: CommunityInfo,
) -> Iterator[ShopWorld]:
    world = make_world(pool, owner, ledger, communities, community)
    yield world
    world.check()  # ledger invariants and stock counters


def _expiry(w: ShopWorld) -> PointsExpiry:
    return PointsExpiry(w.pool, w.ledger, w.communities, clock=w.clock)


def _lots(w: ShopWorld, account: object) -> list[tuple[int, int]]:
    rows = w.owner.execute(
        "SELECT amount, remaining FROM lot WHERE community_id = %s AND account_id = %s ORDER BY earned_at",
        (w.c, account),
    ).fetchall()
    return [(int(a), int(r)) for a, r in rows]


def test_scenario_7_the_points_left_expire_at_the_period_end(w: ShopWorld) -> None:
    person, account = w.person()
    w.award(account, 30, earned=datetime(2025, 3, 15, tzinfo=CHINA_TZ), expires=YEAR_END)
    w.award(account, 20, earned=datetime(2025, 11, 15, tzinfo=CHINA_TZ), expires=YEAR_END)
    item = w.item(price=40, stock=1)
    w.clock.now = datetime(2025, 12, 10, 10, tzinfo=CHINA_TZ)
    placed = w.shop.place_order(w.c, person, item, idempotency_key="dec", actor_id=w.staff)
    assert placed.pickup_code is not None
    w.shop.fulfil(w.c, placed.pickup_code, actor_id=w.staff)
    assert _lots(w, account) == [(30, 0), (20, 10)]  # 30 then 10 were redeemed
    expiry = _expiry(w)
    assert expiry.run(w.c, now=datetime(2025, 12, 31, 23, 59, tzinfo=CHINA_TZ)).points == 0  # not yet
    run = expiry.run(w.c, now=YEAR_END)
    assert (run.accounts, run.points, run.retried) == (1, 10, 0)
    assert w.posted(account) == 0 and _lots(w, account) == [(30, 0), (20, 0)]
    assert w.ledger.balance(w.c, w.sys(SystemAccount.EXPIRY_SINK)).posted == 10
    assert expiry.run(w.c, now=YEAR_END).points == 0  # nothing left: a second run writes nothing


def test_held_points_are_skipped_and_expire_when_released(w: ShopWorld) -> None:
    person, account = w.person()
    w.award(account, 30, earned=datetime(2025, 3, 15, tzinfo=CHINA_TZ), expires=YEAR_END)
    w.award(account, 5, earned=datetime(2025, 6, 1, tzinfo=CHINA_TZ), expires=None)  # never expires
    item = w.item(price=20, stock=1)
    w.clock.now = datetime(2025, 12, 20, tzinfo=CHINA_TZ)
    placed = w.shop.place_order(w.c, person, item, idempotency_key="held", actor_id=w.staff)
    w.clock.now = datetime(2026, 1, 2, tzinfo=CHINA_TZ)
    run = _expiry(w).run(w.c)
    assert run.points == 10  # 30 - 20 held; the lot that never expires is untouched
    assert _lots(w, account) == [(30, 0), (5, 5)]
    closed = w.shop.cancel(w.c, placed.order.order_id, actor_id=w.staff, person_id=person)
    assert closed.expired_points == 20  # released after the expiry: expired at once
    assert w.posted(account) == 5
    assert w.ledger.balance(w.c, w.sys(SystemAccount.EXPIRY_SINK)).posted == 30


def test_many_accounts_in_batches_and_everywhere(w: ShopWorld) -> None:
    accounts = [w.person()[1] for _ in range(5)]
    for i, account in enumerate(accounts):
        w.award(account, i + 1, earned=datetime(2025, 5, 1, tzinfo=CHINA_TZ), expires=YEAR_END)
    assert len(accounts) < BATCH_ACCOUNTS
    expired = _expiry(w).run_everywhere(now=YEAR_END)
    assert expired >= 15  # other tests' communities may have expired points too
    assert [w.posted(a) for a in accounts] == [0] * 5
    assert _expiry(w).run(w.c, now=YEAR_END).points == 0


def test_a_spend_racing_the_run_is_written_one_by_one(w: ShopWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch finds less than it read (a spend came between): it is retried per account with
    amounts read afresh, and what is still there expires."""
    person, account = w.person()
    _, other = w.person()
    w.award(account, 10, earned=datetime(2025, 5, 1, tzinfo=CHINA_TZ), expires=YEAR_END)
    w.award(other, 7, earned=datetime(2025, 5, 1, tzinfo=CHINA_TZ), expires=YEAR_END)
    expiry = _expiry(w)
    real = w.ledger.post_batch

    def spend_first(requests: object) -> object:
        item = w.item(price=4, stock=1)
        w.clock.now = datetime(2026, 1, 1, 8, tzinfo=CHINA_TZ)
        placed = w.shop.place_order(w.c, person, item, idempotency_key="race", actor_id=w.staff)
        assert placed.pickup_code is not None
        w.shop.fulfil(w.c, placed.pickup_code, actor_id=w.staff)
        return real(requests)  # type: ignore[arg-type]

    monkeypatch.setattr(w.ledger, "post_batch", spend_first)
    run = expiry.run(w.c, now=YEAR_END)
    assert (run.points, run.retried) == (13, 2)  # 10 - 4 spent, and 7
    assert w.posted(account) == 0 and w.posted(other) == 0
