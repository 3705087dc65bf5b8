"""Versioned community settings: publish, the version in force on a date, and refusals."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.rule_settings import default_params
from ledger.services.communities import CommunityInfo
from ledger.services.rule_settings import RuleSettings, SettingsVersion
from ledger.store.db import Conn

JAN = date(2026, 1, 1)
JUL = date(2026, 7, 1)


@pytest.fixture
def settings(pool: ConnectionPool[Conn]) -> RuleSettings:
    return RuleSettings(pool)


@pytest.fixture
def cid(community: CommunityInfo) -> int:
    return community.community_id


def stored_versions(owner: Conn, community_id: int) -> list[int]:
    rows = owner.execute(
        "SELECT version FROM community_setting WHERE community_id = %s ORDER BY version", (community_id,)
    ).fetchall()
    return [r[0] for r in rows]


def fails(code: ErrorCode, field: str | None = None) -> pytest.RaisesExc[LedgerError]:
    return pytest.raises(LedgerError, check=lambda e: e.code is code and e.field == field)


def test_a_community_without_versions_has_version_zero_the_defaults(settings: RuleSettings, cid: int) -> None:
    v0 = settings.current(cid)
    assert (v0.version, v0.effective_from, v0.created_at, v0.created_by) == (0, date.min, None, None)
    assert v0.params == default_params()
    assert v0.params["recording_deadline_working_days"] == 10
    assert [v.version for v in settings.versions(cid)] == [0]


def test_publish_and_read_the_version_in_force_on_each_date(
    settings: RuleSettings, cid: int, owner: Conn
) -> None:
    actor = uuid7()
    v1 = settings.publish(
        cid, {"points_per_hour_numerator": 10}, effective_from=JAN, note="2026 方案", actor_id=actor
    )
    assert (v1.version, v1.effective_from, v1.note, v1.created_by) == (1, JAN, "2026 方案", actor)
    assert v1.created_at is not None
    assert v1.params["points_per_hour_numerator"] == 10
    assert v1.params["score_pass_mark_points"] == 60  # stored in full
    v2 = settings.publish(cid, {"score_pass_mark_points": 70}, effective_from=JUL)
    assert v2.version == 2
    # Each version is the defaults plus its own overrides, not the previous version plus them.
    assert v2.params["points_per_hour_numerator"] == 1

    assert settings.current(cid, on=date(2025, 12, 31)).version == 0
    assert settings.current(cid, on=JAN).version == 1
    assert settings.current(cid, on=date(2026, 6, 30)).params["points_per_hour_numerator"] == 10
    assert settings.current(cid, on=JUL).version == 2
    assert settings.current(cid, on=date(2030, 1, 1)).params["score_pass_mark_points"] == 70
    assert [v.version for v in settings.versions(cid)] == [0, 1, 2]
    assert settings.versions(cid)[1] == v1
    # What is stored is the full parameter set, so later default changes cannot alter a version.
    row = owner.execute(
        "SELECT params FROM community_setting WHERE community_id = %s AND version = 1", (cid,)
    ).fetchone()
    assert row is not None and row[0] == v1.params


def test_current_without_a_date_is_today_in_china(pool: ConnectionPool[Conn], cid: int) -> None:
    # 17:00 UTC on 30 June is already 1 July in Beijing.
    clock = RuleSettings(pool, clock=lambda: datetime(2026, 6, 30, 17, 0, tzinfo=UTC))
    clock.publish(cid, {}, effective_from=JUL)
    assert clock.today() == JUL
    assert clock.current(cid).version == 1
    early = RuleSettings(pool, clock=lambda: datetime(2026, 6, 30, 15, 59, tzinfo=UTC))
    assert early.current(cid).version == 0


def test_a_version_must_take_effect_after_the_latest(settings: RuleSettings, cid: int, owner: Conn) -> None:
    with fails(ErrorCode.SETTING_NOT_LATER, "effective_from"):  # version 0 is in force from date.min
        settings.publish(cid, {}, effective_from=date.min)
    settings.publish(cid, {}, effective_from=JUL)
    with fails(ErrorCode.SETTING_NOT_LATER, "effective_from"):
        settings.publish(cid, {}, effective_from=JUL)
    with fails(ErrorCode.SETTING_NOT_LATER, "effective_from"):
        settings.publish(cid, {}, effective_from=JAN)
    assert stored_versions(owner, cid) == [1]


def test_unknown_keys_and_bad_values_are_refused_and_nothing_is_stored(
    settings: RuleSettings, cid: int, owner: Conn
) -> None:
    with fails(ErrorCode.INVALID_FIELD, "points_per_hour"):
        settings.publish(cid, {"points_per_hour": 1}, effective_from=JAN)
    with fails(ErrorCode.INVALID_FIELD, "points_per_hour_numerator"):
        settings.publish(cid, {"points_per_hour_numerator": 0.5}, effective_from=JAN)
    with fails(ErrorCode.INVALID_FIELD, "effective_from"):
        settings.publish(cid, {}, effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    with fails(ErrorCode.INVALID_FIELD, "note"):
        settings.publish(cid, {}, effective_from=JAN, note="x" * 501)
    with fails(ErrorCode.NON_CANONICAL_TEXT, "note"):
        settings.publish(cid, {}, effective_from=JAN, note="bad\x00note")
    with fails(ErrorCode.INVALID_FIELD, "on"):
        settings.current(cid, on=datetime(2026, 1, 1, tzinfo=UTC))
    assert stored_versions(owner, cid) == []


def test_unknown_community(settings: RuleSettings) -> None:
    with fails(ErrorCode.COMMUNITY_NOT_FOUND):
        settings.current(2**62)
    with fails(ErrorCode.COMMUNITY_NOT_FOUND):
        settings.versions(2**62)
    with fails(ErrorCode.COMMUNITY_NOT_FOUND):
        settings.publish(2**62, {}, effective_from=JAN)


def test_published_versions_cannot_be_changed_in_the_database(
    settings: RuleSettings, cid: int, owner: Conn
) -> None:
    settings.publish(cid, {}, effective_from=JAN)
    with pytest.raises(psycopg.Error):
        owner.execute("UPDATE community_setting SET effective_from = %s WHERE community_id = %s", (JUL, cid))
    assert settings.current(cid, on=JAN).version == 1


def wait_for_lock_waiter(owner: Conn, timeout_s: float = 10.0) -> None:
    """Block until some session of this database waits on a lock (the racing publish)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = owner.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        if row is not None and row[0] > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the racing publish never waited on the primary key")


