"""Households: membership over time, head, split, merge, dissolve, events, errors and races."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.services.communities import CommunityInfo
from ledger.services.households import EventKind, Households
from ledger.store import households_repo
from ledger.store.db import Conn

START = datetime(2026, 1, 1, tzinfo=UTC)
ADMIN = uuid.UUID("00000000-0000-7000-8000-000000000001")


class StepClock:
    """A clock that moves one minute per reading, so every change has its own instant."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def hh(pool: ConnectionPool[Conn], clock: StepClock) -> Households:
    return Households(pool, clock=clock)


@pytest.fixture
def cid(community: CommunityInfo) -> int:
    return community.community_id


@pytest.fixture
def people(owner: Conn, cid: int) -> Callable[[int], list[uuid.UUID]]:
    """Insert ``n`` minimal person rows (the People service is not needed for households)."""

    def make(n: int) -> list[uuid.UUID]:
        ids = [uuid7() for _ in range(n)]
        for person_id in ids:
            owner.execute("INSERT INTO person (community_id, person_id) VALUES (%s, %s)", (cid, person_id))
        return ids

    return make


def fails(code: ErrorCode, field: str | None = None) -> pytest.RaisesExc[LedgerError]:
    return pytest.raises(LedgerError, check=lambda e: e.code is code and e.field == field)


def member_ids(
    hh: Households, cid: int, household_id: uuid.UUID, at: datetime | None = None
) -> set[uuid.UUID]:
    return {m.person_id for m in hh.get(cid, household_id, at=at).members}


def kinds(hh: Households, cid: int, household_id: uuid.UUID) -> list[EventKind]:
    return [e.kind for e in hh.history(cid, household_id)]


def row_counts(owner: Conn, cid: int) -> tuple[int, int, int]:
    row = owner.execute(
        "SELECT (SELECT count(*) FROM household WHERE community_id = %(c)s),"
        " (SELECT count(*) FROM household_member WHERE community_id = %(c)s),"
        " (SELECT count(*) FROM household_event WHERE community_id = %(c)s)",
        {"c": cid},
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def current_heads(owner: Conn, cid: int, household_id: uuid.UUID) -> int:
    row = owner.execute(
        "SELECT count(*) FROM household_member"
        " WHERE community_id = %s AND household_id = %s AND valid_to IS NULL AND is_head",
        (cid, household_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


# -- create and read --------------------------------------------------------------------------------


def test_create_with_head_and_members(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]]
) -> None:
    head, a, b = people(3)
    household_id = hh.create(
        cid,
        "HH-001",
        village_group="一组",
        grid="网格3",
        head_person_id=head,
        member_ids=[a, b],
        actor_id=ADMIN,
    )
    view = hh.get(cid, household_id)
    assert (view.code, view.village_group, view.grid, view.created_by) == ("HH-001", "一组", "网格3", ADMIN)
    assert view.head_person_id == head
    assert view.members[0].person_id == head  # head first
    assert {m.person_id for m in view.members} == {head, a, b}
    assert all(m.valid_to is None for m in view.members)
    assert hh.household_of(cid, a) == household_id
    [created] = hh.history(cid, household_id)
    assert (created.kind, created.actor_id) == (EventKind.CREATED, ADMIN)
    assert created.detail == {"member_ids": [str(head), str(a), str(b)], "head_person_id": str(head)}


def test_create_refusals_write_nothing(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], owner: Conn
) -> None:
    a, b = people(2)
    hh.create(cid, "TAKEN", member_ids=[a])
    before = row_counts(owner, cid)
    for bad in ("", "x" * 33, "a b", "户1", "a_b"):
        with fails(ErrorCode.INVALID_FIELD, "code"):
            hh.create(cid, bad)
    with fails(ErrorCode.INVALID_FIELD, "village_group"):
        hh.create(cid, "G1", village_group="组" * 51)
    with fails(ErrorCode.NON_CANONICAL_TEXT, "grid"):
        hh.create(cid, "G1", grid="e\u0301")  # not NFC
    with fails(ErrorCode.INVALID_FIELD, "member_ids"):
        hh.create(cid, "G1", member_ids=[b, b])
    with fails(ErrorCode.PERSON_NOT_FOUND):
        hh.create(cid, "G1", member_ids=[b, uuid7()])
    with fails(ErrorCode.HOUSEHOLD_CODE_TAKEN, "code"):
        hh.create(cid, "TAKEN", member_ids=[b])
    with fails(ErrorCode.ALREADY_IN_HOUSEHOLD):
        hh.create(cid, "G1", head_person_id=a)
    with fails(ErrorCode.COMMUNITY_NOT_FOUND):
        hh.create(2**62, "G1", member_ids=[uuid7()])
    with fails(ErrorCode.COMMUNITY_NOT_FOUND):
        hh.create(2**62, "G1")
    assert row_counts(owner, cid) == before
    assert hh.household_of(cid, b) is None


