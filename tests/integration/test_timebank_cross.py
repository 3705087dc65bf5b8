"""Cross-community exchange (通存通兑) on real PostgreSQL: only where the region switched it on;
two linked transfers through a clearing account in each community, each in its own log, both or
neither; the switch's history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool
from timebank_world import COIN, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.timebank import ExchangeState, Resolution
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store.db import Conn


@pytest.fixture
def w(pool: ConnectionPool[Conn], owner: Conn, ledger: Ledger, communities: Communities) -> Iterator[World]:
    world = make_world(pool, owner, ledger, communities)
    world.community()  # a second community in the same region
    yield world
    world.check_invariants()


def _two(w: World) -> tuple[int, int]:
    a, b = sorted(w.infos)[:2]
    return a, b


def _confirmed(w: World, a: int, b: int, *, minutes: int = 90) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An exchange requested in A, served by a provider of B, confirmed: (exchange, recipient, provider)."""
    recipient, provider = w.person(a, age=70), w.person(b)
    w.award(a, recipient, 5 * COIN)
    me = w.me(a, recipient)
    ex = w.bank.request(a, recipient, service="助浴", planned_minutes=120, actor=me)
    w.bank.match(a, ex.exchange_id, provider_community_id=b, provider_person_id=provider, actor=w.staff())
    w.bank.start(a, ex.exchange_id, actor=w.me(b, provider))
    w.bank.confirm(a, ex.exchange_id, actor=me, served_minutes=minutes)
    return ex.exchange_id, recipient, provider


def test_refused_until_the_region_switches_it_on(w: World) -> None:
    a, b = _two(w)
    recipient, provider = w.person(a, age=70), w.person(b)
    w.award(a, recipient, COIN)
    ex = w.bank.request(a, recipient, service="助浴", planned_minutes=60, actor=w.me(a, recipient))
    with pytest.raises(LedgerError) as caught:
        w.bank.match(a, ex.exchange_id, provider_community_id=b, provider_person_id=provider, actor=w.staff())
    assert caught.value.code is ErrorCode.CROSS_COMMUNITY_DISABLED
    assert w.bank.get(a, ex.exchange_id).state is ExchangeState.REQUESTED

    with pytest.raises(LedgerError) as caught:
        w.members.set_cross_community(w.region_id, True, actor=w.me(a, recipient))
    assert caught.value.code is ErrorCode.ACTOR_NOT_ALLOWED
    w.members.set_cross_community(w.region_id, True, actor=w.staff(), note="街道决定开通通存通兑")
    w.members.set_cross_community(w.region_id, True, actor=w.staff())  # no change, no history
    ex = w.bank.match(
        a, ex.exchange_id, provider_community_id=b, provider_person_id=provider, actor=w.staff()
    )
    assert ex.cross_community and ex.provider_community_id == b

    w.members.set_cross_community(w.region_id, False, actor=w.staff())
    enabled, history = w.members.cross_community(w.region_id)
    assert not enabled
    assert [(e.enabled, e.actor_id, e.note) for e in history] == [
        (True, w.staff_user, "街道决定开通通存通兑"),
        (False, w.staff_user, ""),
    ]
    with pytest.raises(LedgerError) as caught:
        w.members.cross_community(2**40)
    assert caught.value.code is ErrorCode.COMMUNITY_NOT_FOUND


def test_a_community_of_another_region_is_always_refused(w: World) -> None:
    a, _ = _two(w)
    w.members.set_cross_community(w.region_id, True, actor=w.staff())
    elsewhere_region = w.communities.create_region(f"tb-{uuid.uuid4().hex[:8]}", "另一街道")
    w.members.set_cross_community(elsewhere_region, True, actor=w.staff())
    elsewhere = w.community(region_id=elsewhere_region)
    recipient, provider = w.person(a, age=70), w.person(elsewhere)
    w.award(a, recipient, COIN)
    ex = w.bank.request(a, recipient, service="助浴", planned_minutes=60, actor=w.me(a, recipient))
    with pytest.raises(LedgerError) as caught:
        w.bank.match(
            a, ex.exchange_id, provider_community_id=elsewhere, provider_person_id=provider, actor=w.staff()
        )
    assert caught.value.code is ErrorCode.CROSS_COMMUNITY_DISABLED


