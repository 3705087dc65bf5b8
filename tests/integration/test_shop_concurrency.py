"""Races on the points supermarket with real threads, each on its own pooled connection: stock never
oversells, every loser keeps every point, one key orders once; scenario 6."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from psycopg_pool import ConnectionPool
from shop_world import ShopWorld, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import LedgerError
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.services.shop import PlacedOrder
from ledger.store.db import Conn

pytestmark = pytest.mark.slow
T = TypeVar("T")


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
    world.check()


def race(n: int, work: Callable[[int], T]) -> list[T | LedgerError]:
    barrier = threading.Barrier(n)

    def run(i: int) -> T | LedgerError:
        barrier.wait(timeout=60)
        try:
            return work(i)
        except LedgerError as err:
            return err

    with ThreadPoolExecutor(max_workers=n) as executor:
        return [f.result(timeout=120) for f in [executor.submit(run, i) for i in range(n)]]


def outcomes(results: list[object]) -> Counter[str]:
    return Counter(str(r.code) if isinstance(r, LedgerError) else "ok" for r in results)


def test_fifty_buyers_for_ten_units_make_exactly_ten_orders(w: ShopWorld) -> None:
    buyers = [w.person(points=100) for _ in range(50)]
    item = w.item(price=60, stock=10)
    results = race(
        50, lambda i: w.shop.place_order(w.c, buyers[i][0], item, idempotency_key=f"b{i}", actor_id=w.staff)
    )
    assert outcomes(results) == Counter({"ok": 10, "OUT_OF_STOCK": 40})
    for (_, account), result in zip(buyers, results, strict=True):
        won = isinstance(result, PlacedOrder)
        assert w.available(account) == (40 if won else 100)
        assert w.posted(account) == 100
    view = w.shop.get_item(w.c, item)
    assert (view.stock_available, view.stock_reserved) == (0, 10)
    sink = w.ledger.balance(w.c, w.sys(SystemAccount.REDEMPTION_SINK))
    assert (sink.posted, sink.pending_in) == (0, 600)


def test_one_buyer_double_submitting_one_key_orders_once(w: ShopWorld) -> None:
    person, account = w.person(points=100)
    item = w.item(price=30, stock=5)
    results = race(
        8, lambda i: w.shop.place_order(w.c, person, item, idempotency_key="same", actor_id=w.staff)
    )
    assert outcomes(results) == Counter({"ok": 8})
    placed = [r for r in results if isinstance(r, PlacedOrder)]
    assert len({r.order.order_id for r in placed}) == 1
    assert [r.replayed for r in placed].count(False) == 1  # only the first answer shows the code
    assert w.available(account) == 70 and w.shop.get_item(w.c, item).stock_available == 4


def test_scenario_6_two_households_race_for_the_last_unit(w: ShopWorld) -> None:
    """Two households with 120 points race for one item costing 50 with stock 1: one order is
    fulfilled, the other gets OUT_OF_STOCK and keeps 120."""
    people = [w.person()[0] for _ in range(2)]
    households = [w.household(p, points=120) for p in people]
    item = w.item(price=50, stock=1, limit_scope="household")
    results = race(
        2, lambda i: w.shop.place_order(w.c, people[i], item, idempotency_key="s6", actor_id=w.staff)
    )
    assert outcomes(results) == Counter({"ok": 1, "OUT_OF_STOCK": 1})
    winner = next(i for i, r in enumerate(results) if isinstance(r, PlacedOrder))
    placed = results[winner]
    assert isinstance(placed, PlacedOrder) and placed.pickup_code is not None
    assert w.shop.fulfil(w.c, placed.pickup_code, actor_id=w.staff).state == "fulfilled"
    assert w.posted(households[winner][1]) == 70
    assert w.posted(households[1 - winner][1]) == 120 and w.available(households[1 - winner][1]) == 120


def test_fulfil_and_cancel_racing_on_one_order_close_it_once(w: ShopWorld) -> None:
    person, account = w.person(points=50)
    item = w.item(price=50, stock=1)
    placed = w.shop.place_order(w.c, person, item, idempotency_key="r", actor_id=w.staff)
    code = placed.pickup_code
    assert code is not None

    def work(i: int) -> object:
        if i % 2:
            return w.shop.fulfil(w.c, code, actor_id=w.staff)
        return w.shop.cancel(w.c, placed.order.order_id, actor_id=w.staff, person_id=person)

    results = race(6, work)
    assert outcomes(results)["ok"] == 1
    state = w.shop.get_order(w.c, placed.order.order_id, person_id=None).state
    assert w.posted(account) == (0 if state == "fulfilled" else 50)