def test_reads_of_unknown_things(hh: Households, cid: int) -> None:
    with fails(ErrorCode.HOUSEHOLD_NOT_FOUND):
        hh.get(cid, uuid7())
    with fails(ErrorCode.HOUSEHOLD_NOT_FOUND):
        hh.history(cid, uuid7())
    with fails(ErrorCode.PERSON_NOT_FOUND):
        hh.household_of(cid, uuid7())
    with fails(ErrorCode.INVALID_FIELD, "at"):
        hh.household_of(cid, uuid7(), at=datetime(2026, 1, 1))  # naive: which zone?


# -- membership over time -------------------------------------------------------------------------


def test_membership_as_of_an_earlier_time_answers_the_old_way(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], clock: StepClock, owner: Conn
) -> None:
    head, a, b = people(3)
    household_id = hh.create(cid, "H1", head_person_id=head, member_ids=[a])
    t_created = clock.now
    hh.add_member(cid, household_id, b, actor_id=ADMIN)
    t_added = clock.now
    hh.remove_member(cid, household_id, a, actor_id=ADMIN)
    t_removed = clock.now

    assert member_ids(hh, cid, household_id, at=t_created - timedelta(seconds=1)) == set()
    assert member_ids(hh, cid, household_id, at=t_created) == {head, a}
    assert member_ids(hh, cid, household_id, at=t_added) == {head, a, b}
    assert member_ids(hh, cid, household_id, at=t_removed) == {head, b}
    old = {m.person_id: m for m in hh.get(cid, household_id, at=t_added).members}
    assert old[a].valid_to == t_removed  # the interval as it is now known
    assert hh.household_of(cid, a, at=t_added) == household_id
    assert hh.household_of(cid, a) is None
    assert kinds(hh, cid, household_id) == [
        EventKind.CREATED,
        EventKind.MEMBER_ADDED,
        EventKind.MEMBER_REMOVED,
    ]
    assert [e.actor_id for e in hh.history(cid, household_id)] == [None, ADMIN, ADMIN]
    assert row_counts(owner, cid)[1] == 3  # closed, never deleted


