"""Corrections of posted service records on real PostgreSQL: acceptance scenario 4 (ledger side),
refusals, a reversal the ledger refuses and a later retry, and an acceptance cut short."""

from __future__ import annotations

import uuid
from datetime import date, time

import pytest
from psycopg_pool import ConnectionPool
from service_world import HOUR, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.service_credit import china_midnight_us
from ledger.domain.service_records import CorrectionState, RecordState
from ledger.domain.units import Unit
from ledger.services.accounts import Accounts
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store import service_corrections_repo
from ledger.store.db import Conn

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


def test_scenario_4_a_correction_reverses_and_reposts(w: World) -> None:
    """A 3.0 h shift recorded as 2.0 h: the ledger shows −2.0 and +3.0, the total 98.0 → 99.0 h."""
    volunteer = w.person()
    w.award(volunteer, Unit.SERVICE_MINUTES, 96 * HOUR)
    record = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(11, 0))
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 98 * HOUR
    assert (w.balance(volunteer, Unit.POINTS), w.balance(volunteer, Unit.COIN_MINUTES)) == (2, 120)

    filed = w.corrections.file(
        w.cid,
        record.record_id,
        start_time=time(9, 0),
        end_time=time(12, 0),
        reason="实际服务到12点",
        actor_id=w.admin,
    )
    assert (filed.state, filed.served_minutes, filed.attempt) == (CorrectionState.FILED, 180, 0)
    accepted = w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    assert (accepted.state, accepted.decided_by) == (CorrectionState.ACCEPTED, w.leader)
    assert (accepted.previous_credited_minutes, accepted.credited_minutes) == (120, 180)
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 99 * HOUR
    assert (w.balance(volunteer, Unit.POINTS), w.balance(volunteer, Unit.COIN_MINUTES)) == (3, 180)

    # The ledger keeps all three transfers: the original, its mirror, and the corrected one.
    minutes = w.accounts(volunteer)[Unit.SERVICE_MINUTES]
    transfers = w.transfers_for(record.record_id)
    assert [(t, kind) for t, kind, _ in transfers] == [
        (record.transfer_id, "service_credit"),
        (accepted.reversal_transfer_id, "reversal"),
        (accepted.new_transfer_id, "service_credit"),
    ]
    assert [w.amounts(t)[minutes] for t, _, _ in transfers] == [120, -120, 180]
    # The volunteer's statement (newest first) shows the −2.0 h and +3.0 h lines and the running total.
    lines = Accounts(w.pool).statement(w.cid, minutes, limit=3)
    assert [(line.kind, line.amount, line.balance_after) for line in lines] == [
        ("service_credit", 180, 99 * HOUR),
        ("reversal", -120, 96 * HOUR),
        ("service_credit", 120, 98 * HOUR),
    ]
    # The record now shows the corrected credit; its art 7 fields stay as first recorded.
    now = w.records.get(w.cid, record.record_id)
    assert (now.state, now.transfer_id, now.credited_minutes, now.credited_points) == (
        RecordState.POSTED,
        accepted.new_transfer_id,
        180,
        3,
    )
    assert (now.start_time, now.end_time, now.served_minutes) == (time(9, 0), time(11, 0), 120)
    kinds = [(e.kind, e.actor_id) for e in w.records.history(w.cid, record.record_id)]
    assert kinds[-2:] == [("correction_filed", w.admin), ("correction_accepted", w.leader)]
    # Accepting again is the same answer; the ledger is not touched twice.
    assert w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader) == accepted
    assert len(w.transfers_for(record.record_id)) == 3
    assert w.corrections.of_record(w.cid, record.record_id) == [accepted]


def test_a_second_correction_reverses_the_corrected_transfer(w: World) -> None:
    volunteer = w.person()
    record = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(11, 0))
    first = w.corrections.file(
        w.cid, record.record_id, start_time=time(9, 0), end_time=time(12, 0), reason="多记", actor_id=w.admin
    )
    first = w.corrections.accept(w.cid, first.correction_id, actor_id=w.leader)
    second = w.corrections.file(
        w.cid, record.record_id, start_time=time(9, 0), end_time=time(10, 0), reason="少记", actor_id=w.admin
    )
    second = w.corrections.accept(w.cid, second.correction_id, actor_id=w.leader)
    assert second.previous_credited_minutes == 180
    assert w.owner.execute(
        "SELECT reverses_id FROM transfer WHERE community_id = %s AND transfer_id = %s",
        (w.cid, second.reversal_transfer_id),
    ).fetchone() == (first.new_transfer_id,)
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 60


