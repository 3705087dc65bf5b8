"""Races on service records with real threads, each on its own pooled connection: one record is
credited exactly once however many verify or post it, and caps hold across concurrent records."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, time
from typing import TypeVar

import pytest
from psycopg_pool import ConnectionPool
from service_world import HOUR, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.errors import LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.service_records import CorrectionState, RecordState
from ledger.domain.units import Unit
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.store.db import Conn

pytestmark = pytest.mark.slow
T = TypeVar("T")
MAR_5 = date(2025, 3, 5)


@pytest.fixture
def w(
    pool: ConnectionPool[Conn],
    owner: Conn,
    ledger: Ledger,
    communities: Communities,
    community: CommunityInfo,
) -> World:
    return make_world(pool, owner, ledger, communities, community)


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


def assert_invariants(w: World) -> None:
    assert check_community(w.owner, w.cid) == []


def test_two_verifiers_racing_on_one_record_post_it_exactly_once(w: World) -> None:
    volunteer = w.person()
    verifiers = [w.leader, uuid7()]
    for hour in (8, 12, 16):  # a few rounds on fresh records: the interleavings differ
        record_id = w.record(volunteer, w.activity(), MAR_5, time(hour, 0), time(hour + 3, 0)).record_id
        results = race(2, lambda i, r=record_id: w.records.verify(w.cid, r, verifier_id=verifiers[i]))
        assert outcomes(results) == Counter({"ok": 1, "INVALID_STATE_TRANSITION": 1})
    posted = [r for r in w.records.list(w.cid, person_id=volunteer) if r.state is RecordState.POSTED]
    assert len(posted) == 3
    for r in posted:
        assert len(w.transfers_for(r.record_id)) == 1
        assert r.verified_by in verifiers
        assert [e.kind for e in w.records.history(w.cid, r.record_id)].count("posted") == 1
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 3 * 180
    assert_invariants(w)


def test_one_verifier_clicking_four_times_posts_once(w: World) -> None:
    volunteer = w.person()
    record = w.record(volunteer, w.activity(), MAR_5, time(9, 0), time(12, 0))
    results = race(4, lambda _: w.records.verify(w.cid, record.record_id, verifier_id=w.leader))
    assert outcomes(results) == Counter({"ok": 4})
    assert {r.transfer_id for r in results if not isinstance(r, LedgerError)} == {
        w.records.get(w.cid, record.record_id).transfer_id
    }
    assert len(w.transfers_for(record.record_id)) == 1
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 180


def test_racing_posters_of_a_verified_record(w: World) -> None:
    volunteer = w.person()
    record = w.record(volunteer, w.activity(), MAR_5, time(9, 0), time(12, 0))
    w.records.verify(w.cid, record.record_id, verifier_id=w.leader, post=False)
    results = race(4, lambda _: w.records.post(w.cid, record.record_id, actor_id=w.admin))
    assert outcomes(results) == Counter({"ok": 4})
    assert len(w.transfers_for(record.record_id)) == 1
    assert w.balance(volunteer, Unit.COIN_MINUTES) == 180


def test_caps_hold_when_one_volunteers_records_post_at_once(w: World) -> None:
    """Four 3 h records of one day under a 4 h daily cap, and coins near the storage cap, posted
    together: the day credits exactly 4 h and the coin balance stops exactly at the cap."""
    w.publish(date(2025, 1, 1), daily_service_cap_minutes=240)
    volunteer = w.person()
    w.award(volunteer, Unit.COIN_MINUTES, 1498 * HOUR)
    activities = [w.activity(name=f"活动{i}") for i in range(4)]
    records = [
        w.record(volunteer, a, MAR_5, time(9 + i, 0), time(12 + i, 0)) for i, a in enumerate(activities)
    ]
    pool_before = w.pool_coins()
    results = race(4, lambda i: w.records.verify(w.cid, records[i].record_id, verifier_id=w.leader))
    assert outcomes(results) == Counter({"ok": 4})
    credited = sorted(w.records.get(w.cid, r.record_id).credited_minutes for r in records)
    assert credited == [0, 0, 60, 180]
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 240
    assert w.balance(volunteer, Unit.COIN_MINUTES) == 1500 * HOUR
    assert w.pool_coins() - pool_before == 240 - 120
    assert_invariants(w)


def test_racing_acceptances_of_one_correction(w: World) -> None:
    volunteer = w.person()
    record = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(11, 0))
    filed = w.corrections.file(
        w.cid, record.record_id, start_time=time(9, 0), end_time=time(12, 0), reason="补记", actor_id=w.admin
    )
    deciders = [w.leader, w.admin, w.leader]
    results = race(3, lambda i: w.corrections.accept(w.cid, filed.correction_id, actor_id=deciders[i]))
    ok = [r for r in results if not isinstance(r, LedgerError)]
    assert ok and all(r.state is CorrectionState.ACCEPTED for r in ok)
    assert set(outcomes(results)) <= {"ok", "INVALID_STATE_TRANSITION"}
    assert len(w.transfers_for(record.record_id)) == 3
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 180
    assert_invariants(w)