def test_add_and_remove_refusals(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], owner: Conn
) -> None:
    a, b, outsider = people(3)
    first = hh.create(cid, "A1", head_person_id=a)
    second = hh.create(cid, "A2", member_ids=[b])
    with fails(ErrorCode.HOUSEHOLD_NOT_FOUND):
        hh.add_member(cid, uuid7(), outsider)
    with fails(ErrorCode.PERSON_NOT_FOUND):
        hh.add_member(cid, first, uuid7())
    with fails(ErrorCode.PERSON_NOT_FOUND):  # both unknown: the person is reported first
        hh.add_member(cid, uuid7(), uuid7())
    with fails(ErrorCode.ALREADY_IN_HOUSEHOLD):
        hh.add_member(cid, first, b)
    with fails(ErrorCode.ALREADY_IN_HOUSEHOLD):
        hh.add_member(cid, second, b)
    with fails(ErrorCode.NOT_IN_HOUSEHOLD):
        hh.remove_member(cid, first, outsider)
    with fails(ErrorCode.INVALID_FIELD, "new_head_person_id"):
        hh.remove_member(cid, second, b, new_head_person_id=a)  # b is not the head
    erased = uuid7()
    owner.execute(
        "INSERT INTO person (community_id, person_id, erased_at) VALUES (%s, %s, now())", (cid, erased)
    )
    with fails(ErrorCode.PERSON_ERASED):
        hh.add_member(cid, first, erased)
    assert member_ids(hh, cid, first) == {a}
    assert member_ids(hh, cid, second) == {b}


def test_removing_the_head_leaves_no_head_or_hands_over(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], owner: Conn
) -> None:
    head, a, b = people(3)
    household_id = hh.create(cid, "H2", head_person_id=head, member_ids=[a, b])
    hh.remove_member(cid, household_id, head, new_head_person_id=a)
    assert hh.get(cid, household_id).head_person_id == a
    hh.remove_member(cid, household_id, a)
    assert hh.get(cid, household_id).head_person_id is None
    assert current_heads(owner, cid, household_id) == 0
    heads = [e.detail for e in hh.history(cid, household_id) if e.kind is EventKind.HEAD_CHANGED]
    assert heads == [
        {"from_person_id": str(head), "to_person_id": str(a)},
        {"from_person_id": str(a), "to_person_id": None},
    ]


def test_set_head_keeps_the_old_head_on_record(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], clock: StepClock, owner: Conn
) -> None:
    head, a, outsider = people(3)
    household_id = hh.create(cid, "H3", head_person_id=head, member_ids=[a])
    t_before = clock.now
    hh.set_head(cid, household_id, a, actor_id=ADMIN)
    assert hh.get(cid, household_id).head_person_id == a
    assert hh.get(cid, household_id, at=t_before).head_person_id == head
    assert current_heads(owner, cid, household_id) == 1
    assert member_ids(hh, cid, household_id) == {head, a}
    events_before = len(hh.history(cid, household_id))
    hh.set_head(cid, household_id, a)  # already head: nothing happens
    assert len(hh.history(cid, household_id)) == events_before
    with fails(ErrorCode.NOT_IN_HOUSEHOLD):
        hh.set_head(cid, household_id, outsider)
    last = hh.history(cid, household_id)[-1]
    assert (last.kind, last.actor_id, last.detail["to_person_id"]) == (EventKind.HEAD_CHANGED, ADMIN, str(a))


def test_move_member_between_households(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], clock: StepClock
) -> None:
    head, a, other_head, loner = people(4)
    source = hh.create(cid, "M1", head_person_id=head, member_ids=[a])
    target = hh.create(cid, "M2", head_person_id=other_head)
    t_before = clock.now
    hh.move_member(cid, head, target, actor_id=ADMIN)
    assert member_ids(hh, cid, source) == {a}
    assert hh.get(cid, source).head_person_id is None  # the head left
    assert hh.get(cid, target).head_person_id == other_head  # the mover joins as a member
    assert member_ids(hh, cid, target) == {other_head, head}
    assert hh.household_of(cid, head, at=t_before) == source
    assert kinds(hh, cid, source)[-2:] == [EventKind.MEMBER_REMOVED, EventKind.HEAD_CHANGED]
    added = hh.history(cid, target)[-1]
    assert (added.kind, added.detail["from_household_id"], added.actor_id) == (
        EventKind.MEMBER_ADDED,
        str(source),
        ADMIN,
    )
    with fails(ErrorCode.ALREADY_IN_HOUSEHOLD):
        hh.move_member(cid, head, target)
    with fails(ErrorCode.NOT_IN_HOUSEHOLD):
        hh.move_member(cid, loner, target)
    with fails(ErrorCode.HOUSEHOLD_NOT_FOUND):
        hh.move_member(cid, a, uuid7())
    hh.dissolve(cid, source)
    with fails(ErrorCode.HOUSEHOLD_DISSOLVED):
        hh.move_member(cid, head, source)


