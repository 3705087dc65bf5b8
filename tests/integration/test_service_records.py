"""Service records on real PostgreSQL: acceptance scenarios 1, 2, 3, 5 and 8, caps, rates by service
date, refusals, idempotent posting, interrupted posting, events and the database's own guards."""

from __future__ import annotations

import uuid
from datetime import date, time

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool
from service_world import HOUR, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.service_credit import china_midnight_us
from ledger.domain.service_records import ActivityFields, RecordState
from ledger.domain.units import Unit
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store import service_records_repo
from ledger.store.db import Conn, app_conninfo

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


def fails(code: ErrorCode, field: str | None = None) -> pytest.RaisesExc[LedgerError]:
    return pytest.raises(LedgerError, check=lambda e: e.code is code and (field is None or e.field == field))


def test_scenario_1_deadline_overdue_and_override(w: World) -> None:
    volunteer, activity = w.person(), w.activity(date(2025, 3, 3), date(2025, 3, 7))  # ends Friday 03-07
    on_time = w.record(volunteer, activity, MAR_5)
    late = w.record(volunteer, activity, date(2025, 3, 6))
    assert on_time.deadline == late.deadline == date(2025, 3, 21)

    w.clock.on(date(2025, 3, 21))  # the last day is still on time
    assert w.records.verify(w.cid, on_time.record_id, verifier_id=w.leader).overdue is False

    w.clock.on(date(2025, 3, 24))
    with fails(ErrorCode.RECORDING_OVERDUE):
        w.records.verify(w.cid, late.record_id, verifier_id=w.leader)
    unchanged = w.records.get(w.cid, late.record_id)
    assert unchanged.state is RecordState.SUBMITTED and unchanged.verified_by is None
    assert w.transfers_for(late.record_id) == []

    w.records.override_deadline(w.cid, late.record_id, actor_id=w.admin, reason="活动负责人出差，延迟核实")
    posted = w.records.verify(w.cid, late.record_id, verifier_id=w.leader)
    assert (posted.state, posted.overdue, posted.override_by) == (RecordState.POSTED, True, w.admin)
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 300
    history = w.records.history(w.cid, late.record_id)
    assert [(e.kind, e.actor_id) for e in history] == [
        ("created", w.worker),
        ("submitted", w.worker),
        ("deadline_overridden", w.admin),
        ("verified", w.leader),
        ("posted", w.leader),
    ]
    assert history[-1].detail["overdue"] is True
    assert history[2].detail == {"deadline": "2025-03-21"}


def test_verify_now_post_later_keeps_the_verification_when_posting_is_late(w: World) -> None:
    volunteer, activity = w.person(), w.activity()
    record = w.record(volunteer, activity, MAR_5)
    w.clock.on(date(2025, 3, 24))
    verified = w.records.verify(w.cid, record.record_id, verifier_id=w.leader, post=False)
    assert verified.state is RecordState.VERIFIED
    with fails(ErrorCode.RECORDING_OVERDUE):
        w.records.post(w.cid, record.record_id, actor_id=w.admin)
    assert w.records.get(w.cid, record.record_id).state is RecordState.VERIFIED
    w.records.override_deadline(w.cid, record.record_id, actor_id=w.admin, reason="补录")
    posted = w.records.post(w.cid, record.record_id, actor_id=w.admin)
    assert (posted.state, posted.overdue, posted.posted_by, posted.verified_by) == (
        RecordState.POSTED,
        True,
        w.admin,
        w.leader,
    )
    # Posting a posted record changes nothing; overriding one is refused (it is past that step).
    assert w.records.post(w.cid, record.record_id, actor_id=w.admin) == posted
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.records.override_deadline(w.cid, record.record_id, actor_id=w.admin, reason="再次")


def test_scenario_2_rounding_and_the_per_activity_cap(w: World) -> None:
    volunteer = w.person()
    plain = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(11, 45))
    assert (plain.served_minutes, plain.credited_minutes, plain.settings_version) == (165, 150, 0)

    w.publish(date(2025, 4, 1), per_activity_cap_minutes=120)
    w.clock.on(date(2025, 4, 8))
    capped = w.posted(
        volunteer, w.activity(date(2025, 4, 7), date(2025, 4, 7)), date(2025, 4, 7), time(9, 0), time(11, 45)
    )
    assert (capped.credited_minutes, capped.settings_version) == (120, 1)
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 270