@pytest.fixture
def held(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(db_url) as conn:
        yield conn


def test_concurrent_publishes_cannot_both_take_a_number(
    settings: RuleSettings, cid: int, owner: Conn, held: psycopg.Connection[tuple[object, ...]]
) -> None:
    # Another publish has written version 1 and not yet committed: this one reads no versions,
    # tries version 1 as well and waits on the primary key until the first one commits.
    held.execute(
        "INSERT INTO community_setting (community_id, version, effective_from, params)"
        " VALUES (%s, 1, %s, '{}')",
        (cid, JAN),
    )
    outcome: list[SettingsVersion | LedgerError] = []

    def publish() -> None:
        try:
            outcome.append(settings.publish(cid, {}, effective_from=JUL))
        except LedgerError as exc:
            outcome.append(exc)

    racer = threading.Thread(target=publish)
    racer.start()
    wait_for_lock_waiter(owner)
    held.commit()
    racer.join(timeout=10)
    assert len(outcome) == 1
    error = outcome[0]
    assert isinstance(error, LedgerError)
    assert (error.code, error.field, error.detail.get("version")) == (
        ErrorCode.SETTING_NOT_LATER,
        "version",
        1,
    )
    assert stored_versions(owner, cid) == [1]
    # Retrying after the conflict publishes the next number.
    assert settings.publish(cid, {}, effective_from=JUL).version == 2