def test_move_retries_when_the_person_moved_before_the_locks(
    hh: Households,
    cid: int,
    people: Callable[[int], list[uuid.UUID]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (a,) = people(1)
    x = hh.create(cid, "X1", member_ids=[a])
    [stale] = hh.get(cid, x).members
    y, z = hh.create(cid, "Y1"), hh.create(cid, "Z1")
    hh.move_member(cid, a, y)
    # The unlocked look-up still sees the membership in x (it moved to y just before the locks).
    real = households_repo.current_of_persons
    calls: list[int] = []

    def stale_first(conn: Conn, community_id: int, person_ids: list[uuid.UUID]) -> object:
        calls.append(1)
        return {a: stale} if len(calls) == 1 else real(conn, community_id, person_ids)

    monkeypatch.setattr(households_repo, "current_of_persons", stale_first)
    hh.move_member(cid, a, z)
    assert len(calls) == 2
    assert hh.household_of(cid, a) == z
    moved_out = hh.history(cid, y)[-1]
    assert (moved_out.kind, moved_out.detail["to_household_id"]) == (EventKind.MEMBER_REMOVED, str(z))
    assert kinds(hh, cid, x) == [EventKind.CREATED, EventKind.MEMBER_REMOVED]  # x untouched by the retry


# -- split, merge, dissolve --------------------------------------------------------------------------


def test_split_keeps_history_and_events(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], clock: StepClock, owner: Conn
) -> None:
    head, m1, m2, m3 = people(4)
    old = hh.create(cid, "S1", village_group="二组", grid="G7", head_person_id=head, member_ids=[m1, m2, m3])
    t_before = clock.now
    new = hh.split(cid, old, [m2, m3], "S1-2", head_person_id=m2, actor_id=ADMIN)
    assert member_ids(hh, cid, old) == {head, m1}
    assert hh.get(cid, old).head_person_id == head
    new_view = hh.get(cid, new)
    assert (new_view.code, new_view.village_group, new_view.grid) == ("S1-2", "二组", "G7")
    assert new_view.head_person_id == m2
    assert {m.person_id for m in new_view.members} == {m2, m3}
    # The leavers take no earlier membership along: before the split they were in the old household.
    assert member_ids(hh, cid, old, at=t_before) == {head, m1, m2, m3}
    assert member_ids(hh, cid, new, at=t_before) == set()
    assert hh.household_of(cid, m3, at=t_before) == old
    assert hh.household_of(cid, m3) == new
    out = hh.history(cid, old)[-1]
    assert (out.kind, out.actor_id) == (EventKind.SPLIT_OUT, ADMIN)
    assert out.detail == {"to_household_id": str(new), "person_ids": [str(m2), str(m3)]}
    [split_in] = hh.history(cid, new)
    assert split_in.kind is EventKind.SPLIT_IN
    assert split_in.detail["from_household_id"] == str(old)
    assert current_heads(owner, cid, old) == current_heads(owner, cid, new) == 1


def test_split_when_the_head_leaves_needs_a_new_head(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], owner: Conn
) -> None:
    head, m1, m2 = people(3)
    old = hh.create(cid, "S2", head_person_id=head, member_ids=[m1, m2])
    before = row_counts(owner, cid)
    with fails(ErrorCode.INVALID_FIELD, "new_head_person_id"):
        hh.split(cid, old, [head], "S2-2", head_person_id=head)
    with fails(ErrorCode.NOT_IN_HOUSEHOLD):
        hh.split(cid, old, [head], "S2-2", head_person_id=head, new_head_person_id=people(1)[0])
    assert row_counts(owner, cid) == before
    new = hh.split(cid, old, [head], "S2-2", head_person_id=head, new_head_person_id=m1)
    assert hh.get(cid, old).head_person_id == m1
    assert hh.get(cid, new).head_person_id == head
    assert kinds(hh, cid, old)[-2:] == [EventKind.SPLIT_OUT, EventKind.HEAD_CHANGED]
    assert current_heads(owner, cid, old) == 1


