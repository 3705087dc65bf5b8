"""Points supermarket on real Postgres: placing reserves stock and holds points in one transaction;
fulfil posts, cancel and expiry void; limits, score gate and active window; released points whose
lots have expired expire at once (scenario 7); invariants after each test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool
from shop_world import ShopWorld, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import OwnerKind, SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.services.rule_settings import CHINA_TZ, RuleSettings
from ledger.store.db import Conn


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


def _code(err: pytest.ExceptionInfo[LedgerError]) -> ErrorCode:
    return err.value.code


def test_place_holds_points_and_reserves_stock_then_fulfil_posts(w: ShopWorld) -> None:
    person, account = w.person(points=120)
    item = w.item(price=50, stock=3)
    placed = w.shop.place_order(w.c, person, item, 2, idempotency_key="o1", actor_id=w.staff)
    assert placed.order.state == "placed" and placed.order.total_points == 100
    assert placed.pickup_code is not None and len(placed.pickup_code) == 9 and placed.pickup_code[4] == "-"
    assert w.available(account) == 20 and w.posted(account) == 120
    assert w.shop.get_item(w.c, item).stock_available == 1
    assert w.shop.get_item(w.c, item).stock_reserved == 2
    # The code is stored only as a keyed hash.
    (stored,) = w.owner.execute(
        "SELECT pickup_code_hash FROM shop_order WHERE community_id = %s", (w.c,)
    ).fetchone() or (None,)
    assert placed.pickup_code.replace("-", "").encode() not in bytes(stored)
    done = w.shop.fulfil(w.c, placed.pickup_code.lower().replace("-", " "), actor_id=w.staff)
    assert done.state == "fulfilled" and done.resolve_transfer_id is not None
    assert w.posted(account) == 20 and w.available(account) == 20
    sink = w.ledger.balance(w.c, w.sys(SystemAccount.REDEMPTION_SINK))
    assert sink.posted == 100
    assert (w.shop.get_item(w.c, item).stock_available, w.shop.get_item(w.c, item).stock_reserved) == (1, 0)
    # The same code again names no open order.
    with pytest.raises(LedgerError) as err:
        w.shop.fulfil(w.c, placed.pickup_code, actor_id=w.staff)
    assert _code(err) is ErrorCode.PICKUP_CODE_INVALID


def test_wrong_codes_are_refused_alike_and_rate_limited(w: ShopWorld) -> None:
    for text in ("0000-0000", "ABCD", "ABCD-EFGH", "ABCD-EFGH-JK"):
        with pytest.raises(LedgerError) as err:
            w.shop.fulfil(w.c, text, actor_id=w.staff)
        assert _code(err) is ErrorCode.PICKUP_CODE_INVALID
        assert set(err.value.detail) == {"field"}
    for _ in range(7):  # ten a minute by default
        try:
            w.shop.fulfil(w.c, "ABCD-EFGH", actor_id=w.staff)
        except LedgerError as exc:
            last = exc
    assert last.code is ErrorCode.RATE_LIMITED


def test_cancel_returns_every_point_and_the_stock(w: ShopWorld) -> None:
    person, account = w.person(points=80)
    item = w.item(price=30, stock=1)
    placed = w.shop.place_order(w.c, person, item, idempotency_key="o", actor_id=w.staff)
    other, _ = w.person(points=80)
    with pytest.raises(LedgerError) as err:  # someone else's order does not exist for them
        w.shop.cancel(w.c, placed.order.order_id, actor_id=w.staff, person_id=other)
    assert _code(err) is ErrorCode.ORDER_NOT_FOUND
    cancelled = w.shop.cancel(w.c, placed.order.order_id, actor_id=w.staff, person_id=person)
    assert cancelled.state == "cancelled" and cancelled.expired_points is None
    assert w.available(account) == 80 and w.posted(account) == 80
    assert w.shop.get_item(w.c, item).stock_available == 1
    with pytest.raises(LedgerError) as err:
        w.shop.cancel(w.c, placed.order.order_id, actor_id=w.staff, person_id=None)
    assert _code(err) is ErrorCode.INVALID_STATE_TRANSITION
    events = w.owner.execute(
        "SELECT from_state, to_state FROM shop_order_event WHERE community_id = %s ORDER BY at", (w.c,)
    ).fetchall()
    assert events == [(None, "placed"), ("placed", "cancelled")]


def test_refusals_keep_points_and_stock(w: ShopWorld) -> None:
    person, account = w.person(points=40)
    item = w.item(price=50, stock=2)
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, person, item, idempotency_key="poor", actor_id=w.staff)
    assert _code(err) is ErrorCode.INSUFFICIENT_FUNDS
    assert w.shop.get_item(w.c, item).stock_available == 2 and w.available(account) == 40
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, person, item, 3, idempotency_key="many", actor_id=w.staff)
    assert _code(err) is ErrorCode.OUT_OF_STOCK
    off = w.item(price=1, active=False)
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, person, off, idempotency_key="off", actor_id=w.staff)
    assert _code(err) is ErrorCode.ITEM_NOT_ACTIVE
    later = w.item(price=1, active_from=w.clock() + timedelta(days=1))
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, person, later, idempotency_key="later", actor_id=w.staff)
    assert _code(err) is ErrorCode.ITEM_NOT_ACTIVE
    household_item = w.item(price=1, limit_scope="household")
    with pytest.raises(LedgerError) as err:  # no household, so nobody to pay
        w.shop.place_order(w.c, person, household_item, idempotency_key="hh", actor_id=w.staff)
    assert _code(err) is ErrorCode.NOT_IN_HOUSEHOLD
    assert w.owner.execute("SELECT count(*) FROM shop_order WHERE community_id = %s", (w.c,)).fetchone() == (
        0,
    )


def test_idempotency_key_replays_without_the_code_and_conflicts_on_another_request(w: ShopWorld) -> None:
    person, account = w.person(points=100)
    item = w.item(price=10, stock=5)
    first = w.shop.place_order(w.c, person, item, idempotency_key="k", actor_id=w.staff)
    again = w.shop.place_order(w.c, person, item, idempotency_key="k", actor_id=w.staff)
    assert again.replayed and again.pickup_code is None and again.order.order_id == first.order.order_id
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, person, item, 2, idempotency_key="k", actor_id=w.staff)
    assert _code(err) is ErrorCode.IDEMPOTENCY_CONFLICT
    assert w.available(account) == 90


def test_item_limits_once_per_period_and_the_community_limit(
    w: ShopWorld, pool: ConnectionPool[Conn]
) -> None:
    w.clock.now = datetime(2025, 5, 10, 12, tzinfo=CHINA_TZ)
    a, _ = w.person(points=500)
    b, _ = w.person(points=500)
    w.household(a, b)
    limited = w.item(price=1, limit_quantity=2, limit_scope="person")
    w.shop.place_order(w.c, a, limited, 2, idempotency_key="l1", actor_id=w.staff)
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, a, limited, idempotency_key="l2", actor_id=w.staff)
    assert _code(err) is ErrorCode.REDEMPTION_LIMIT_REACHED and err.value.detail["limit"] == "item_quantity"
    w.shop.place_order(w.c, b, limited, idempotency_key="l3", actor_id=w.staff)  # per person: b may
    once = w.item(price=1, once_per_period=True, limit_period="quarter")
    order = w.shop.place_order(w.c, a, once, idempotency_key="q1", actor_id=w.staff)
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, a, once, idempotency_key="q2", actor_id=w.staff)
    assert err.value.detail["limit"] == "once_per_period"
    w.shop.cancel(w.c, order.order.order_id, actor_id=w.staff, person_id=a)  # a cancelled one does not count
    w.shop.place_order(w.c, a, once, idempotency_key="q3", actor_id=w.staff)
    w.clock.now = datetime(2025, 7, 1, 9, tzinfo=CHINA_TZ)  # next quarter
    w.shop.place_order(w.c, a, once, idempotency_key="q4", actor_id=w.staff)
    # The community's limit: one redemption per household per quarter, whoever in it redeems.
    RuleSettings(pool).publish(
        w.c, {"redemption_limit_per_household_per_period": 1}, effective_from=datetime(2025, 6, 1).date()
    )
    with pytest.raises(LedgerError) as err:
        w.shop.place_order(w.c, b, limited, idempotency_key="l4", actor_id=w.staff)
    assert err.value.detail["limit"] == "community"


def test_household_items_are_paid_by_the_household_and_gated_by_its_score(w: ShopWorld) -> None:
    a, own = w.person(points=100)
    b, _ = w.person()
    household, hh_account = w.household(a, b, points=120)
    score = w.open(OwnerKind.HOUSEHOLD, household, Unit.SCORE_POINTS)
    item = w.item(price=50, limit_scope="household", min_household_score_points=90)
    issuance = w.info.system_accounts[(SystemAccount.ISSUANCE, Unit.SCORE_POINTS)]
    deduction = (Posting(issuance, Unit.SCORE_POINTS, 15), Posting(score, Unit.SCORE_POINTS, -15))
    w.ledger.transfer(TransferRequest(w.c, "score", deduction, "s"))
    with pytest.raises(LedgerError) as err:  # base 100 - 15 = 85 < 90
        w.shop.place_order(w.c, a, item, idempotency_key="h1", actor_id=w.staff)
    assert _code(err) is ErrorCode.SCORE_GATE_NOT_MET
    ok = w.item(price=50, limit_scope="household", min_household_score_points=80)
    placed = w.shop.place_order(w.c, a, ok, idempotency_key="h2", actor_id=w.staff)
    assert placed.order.account_id == hh_account and placed.order.household_id == household
    assert w.available(hh_account) == 70 and w.available(own) == 100
    # Another member sees and may cancel the household's order; the list shows it to both.
    assert [o.order_id for o in w.shop.list_orders(w.c, person_id=b)] == [placed.order.order_id]
    w.shop.cancel(w.c, placed.order.order_id, actor_id=w.staff, person_id=b)
    assert w.available(hh_account) == 120


def test_unclaimed_orders_expire_after_the_pickup_days(w: ShopWorld) -> None:
    person, account = w.person(points=60)
    item = w.item(price=20, stock=2)
    placed = w.shop.place_order(w.c, person, item, idempotency_key="u", actor_id=w.staff)
    assert w.shop.expire_unclaimed(w.c) == 0
    w.clock.now = w.clock() + timedelta(days=14, seconds=1)
    assert w.shop.expire_unclaimed_everywhere() >= 1
    order = w.shop.get_order(w.c, placed.order.order_id, person_id=person)
    assert order.state == "unclaimed_expired" and w.available(account) == 60
    assert w.shop.get_item(w.c, item).stock_available == 2
    assert placed.pickup_code is not None
    with pytest.raises(LedgerError) as err:
        w.shop.fulfil(w.c, placed.pickup_code, actor_id=w.staff)
    assert _code(err) is ErrorCode.PICKUP_CODE_INVALID


def test_scenario_7_oldest_lots_first_and_released_points_of_expired_lots_expire(w: ShopWorld) -> None:
    """Lots 30 (March) and 20 (November), both expiring at the year end; redeeming 40 in December
    takes 30 then 10. Collected: 10 remain in the November lot until the year-end expiry run (not
    built yet). Not collected and released after the year end: all 40 expire at once."""
    year_end = datetime(2026, 1, 1, tzinfo=CHINA_TZ)
    person, account = w.person()
    w.award(account, 30, earned=datetime(2025, 3, 15, tzinfo=CHINA_TZ), expires=year_end)
    w.award(account, 20, earned=datetime(2025, 11, 15, tzinfo=CHINA_TZ), expires=year_end)
    item = w.item(price=40, stock=2)
    w.clock.now = datetime(2025, 12, 10, 10, tzinfo=CHINA_TZ)
    kept = w.shop.place_order(w.c, person, item, idempotency_key="dec", actor_id=w.staff)
    taken = w.owner.execute(
        "SELECT l.amount, -m.amount FROM lot_movement m JOIN lot l USING (community_id, lot_id)"
        " WHERE m.community_id = %s AND m.transfer_id = %s ORDER BY l.earned_at",
        (w.c, kept.order.hold_transfer_id),
    ).fetchall()
    assert taken == [(30, 30), (20, 10)]
    # Not collected by the year end: released on 2 January, the 40 expire instead of returning.
    w.clock.now = datetime(2026, 1, 2, 9, tzinfo=CHINA_TZ)
    closed = w.shop.cancel(w.c, kept.order.order_id, actor_id=w.staff, person_id=person)
    assert closed.expired_points == 40 and closed.expiry_transfer_id is not None
    assert w.posted(account) == 10 and w.available(account) == 10
    assert w.ledger.balance(w.c, w.sys(SystemAccount.EXPIRY_SINK)).posted == 40
    remaining = w.owner.execute(
        "SELECT amount, remaining FROM lot WHERE community_id = %s AND account_id = %s ORDER BY earned_at",
        (w.c, account),
    ).fetchall()
    assert remaining == [(30, 0), (20, 10)]  # the 10 never held wait for the expiry run


def test_release_before_expiry_returns_the_points(w: ShopWorld) -> None:
    year_end = datetime(2026, 1, 1, tzinfo=CHINA_TZ)
    person, account = w.person()
    w.award(account, 30, earned=datetime(2025, 3, 15, tzinfo=CHINA_TZ), expires=year_end)
    item = w.item(price=25, stock=1)
    w.clock.now = datetime(2025, 12, 10, tzinfo=CHINA_TZ)
    placed = w.shop.place_order(w.c, person, item, idempotency_key="x", actor_id=w.staff)
    w.clock.now = datetime(2025, 12, 30, tzinfo=CHINA_TZ)
    closed = w.shop.cancel(w.c, placed.order.order_id, actor_id=w.staff, person_id=None)
    assert closed.expired_points is None and w.available(account) == 30


def test_stock_write_off_and_restock_are_recorded(w: ShopWorld) -> None:
    item = w.item(stock=5)
    w.shop.write_off(w.c, item, 2, actor_id=w.staff, note="破损")
    with pytest.raises(LedgerError) as err:
        w.shop.write_off(w.c, item, 4, actor_id=w.staff)
    assert _code(err) is ErrorCode.OUT_OF_STOCK
    assert w.shop.restock(w.c, item, 7, actor_id=w.staff).stock_available == 10
    kinds = w.owner.execute(
        "SELECT kind, quantity, actor_id FROM shop_stock_movement WHERE community_id = %s"
        " ORDER BY movement_id",
        (w.c,),
    ).fetchall()
    assert [(k, q) for k, q, _ in kinds] == [("restock", 5), ("write_off", 2), ("restock", 7)]
    assert all(a == w.staff for _, _, a in kinds)


def test_append_only_and_order_terms_are_enforced_by_the_database(w: ShopWorld, db_url: str) -> None:
    person, _ = w.person(points=10)
    placed = w.shop.place_order(w.c, person, w.item(price=5), idempotency_key="t", actor_id=w.staff)
    with psycopg.connect(db_url) as conn:
        for statement in (
            "UPDATE shop_stock_movement SET quantity = 9 WHERE community_id = %s",
            "DELETE FROM shop_order_event WHERE community_id = %s",
            "DELETE FROM shop_order WHERE community_id = %s",
            "UPDATE shop_order SET total_points = 1, price_points = 1, quantity = 1 WHERE community_id = %s",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                conn.execute(statement, (w.c,))
            conn.rollback()
    assert w.shop.get_order(w.c, placed.order.order_id, person_id=None).total_points == 5