def test_per_activity_cap_spans_the_days_of_one_activity(w: World) -> None:
    w.publish(date(2025, 1, 1), per_activity_cap_minutes=120)
    volunteer, activity = w.person(), w.activity(date(2025, 3, 3), date(2025, 3, 7))
    first = w.posted(volunteer, activity, date(2025, 3, 3), time(9, 0), time(10, 30))
    second = w.posted(volunteer, activity, date(2025, 3, 4), time(9, 0), time(10, 30))
    third = w.posted(volunteer, activity, date(2025, 3, 5), time(9, 0), time(10, 30))
    assert [r.credited_minutes for r in (first, second, third)] == [90, 30, 0]
    # Nothing to credit is still a posted record, with no transfer behind it.
    assert (third.state, third.transfer_id) == (RecordState.POSTED, None)
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 120


def test_daily_cap_across_two_records_on_one_day(w: World) -> None:
    w.publish(date(2025, 1, 1), daily_service_cap_minutes=240)
    volunteer, other = w.person(), w.person()
    morning, afternoon = w.activity(name="上午活动"), w.activity(name="下午活动")
    a = w.posted(volunteer, morning, MAR_5, time(8, 0), time(11, 0))
    b = w.posted(volunteer, afternoon, MAR_5, time(13, 0), time(16, 0))
    c = w.posted(volunteer, afternoon, date(2025, 3, 6), time(13, 0), time(16, 0))  # another day
    d = w.posted(other, afternoon, MAR_5, time(13, 0), time(16, 0))  # another volunteer
    assert [r.credited_minutes for r in (a, b, c, d)] == [180, 60, 180, 180]
    # Points and coins follow the capped minutes (1 point and 60 coin minutes per hour).
    assert (b.credited_points, b.credited_coin_minutes) == (1, 60)


def test_scenario_3_the_recorder_cannot_verify_the_leader_can(w: World) -> None:
    volunteer = w.person()
    record = w.record(volunteer, w.activity(), MAR_5)
    with fails(ErrorCode.VERIFIER_IS_RECORDER):
        w.records.verify(w.cid, record.record_id, verifier_id=w.worker)
    with fails(ErrorCode.VERIFIER_IS_RECORDER):
        w.records.reject(w.cid, record.record_id, actor_id=w.worker, reason="撤回")
    # Someone else submitting a worker's draft makes both of them recorders.
    draft = w.record(volunteer, w.activity(), MAR_5, submit=False)
    w.records.submit(w.cid, draft.record_id, actor_id=w.leader)
    with fails(ErrorCode.VERIFIER_IS_RECORDER):
        w.records.verify(w.cid, draft.record_id, verifier_id=w.leader)
    assert w.records.get(w.cid, record.record_id).state is RecordState.SUBMITTED
    posted = w.records.verify(w.cid, record.record_id, verifier_id=w.leader)
    assert (posted.state, posted.verified_by, posted.created_by) == (RecordState.POSTED, w.leader, w.worker)


def test_scenario_5_stars_and_redeeming_points_leaves_hours(w: World) -> None:
    volunteer = w.person()
    w.award(volunteer, Unit.SERVICE_MINUTES, 299 * HOUR + 30)  # 299.5 h served before
    w.award(volunteer, Unit.POINTS, 50, expires_at_us=china_midnight_us(date(2026, 1, 1)))
    assert w.records.stars(w.cid, volunteer, on=MAR_5).stars == 1
    w.posted(volunteer, w.activity(), MAR_5, time(14, 0), time(14, 30))
    view = w.records.stars(w.cid, volunteer, on=MAR_5)
    assert (view.total_minutes, view.stars, view.settings_version) == (300 * HOUR, 2, 0)
    w.redeem(volunteer, 40)
    assert w.balance(volunteer, Unit.POINTS) == 10
    assert w.records.stars(w.cid, volunteer, on=MAR_5).total_minutes == 300 * HOUR
    # Beijing's thresholds, once published, rate the same hours higher.
    w.publish(date(2025, 1, 1), star_thresholds_hours=[100, 200, 500, 800, 1000])
    assert w.records.stars(w.cid, volunteer, on=MAR_5).stars == 2
    assert w.records.stars(w.cid, w.person(), on=MAR_5).stars == 0  # no account yet: no hours
    with fails(ErrorCode.PERSON_NOT_FOUND):
        w.records.stars(w.cid, uuid.uuid4())
    with fails(ErrorCode.INVALID_FIELD, "on"):
        w.records.stars(w.cid, volunteer, on=w.clock.now)  # a timestamp, not a date