def test_split_refusals(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], owner: Conn
) -> None:
    head, m1, m2, outsider = people(4)
    old = hh.create(cid, "S3", head_person_id=head, member_ids=[m1, m2])
    hh.create(cid, "S3-TAKEN")
    before = row_counts(owner, cid)
    with fails(ErrorCode.INVALID_FIELD, "new_code"):
        hh.split(cid, old, [m1], "bad code", head_person_id=m1)
    with fails(ErrorCode.INVALID_FIELD, "person_ids"):
        hh.split(cid, old, [], "S3-2", head_person_id=m1)
    with fails(ErrorCode.INVALID_FIELD, "head_person_id"):
        hh.split(cid, old, [m1], "S3-2", head_person_id=m2)
    with fails(ErrorCode.INVALID_FIELD, "person_ids"):  # everyone leaving is not a split
        hh.split(cid, old, [head, m1, m2], "S3-2", head_person_id=m1)
    with fails(ErrorCode.INVALID_FIELD, "new_head_person_id"):  # the head stays: no replacement
        hh.split(cid, old, [m1], "S3-2", head_person_id=m1, new_head_person_id=m2)
    with fails(ErrorCode.NOT_IN_HOUSEHOLD):
        hh.split(cid, old, [m1, outsider], "S3-2", head_person_id=m1)
    with fails(ErrorCode.HOUSEHOLD_NOT_FOUND):
        hh.split(cid, uuid7(), [m1], "S3-2", head_person_id=m1)
    with fails(ErrorCode.HOUSEHOLD_CODE_TAKEN, "code"):
        hh.split(cid, old, [m1], "S3-TAKEN", head_person_id=m1)
    assert row_counts(owner, cid) == before
    assert member_ids(hh, cid, old) == {head, m1, m2}


def test_merge_moves_members_keeps_target_head_and_dissolves_source(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], clock: StepClock, owner: Conn
) -> None:
    h1, a1, h2, a2, late = people(5)
    target = hh.create(cid, "T1", head_person_id=h1, member_ids=[a1])
    source = hh.create(cid, "T2", head_person_id=h2, member_ids=[a2])
    t_before = clock.now
    hh.merge(cid, source, target, actor_id=ADMIN)
    t_merged = clock.now
    assert member_ids(hh, cid, target) == {h1, a1, h2, a2}
    assert hh.get(cid, target).head_person_id == h1
    assert current_heads(owner, cid, target) == 1
    merged_source = hh.get(cid, source)
    assert merged_source.members == ()
    assert merged_source.dissolved_at == t_merged
    assert member_ids(hh, cid, source, at=t_before) == {h2, a2}
    assert hh.get(cid, source, at=t_before).head_person_id == h2
    assert kinds(hh, cid, source)[-2:] == [EventKind.MERGED_INTO, EventKind.DISSOLVED]
    merged_from = hh.history(cid, target)[-1]
    assert (merged_from.kind, merged_from.actor_id) == (EventKind.MERGED_FROM, ADMIN)
    assert sorted(merged_from.detail["person_ids"]) == sorted([str(h2), str(a2)])
    with fails(ErrorCode.HOUSEHOLD_DISSOLVED):
        hh.add_member(cid, source, late)
    with fails(ErrorCode.HOUSEHOLD_DISSOLVED):
        hh.merge(cid, source, target)
    with fails(ErrorCode.INVALID_FIELD, "target_id"):
        hh.merge(cid, target, target)


