"""Races on the time bank with real threads, each on its own pooled connection: an exchange settles
once however many settle it; a recipient racing several requests (and gifts) cannot overdraw; a
switch turned off races a cross-community settlement without a half-written settlement."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from psycopg_pool import ConnectionPool
from timebank_world import COIN, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.errors import LedgerError
from ledger.domain.timebank import ExchangeState
from ledger.domain.timebank_rules import RelationKind
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store.db import Conn

pytestmark = pytest.mark.slow
T = TypeVar("T")


@pytest.fixture
def w(pool: ConnectionPool[Conn], owner: Conn, ledger: Ledger, communities: Communities) -> Iterator[World]:
    world = make_world(pool, owner, ledger, communities)
    yield world
    world.check_invariants()


def race(n: int, work: Callable[[int], T]) -> list[T | LedgerError]:
    """Run ``work(i)`` on n threads released together; business failures come back as values."""
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


def test_settlements_racing_on_one_exchange_settle_once(w: World) -> None:
    c = next(iter(w.infos))
    recipient, provider = w.person(c, age=70), w.person(c)
    w.award(c, recipient, 3 * COIN)
    me, them = w.me(c, recipient), w.me(c, provider)
    ex = w.bank.request(c, recipient, service="陪诊", planned_minutes=120, actor=me)
    w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    w.bank.start(c, ex.exchange_id, actor=them)
    w.bank.confirm(c, ex.exchange_id, actor=me, served_minutes=120)
    actors = [me, them, w.staff()]
    results = race(8, lambda i: w.bank.settle(c, ex.exchange_id, actor=actors[i % 3]))
    assert outcomes(results) == Counter({"ok": 8})
    settled = {r.payment_transfer_id for r in results if not isinstance(r, LedgerError)}
    assert len(settled) == 1 and None not in settled
    assert [k for k, _ in w.exchange_transfers(c, ex.exchange_id)].count("timebank_payment") == 1
    assert [e.kind for e in w.bank.history(c, ex.exchange_id)].count("settled") == 1
    assert (w.posted(c, recipient), w.posted(c, provider)) == (COIN, 2 * COIN)


def test_a_recipient_racing_requests_cannot_overdraw(w: World) -> None:
    c = next(iter(w.infos))
    recipient = w.person(c, age=70)
    w.award(c, recipient, 200)
    me = w.me(c, recipient)
    results = race(6, lambda i: w.bank.request(c, recipient, service="陪聊", planned_minutes=120, actor=me))
    assert outcomes(results) == Counter({"ok": 1, "INSUFFICIENT_FUNDS": 5})
    assert w.available(c, recipient) == 80
    assert len(w.bank.list(c, recipient_person_id=recipient)) == 1  # refused requests left nothing


def test_settling_one_exchange_while_racing_others_and_gifts(w: World) -> None:
    """Holds, gifts and settlements of one recipient, all at once: never below zero, and every
    coin accounted for."""
    c = next(iter(w.infos))
    recipient, provider, child = w.person(c, age=70), w.person(c), w.person(c)
    w.award(c, recipient, 300)
    w.members.record_relation(c, recipient, child, RelationKind.CHILD, actor=w.staff())
    me = w.me(c, recipient)
    ex = w.bank.request(c, recipient, service="陪诊", planned_minutes=100, actor=me)
    w.bank.match(c, ex.exchange_id, provider_community_id=c, provider_person_id=provider, actor=w.staff())
    w.bank.start(c, ex.exchange_id, actor=w.staff())
    w.bank.confirm(c, ex.exchange_id, actor=me, served_minutes=100)

    def work(i: int) -> object:
        if i == 0:
            return w.bank.settle(c, ex.exchange_id, actor=w.staff())
        if i % 2:
            return w.bank.request(c, recipient, service="陪聊", planned_minutes=90, actor=me)
        return w.members.gift(c, recipient, child, 90, actor=me, idempotency_key=f"race-{i}")

    results = race(7, work)
    assert not isinstance(results[0], LedgerError)
    spent = sum(90 for r in results[1:] if not isinstance(r, LedgerError))
    assert outcomes(results[1:])["ok"] == 2  # 300 − 100 leaves room for two of 90
    assert w.bank.get(c, ex.exchange_id).state is ExchangeState.SETTLED
    assert w.available(c, recipient) == 300 - 100 - spent >= 0


def test_the_switch_turned_off_while_settling_across_communities(w: World) -> None:
    """Switching off waits for a settlement that read the switch on, and later ones see it off: each
    settlement is whole (both legs) or absent."""
    a = next(iter(w.infos))
    b = w.community()
    w.members.set_cross_community(w.region_id, True, actor=w.staff())
    exchanges = []
    for _ in range(4):
        recipient, provider = w.person(a, age=70), w.person(b)
        w.award(a, recipient, COIN)
        me = w.me(a, recipient)
        ex = w.bank.request(a, recipient, service="助浴", planned_minutes=60, actor=me)
        w.bank.match(a, ex.exchange_id, provider_community_id=b, provider_person_id=provider, actor=w.staff())
        w.bank.start(a, ex.exchange_id, actor=w.staff())
        w.bank.confirm(a, ex.exchange_id, actor=me, served_minutes=60)
        exchanges.append(ex.exchange_id)

    def work(i: int) -> object:
        if i == 4:
            return w.members.set_cross_community(w.region_id, False, actor=w.staff())
        return w.bank.settle(a, exchanges[i], actor=w.staff())

    results = race(5, work)
    assert set(outcomes(results[:4])) <= {"ok", "CROSS_COMMUNITY_DISABLED"}
    settled = sum(1 for x in exchanges if w.bank.get(a, x).state is ExchangeState.SETTLED)
    credits = sum(len(w.exchange_transfers(b, x)) for x in exchanges)
    assert settled == credits == outcomes(results[:4])["ok"]