def test_scenario_8_coins_over_the_storage_cap_go_to_the_donation_pool(w: World) -> None:
    volunteer = w.person()
    w.award(volunteer, Unit.COIN_MINUTES, 1498 * HOUR)
    pool_before = w.pool_coins()
    posted = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(12, 0))
    assert (posted.credited_minutes, posted.credited_coin_minutes, posted.pool_coin_minutes) == (180, 120, 60)
    assert w.balance(volunteer, Unit.COIN_MINUTES) == 1500 * HOUR
    assert w.pool_coins() == pool_before + 60
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 180  # hours are never capped by the coin cap
    assert posted.transfer_id is not None
    issuance = w.system(SystemAccount.ISSUANCE, Unit.COIN_MINUTES)
    assert w.amounts(posted.transfer_id)[issuance] == -180
    # At the cap, everything further overflows.
    full = w.posted(volunteer, w.activity(), date(2025, 3, 6), time(9, 0), time(10, 0))
    assert (full.credited_coin_minutes, full.pool_coin_minutes) == (0, 60)


def test_coin_daily_cap_and_rates_by_service_date(w: World) -> None:
    w.publish(date(2025, 1, 1), coin_daily_cap_minutes=120)
    w.publish(date(2025, 3, 6), coin_daily_cap_minutes=120, points_per_hour_numerator=10)
    volunteer, activity = w.person(), w.activity()
    before = w.posted(volunteer, activity, MAR_5, time(9, 0), time(12, 0))
    after = w.posted(volunteer, activity, date(2025, 3, 6), time(9, 0), time(12, 0))
    assert (before.settings_version, before.credited_points, before.earned_coin_minutes) == (1, 3, 120)
    assert (after.settings_version, after.credited_points, after.earned_coin_minutes) == (2, 30, 120)
    # Points arrive as one lot per record, earned on the service date, expiring at the year's end.
    lots = w.owner.execute(
        "SELECT amount, earned_at::date, expires_at FROM lot WHERE community_id = %s AND account_id = %s"
        " ORDER BY earned_at",
        (w.cid, w.accounts(volunteer)[Unit.POINTS]),
    ).fetchall()
    assert [(a, d) for a, d, _ in lots] == [(3, MAR_5), (30, date(2025, 3, 6))]
    assert {e.isoformat() for _, _, e in lots} == {"2025-12-31T16:00:00+00:00"}


def test_rejected_records_never_post(w: World) -> None:
    volunteer = w.person()
    record = w.record(volunteer, w.activity(), MAR_5)
    with fails(ErrorCode.INVALID_FIELD, "reason"):
        w.records.reject(w.cid, record.record_id, actor_id=w.leader, reason=" ")
    rejected = w.records.reject(w.cid, record.record_id, actor_id=w.leader, reason="当日未到场")
    assert (rejected.state, rejected.rejection_reason, rejected.rejected_by) == (
        RecordState.REJECTED,
        "当日未到场",
        w.leader,
    )
    assert w.records.reject(w.cid, record.record_id, actor_id=w.leader, reason="当日未到场") == rejected
    for attempt in (
        lambda: w.records.verify(w.cid, record.record_id, verifier_id=w.leader),
        lambda: w.records.verify(w.cid, record.record_id, verifier_id=w.admin),
        lambda: w.records.post(w.cid, record.record_id, actor_id=w.admin),
        lambda: w.records.submit(w.cid, record.record_id, actor_id=w.admin),
    ):
        with fails(ErrorCode.INVALID_STATE_TRANSITION):
            attempt()
    assert w.transfers_for(record.record_id) == []
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 0