def test_merge_into_a_headless_household_brings_the_head(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]]
) -> None:
    a, h2 = people(2)
    target = hh.create(cid, "U1", member_ids=[a])
    source = hh.create(cid, "U2", head_person_id=h2)
    hh.merge(cid, source, target)
    assert hh.get(cid, target).head_person_id == h2
    assert kinds(hh, cid, target)[-2:] == [EventKind.MERGED_FROM, EventKind.HEAD_CHANGED]


def test_dissolve_closes_every_membership(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]], clock: StepClock
) -> None:
    head, a = people(2)
    household_id = hh.create(cid, "D1", head_person_id=head, member_ids=[a])
    t_before = clock.now
    hh.dissolve(cid, household_id, actor_id=ADMIN)
    view = hh.get(cid, household_id)
    assert view.members == () and view.dissolved_at is not None
    assert member_ids(hh, cid, household_id, at=t_before) == {head, a}
    assert hh.household_of(cid, a) is None
    last = hh.history(cid, household_id)[-1]
    assert (last.kind, last.actor_id, sorted(last.detail["person_ids"])) == (
        EventKind.DISSOLVED,
        ADMIN,
        sorted([str(head), str(a)]),
    )
    for change in (
        lambda: hh.dissolve(cid, household_id),
        lambda: hh.set_head(cid, household_id, a),
        lambda: hh.remove_member(cid, household_id, a),
        lambda: hh.split(cid, household_id, [a], "D1-2", head_person_id=a),
    ):
        with fails(ErrorCode.HOUSEHOLD_DISSOLVED):
            change()
    # The former members are free to join another household.
    assert hh.household_of(cid, head) is None
    other = hh.create(cid, "D2", head_person_id=head)
    assert hh.household_of(cid, head) == other


def test_event_details_hold_ids_only(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]]
) -> None:
    head, a, b = people(3)
    household_id = hh.create(cid, "E1", head_person_id=head, member_ids=[a, b])
    new = hh.split(cid, household_id, [b], "E2", head_person_id=b)
    hh.merge(cid, new, household_id)
    for event in hh.history(cid, household_id) + hh.history(cid, new):
        for value in event.detail.values():
            for item in value if isinstance(value, list) else [value]:
                assert item is None or uuid.UUID(item)


# -- listing -------------------------------------------------------------------------------------


def test_list_pages_by_id_and_filters(
    hh: Households, cid: int, people: Callable[[int], list[uuid.UUID]]
) -> None:
    ids = [
        hh.create(cid, f"L{i}", village_group=f"{i % 2}组", grid="G1" if i < 3 else "G2") for i in range(5)
    ]
    hh.add_member(cid, ids[0], people(1)[0])
    hh.dissolve(cid, ids[4])
    seen: list[uuid.UUID] = []
    after = None
    while page := hh.list(cid, after=after, limit=2):
        assert len(page) <= 2
        seen.extend(v.household_id for v in page)
        after = page[-1].household_id
    assert seen == sorted(ids[:4])  # id order, dissolved left out
    assert len(hh.list(cid)[0].members) == 1
    assert [v.household_id for v in hh.list(cid, include_dissolved=True)] == sorted(ids)
    assert {v.code for v in hh.list(cid, village_group="0组")} == {"L0", "L2"}
    assert {v.code for v in hh.list(cid, village_group="0组", include_dissolved=True)} == {"L0", "L2", "L4"}
    assert {v.code for v in hh.list(cid, grid="G2")} == {"L3"}
    assert {v.code for v in hh.list(cid, village_group="1组", grid="G1")} == {"L1"}
    for limit in (0, 501):
        with fails(ErrorCode.INVALID_FIELD, "limit"):
            hh.list(cid, limit=limit)


# -- clocks and races ----------------------------------------------------------------------------