def test_correction_refusals_and_rejection(w: World) -> None:
    volunteer = w.person()
    submitted = w.record(volunteer, w.activity(), MAR_5)
    args = {"start_time": time(9, 0), "end_time": time(12, 0), "reason": "时间有误", "actor_id": w.admin}
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.corrections.file(w.cid, submitted.record_id, **args)  # type: ignore[arg-type]
    with fails(ErrorCode.SERVICE_RECORD_NOT_FOUND):
        w.corrections.file(w.cid, uuid.uuid4(), **args)  # type: ignore[arg-type]
    with fails(ErrorCode.INVALID_FIELD, "end_time"):
        w.corrections.file(w.cid, submitted.record_id, **{**args, "end_time": time(8, 0)})  # type: ignore[arg-type]
    with fails(ErrorCode.INVALID_FIELD, "reason"):
        w.corrections.file(w.cid, submitted.record_id, **{**args, "reason": ""})  # type: ignore[arg-type]

    record = w.records.verify(w.cid, submitted.record_id, verifier_id=w.leader)
    filed = w.corrections.file(w.cid, record.record_id, **args)  # type: ignore[arg-type]
    with fails(ErrorCode.CORRECTION_PENDING):
        w.corrections.file(w.cid, record.record_id, **args)  # type: ignore[arg-type]
    with fails(ErrorCode.INVALID_FIELD, "reason"):
        w.corrections.reject(w.cid, filed.correction_id, actor_id=w.leader, reason="")
    rejected = w.corrections.reject(
        w.cid, filed.correction_id, actor_id=w.leader, reason="签到表显示11点离开"
    )
    assert (rejected.state, rejected.rejection_reason, rejected.reversal_transfer_id) == (
        CorrectionState.REJECTED,
        "签到表显示11点离开",
        None,
    )
    assert w.corrections.reject(w.cid, filed.correction_id, actor_id=w.leader, reason="x") == rejected
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    assert w.records.get(w.cid, record.record_id) == record  # nothing moved
    assert len(w.transfers_for(record.record_id)) == 1
    # A new request may be filed once the last one is decided.
    again = w.corrections.file(w.cid, record.record_id, **args)  # type: ignore[arg-type]
    accepted = w.corrections.accept(w.cid, again.correction_id, actor_id=w.leader)
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.corrections.reject(w.cid, accepted.correction_id, actor_id=w.leader, reason="晚了")
    with fails(ErrorCode.INVALID_STATE_TRANSITION):
        w.corrections.accept(w.cid, accepted.correction_id, actor_id=w.admin)  # decided by someone else
    with fails(ErrorCode.CORRECTION_NOT_FOUND):
        w.corrections.get(w.cid, uuid.uuid4())
    assert [c.state for c in w.corrections.of_record(w.cid, record.record_id)] == [
        CorrectionState.REJECTED,
        CorrectionState.ACCEPTED,
    ]


def test_spent_points_refuse_the_reversal_until_there_are_points_again(w: World) -> None:
    """The ledger never overdraws to correct: the correction stays filed and a later try succeeds."""
    volunteer = w.person()
    record = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(12, 0))  # 3 points
    w.redeem(volunteer, 3)
    filed = w.corrections.file(
        w.cid,
        record.record_id,
        start_time=time(9, 0),
        end_time=time(10, 0),
        reason="只服务了1小时",
        actor_id=w.admin,
    )
    with fails(ErrorCode.INSUFFICIENT_FUNDS):
        w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    after = w.corrections.get(w.cid, filed.correction_id)
    assert (after.state, after.attempt) == (CorrectionState.FILED, 1)
    assert len(w.transfers_for(record.record_id)) == 1
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 180

    w.award(volunteer, Unit.POINTS, 5, expires_at_us=china_midnight_us(date(2026, 1, 1)))
    accepted = w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    assert (accepted.state, accepted.credited_minutes) == (CorrectionState.ACCEPTED, 60)
    assert (w.balance(volunteer, Unit.SERVICE_MINUTES), w.balance(volunteer, Unit.POINTS)) == (60, 3)


def test_a_correction_under_the_caps_and_of_a_record_that_credited_nothing(w: World) -> None:
    w.publish(date(2025, 1, 1), daily_service_cap_minutes=240)
    volunteer = w.person()
    a = w.posted(volunteer, w.activity(), MAR_5, time(8, 0), time(11, 0))  # 180
    b = w.posted(volunteer, w.activity(), MAR_5, time(13, 0), time(17, 0))  # 60 left of the day's cap
    c = w.posted(volunteer, w.activity(), MAR_5, time(18, 0), time(19, 0))  # nothing left
    assert [r.credited_minutes for r in (a, b, c)] == [180, 60, 0]
    # Correcting a to one hour leaves room that b's correction may use; c credited nothing to reverse.
    for record, end in ((a, time(9, 0)), (b, time(17, 0)), (c, time(19, 0))):
        filed = w.corrections.file(
            w.cid,
            record.record_id,
            start_time=record.start_time,
            end_time=end,
            reason="更正",
            actor_id=w.admin,
        )
        w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    got = [w.records.get(w.cid, r.record_id) for r in (a, b, c)]
    assert [r.credited_minutes for r in got] == [60, 180, 0]
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 240
    pool = w.system(SystemAccount.DONATION_POOL, Unit.COIN_MINUTES)
    assert w.ledger.balance(w.cid, pool).posted == 0


def test_an_acceptance_cut_short_resumes_without_doing_anything_twice(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    volunteer = w.person()
    record = w.posted(volunteer, w.activity(), MAR_5, time(9, 0), time(11, 0))
    filed = w.corrections.file(
        w.cid, record.record_id, start_time=time(9, 0), end_time=time(12, 0), reason="补记", actor_id=w.admin
    )
    real = service_corrections_repo.set_accepted

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection lost")

    monkeypatch.setattr(service_corrections_repo, "set_accepted", crash)
    with pytest.raises(RuntimeError):
        w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    assert w.corrections.get(w.cid, filed.correction_id).state is CorrectionState.FILED
    assert len(w.transfers_for(record.record_id)) == 3  # both ledger writes committed
    monkeypatch.setattr(service_corrections_repo, "set_accepted", real)
    accepted = w.corrections.accept(w.cid, filed.correction_id, actor_id=w.leader)
    transfers = [t for t, _, _ in w.transfers_for(record.record_id)]
    assert transfers == [record.transfer_id, accepted.reversal_transfer_id, accepted.new_transfer_id]
    assert w.balance(volunteer, Unit.SERVICE_MINUTES) == 180