def test_verifying_or_posting_twice_posts_once(w: World) -> None:
    volunteer = w.person()
    record = w.record(volunteer, w.activity(), MAR_5)
    first = w.records.verify(w.cid, record.record_id, verifier_id=w.leader)
    again = w.records.verify(w.cid, record.record_id, verifier_id=w.leader)
    assert again == first
    assert w.records.post(w.cid, record.record_id, actor_id=w.admin) == first
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.records.verify(w.cid, record.record_id, verifier_id=w.admin)  # another verifier comes too late
    assert [k for _, _, k in w.transfers_for(record.record_id)] == [f"service-record:{record.record_id}"]
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 150
    assert [e.kind for e in w.records.history(w.cid, record.record_id)].count("posted") == 1


def test_an_interrupted_posting_is_finished_from_the_ledger(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transfer committed but the record's own commit was lost: the next attempt adopts it."""
    volunteer = w.person()
    record = w.record(volunteer, w.activity(), MAR_5)
    real = service_records_repo.set_posted

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(service_records_repo, "set_posted", crash)
    with pytest.raises(RuntimeError):
        w.records.verify(w.cid, record.record_id, verifier_id=w.leader)
    assert w.records.get(w.cid, record.record_id).state is RecordState.SUBMITTED
    assert len(w.transfers_for(record.record_id)) == 1
    # Meanwhile more coins arrive, so planning again would differ; adopting does not.
    w.award(volunteer, Unit.COIN_MINUTES, 600)
    monkeypatch.setattr(service_records_repo, "set_posted", real)
    posted = w.records.verify(w.cid, record.record_id, verifier_id=w.leader)
    [(transfer_id, _, _)] = w.transfers_for(record.record_id)
    assert (posted.state, posted.transfer_id, posted.credited_minutes) == (
        RecordState.POSTED,
        transfer_id,
        150,
    )
    assert w.balance(volunteer, Unit.COIN_MINUTES) == 750


def test_create_refusals(w: World) -> None:
    volunteer, activity = w.person(), w.activity()
    base = {
        "activity_id": activity.activity_id,
        "person_id": volunteer,
        "service_date": MAR_5,
        "start_time": time(9, 0),
        "end_time": time(11, 0),
        "actor_id": w.worker,
    }
    cases: list[tuple[dict[str, object], ErrorCode, str | None]] = [
        ({"end_time": time(8, 0)}, ErrorCode.INVALID_FIELD, "end_time"),
        ({"place": ""}, ErrorCode.INVALID_FIELD, "place"),
        ({"person_id": uuid.uuid4()}, ErrorCode.PERSON_NOT_FOUND, None),
        ({"activity_id": uuid.uuid4()}, ErrorCode.ACTIVITY_NOT_FOUND, None),
        ({"service_date": date(2025, 3, 8)}, ErrorCode.INVALID_FIELD, "service_date"),
    ]
    for changes, code, field in cases:
        with fails(code, field):
            w.records.create(w.cid, **{**base, **changes})  # type: ignore[arg-type]
    with fails(ErrorCode.COMMUNITY_NOT_FOUND):
        w.records.create(w.cid + 10_000, **base)  # type: ignore[arg-type]
    w.owner.execute(
        "UPDATE person SET erased_at = now() WHERE community_id = %s AND person_id = %s", (w.cid, volunteer)
    )
    with fails(ErrorCode.PERSON_ERASED):
        w.records.create(w.cid, **base)  # type: ignore[arg-type]
    w.clock.on(date(2025, 3, 4))
    with fails(ErrorCode.INVALID_FIELD, "service_date"):  # service not yet done is not recorded
        w.records.create(w.cid, **base)  # type: ignore[arg-type]
    # An activity ending late in the last covered year: its deadline falls in an unknown year.
    w.clock.on(date(2026, 12, 29))
    year_end = w.activity(date(2026, 12, 21), date(2026, 12, 28))
    with fails(ErrorCode.CALENDAR_NOT_COVERED):
        w.record(w.person(), year_end, date(2026, 12, 28))
    count = w.owner.execute(
        "SELECT count(*) FROM service_record WHERE community_id = %s", (w.cid,)
    ).fetchone()
    assert count == (0,)
    # The simple calendar needs no table.
    w.publish(date(2026, 1, 1), working_day_calendar="mon_to_fri")
    assert w.record(w.person(), year_end, date(2026, 12, 28)).deadline == date(2027, 1, 11)


def test_activities_and_reads(w: World) -> None:
    activity = w.activity()
    assert w.activities.get(w.cid, activity.activity_id) == activity
    assert (activity.leader_user_id, activity.created_by) == (w.leader, w.worker)
    assert w.activities.list(w.cid) == [activity]
    with fails(ErrorCode.ACTIVITY_NOT_FOUND):
        w.activities.get(w.cid, uuid.uuid4())
    with fails(ErrorCode.USER_NOT_FOUND):
        w.activities.create(w.cid, _fields(), leader_user_id=uuid.uuid4())
    with fails(ErrorCode.PERSON_NOT_FOUND):
        w.activities.create(w.cid, _fields(), leader_person_id=uuid.uuid4())
    leader_person = w.person()
    led = w.activities.create(w.cid, _fields(), leader_person_id=leader_person)
    assert led.leader_person_id == leader_person

    volunteer = w.person()
    records = [w.record(volunteer, activity, MAR_5), w.record(w.person(), activity, MAR_5)]
    assert w.records.list(w.cid, person_id=volunteer) == [records[0]]
    assert w.records.list(w.cid, activity_id=activity.activity_id) == records
    assert w.records.list(w.cid, after=records[0].record_id) == records[1:]
    # A record states all art 7 fields: its activity's name, organising unit and leader come along.
    one = records[0]
    assert (one.activity_name, one.organising_unit, one.leader_user_id) == (
        "社区助老服务",
        "幸福社区居委会",
        w.leader,
    )
    assert (one.place, one.content, one.start_time, one.end_time) == (
        "幸福社区活动中心",
        "陪伴老人、打扫卫生",
        time(9, 0),
        time(11, 45),
    )
    with fails(ErrorCode.SERVICE_RECORD_NOT_FOUND):
        w.records.get(w.cid, uuid.uuid4())
    with fails(ErrorCode.SERVICE_RECORD_NOT_FOUND):
        w.records.verify(w.cid, uuid.uuid4(), verifier_id=w.leader)
    with fails(ErrorCode.INVALID_FIELD, "limit"):
        w.records.list(w.cid, limit=0)


def _fields() -> ActivityFields:
    return ActivityFields("读书会", date(2025, 3, 1), date(2025, 3, 1), "图书室", "陪读", "幸福社区居委会")


def _denied(conn: Conn, statement: str, params: tuple[object, ...]) -> str:
    try:
        with pytest.raises(pg_errors.InsufficientPrivilege) as caught:
            conn.execute(statement, params)
    finally:
        conn.rollback()
    return str(caught.value)


OWNER_REFUSALS = (
    (
        "UPDATE service_record SET end_time = '12:00' WHERE community_id = %s AND record_id = %s",
        "art 7 fields never change",
    ),
    (
        "UPDATE service_record SET state = 'submitted' WHERE community_id = %s AND record_id = %s",
        "cannot become",
    ),
    (
        "UPDATE service_record SET verified_by = gen_random_uuid()"
        " WHERE community_id = %s AND record_id = %s",
        "completed steps never change",
    ),
    ("DELETE FROM service_record WHERE community_id = %s AND record_id = %s", "append-only: DELETE"),
    (
        "UPDATE service_record_event SET kind = kind WHERE community_id = %s AND record_id = %s",
        "append-only: UPDATE",
    ),
    ("UPDATE activity SET name = 'x' WHERE community_id = %s AND %s IS NOT NULL", "append-only: UPDATE"),
)
RUNTIME_REFUSALS = (
    "UPDATE service_record SET place = 'x' WHERE community_id = %s AND record_id = %s",
    "DELETE FROM service_record WHERE community_id = %s AND record_id = %s",
    "DELETE FROM service_record_event WHERE community_id = %s AND record_id = %s",
)


def test_the_database_guards_records_for_every_role(w: World, db_url: str) -> None:
    volunteer = w.person()
    record = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(11, 0))
    key = (w.cid, record.record_id)
    with psycopg.connect(db_url) as owner:  # a superuser: only the triggers stop it
        for statement, message in OWNER_REFUSALS:
            assert message in _denied(owner, statement, key), statement
    with psycopg.connect(app_conninfo(db_url)) as runtime:  # the service's role: grants stop it first
        for statement in RUNTIME_REFUSALS:
            assert "permission denied" in _denied(runtime, statement, key), statement
    assert w.records.get(w.cid, record.record_id) == record