def test_settlement_is_two_linked_transfers_one_in_each_log(w: World) -> None:
    a, b = _two(w)
    w.members.set_cross_community(w.region_id, True, actor=w.staff())
    xid, recipient, provider = _confirmed(w, a, b, minutes=90)
    sizes = (w.log_size(a), w.log_size(b))
    ex = w.bank.settle(a, xid, actor=w.me(b, provider))
    assert ex.state is ExchangeState.SETTLED and ex.charged_coin_minutes == 90
    assert (w.log_size(a), w.log_size(b)) == (sizes[0] + 2, sizes[1] + 1)  # release + payment; credit
    assert (w.posted(a, recipient), w.posted(b, provider)) == (5 * COIN - 90, 90)
    assert w.system_posted(a, SystemAccount.CLEARING) == 90
    assert w.system_posted(b, SystemAccount.CLEARING) == -90
    assert w.exchange_transfers(a, xid) == [
        ("timebank_hold", "pending"),
        ("timebank_release", "void"),
        ("timebank_payment", "single"),
    ]
    assert w.exchange_transfers(b, xid) == [("timebank_credit", "single")]
    pay = w.owner.execute(
        "SELECT metadata FROM transfer WHERE community_id = %s AND transfer_id = %s",
        (a, ex.payment_transfer_id),
    ).fetchone()
    credit = w.owner.execute(
        "SELECT metadata FROM transfer WHERE community_id = %s AND transfer_id = %s",
        (b, ex.credit_transfer_id),
    ).fetchone()
    assert pay is not None and credit is not None
    assert pay[0]["linked_community_id"] == b and pay[0]["linked_transfer_id"] == str(ex.credit_transfer_id)
    assert credit[0]["linked_community_id"] == a and credit[0]["linked_transfer_id"] == str(
        ex.payment_transfer_id
    )
    assert pay[0]["exchange_id"] == credit[0]["exchange_id"] == str(xid)
    assert w.bank.settle(a, xid, actor=w.staff()) == ex  # settled once
    assert (w.log_size(a), w.log_size(b)) == (sizes[0] + 2, sizes[1] + 1)


def test_switching_off_stops_unsettled_exchanges_but_not_their_cancellation(w: World) -> None:
    a, b = _two(w)
    w.members.set_cross_community(w.region_id, True, actor=w.staff())
    xid, recipient, provider = _confirmed(w, a, b)
    w.members.set_cross_community(w.region_id, False, actor=w.staff())
    with pytest.raises(LedgerError) as caught:
        w.bank.settle(a, xid, actor=w.me(b, provider))
    assert caught.value.code is ErrorCode.CROSS_COMMUNITY_DISABLED
    w.bank.dispute(a, xid, actor=w.me(b, provider), reason="无法结算")
    with pytest.raises(LedgerError) as caught:
        w.bank.resolve(a, xid, actor=w.staff(), resolution=Resolution.SETTLE)
    assert caught.value.code is ErrorCode.CROSS_COMMUNITY_DISABLED
    ex = w.bank.resolve(a, xid, actor=w.staff(), resolution=Resolution.CANCEL)
    assert ex.state is ExchangeState.CANCELLED
    assert w.available(a, recipient) == w.posted(a, recipient) == 5 * COIN
    assert w.exchange_transfers(b, xid) == []


def test_both_or_neither(w: World) -> None:
    """When the provider's leg cannot be written (their account closed in B), nothing of the
    settlement is written in A either: no release, no payment, no leaf, the exchange unchanged."""
    a, b = _two(w)
    w.members.set_cross_community(w.region_id, True, actor=w.staff())
    xid, recipient, provider = _confirmed(w, a, b)
    before = w.bank.get(a, xid)
    sizes = (w.log_size(a), w.log_size(b))
    account = w.coin_account(b, provider)
    w.owner.execute(
        "UPDATE account SET flags = flags | 8 WHERE community_id = %s AND account_id = %s", (b, account)
    )
    try:
        with pytest.raises(LedgerError) as caught:
            w.bank.settle(a, xid, actor=w.staff())
        assert caught.value.code is ErrorCode.ACCOUNT_CLOSED
        assert w.bank.get(a, xid) == before
        assert (w.log_size(a), w.log_size(b)) == sizes
        assert w.available(a, recipient) == 5 * COIN - 120  # still held
        assert w.system_posted(a, SystemAccount.CLEARING) == 0
        claimed = w.owner.execute(
            "SELECT count(*) FROM idempotency WHERE community_id = ANY(%s) AND key LIKE %s",
            ([a, b], f"timebank:{xid}:%"),
        ).fetchone()
        assert claimed == (1,)  # only the hold's key: the failed settlement claimed nothing
    finally:
        w.owner.execute(
            "UPDATE account SET flags = flags & ~8 WHERE community_id = %s AND account_id = %s", (b, account)
        )
    ex = w.bank.settle(a, xid, actor=w.staff())  # and a later attempt settles normally
    assert ex.state is ExchangeState.SETTLED


def test_the_provider_communitys_storage_cap_and_pool(w: World) -> None:
    a, b = _two(w)
    w.members.set_cross_community(w.region_id, True, actor=w.staff())
    w.publish(b, coin_storage_cap_minutes=100)
    xid, recipient, provider = _confirmed(w, a, b, minutes=90)
    w.award(b, provider, 40)
    ex = w.bank.settle(a, xid, actor=w.staff())
    assert (ex.charged_coin_minutes, ex.credited_coin_minutes, ex.pool_coin_minutes) == (90, 60, 30)
    assert w.posted(b, provider) == 100
    assert w.system_posted(b, SystemAccount.DONATION_POOL) == 30
    assert w.system_posted(a, SystemAccount.DONATION_POOL) == 0
    assert w.posted(a, recipient) == 5 * COIN - 90