def test_a_clock_behind_the_row_never_closes_it_before_it_opened(
    pool: ConnectionPool[Conn], cid: int, people: Callable[[int], list[uuid.UUID]]
) -> None:
    (a,) = people(1)
    ahead = Households(pool, clock=lambda: START + timedelta(hours=1))
    behind = Households(pool, clock=lambda: START)  # another server, its clock an hour slow
    household_id = ahead.create(cid, "C1", member_ids=[a])
    behind.remove_member(cid, household_id, a)
    [row] = ahead.get(cid, household_id, at=START + timedelta(hours=1)).members
    assert row.valid_to == START + timedelta(hours=1, microseconds=1)


def wait_for_lock_waiter(owner: Conn, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = owner.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        if row is not None and row[0] > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the racing call never waited on a lock")


@pytest.fixture
def held(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(db_url) as conn:
        yield conn


def race(
    call: Callable[[], object], owner: Conn, held: psycopg.Connection[tuple[object, ...]]
) -> LedgerError:
    """Run ``call`` while ``held`` has an uncommitted conflicting row; commit it once ``call`` waits."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except LedgerError as exc:
            outcome.append(exc)

    racer = threading.Thread(target=run)
    racer.start()
    wait_for_lock_waiter(owner)
    held.commit()
    racer.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], LedgerError)
    return outcome[0]


def test_a_membership_race_is_decided_by_the_unique_index(
    hh: Households,
    cid: int,
    people: Callable[[int], list[uuid.UUID]],
    owner: Conn,
    held: psycopg.Connection[tuple[object, ...]],
) -> None:
    (a,) = people(1)
    first, second = hh.create(cid, "R1"), hh.create(cid, "R2")
    # Another transaction has just made ``a`` a member of ``first`` and not yet committed.
    held.execute(
        "INSERT INTO household_member (community_id, member_id, household_id, person_id, valid_from)"
        " VALUES (%s, %s, %s, %s, %s)",
        (cid, uuid7(), first, a, START),
    )
    error = race(lambda: hh.add_member(cid, second, a), owner, held)
    assert error.code is ErrorCode.ALREADY_IN_HOUSEHOLD
    assert hh.household_of(cid, a) == first
    assert kinds(hh, cid, second) == [EventKind.CREATED]  # the loser wrote nothing


def test_a_code_race_is_decided_by_the_unique_constraint(
    hh: Households, cid: int, owner: Conn, held: psycopg.Connection[tuple[object, ...]]
) -> None:
    held.execute(
        "INSERT INTO household (community_id, household_id, code) VALUES (%s, %s, 'SAME')", (cid, uuid7())
    )
    error = race(lambda: hh.create(cid, "SAME"), owner, held)
    assert (error.code, error.field) == (ErrorCode.HOUSEHOLD_CODE_TAKEN, "code")
    assert row_counts(owner, cid)[0] == 1


def test_concurrent_head_changes_leave_one_head(
    pool: ConnectionPool[Conn], cid: int, people: Callable[[int], list[uuid.UUID]], owner: Conn
) -> None:
    hh = Households(pool)
    members = people(6)
    household_id = hh.create(cid, "R3", head_person_id=members[0], member_ids=members)
    barrier = threading.Barrier(len(members))

    def make_head(person_id: uuid.UUID) -> None:
        barrier.wait()
        hh.set_head(cid, household_id, person_id)

    threads = [threading.Thread(target=make_head, args=(p,)) for p in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert current_heads(owner, cid, household_id) == 1
    assert member_ids(hh, cid, household_id) == set(members)
    changes = [e for e in hh.history(cid, household_id) if e.kind is EventKind.HEAD_CHANGED]
    # Each change names the head it replaced: the chain of changes is unbroken.
    for earlier, later in itertools.pairwise(changes):
        assert later.detail["from_person_id"] == earlier.detail["to_person_id"]
    assert hh.get(cid, household_id).head_person_id == uuid.UUID(changes[-1].detail["to_person_id"])
