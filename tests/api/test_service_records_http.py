"""Service records over HTTP: scenarios 1–4 of the domain brief. The services run on a settable
clock (China time), so that deadlines and dates are those of the scenarios (March 2025, the
official holiday calendar). Roles, idempotency and problems: test_service_records_rules_http.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from litestar.testing import TestClient
from psycopg_pool import ConnectionPool
from records_world import CLOCK, call, clocked, problem, record, verify
from records_world import http_activity as activity

from api.app import create_app
from api.deps import Services
from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services import service_posting
from ledger.store import service_posting_repo
from ledger.store.db import Conn
from tests.api.conftest import Client, World, profile


@pytest.fixture(scope="module")
def services(api_services: Services, pool: ConnectionPool[Conn]) -> Services:
    return clocked(api_services, pool)


@pytest.fixture(scope="module")
def http(services: Services) -> Iterator[Client]:
    with TestClient(app=create_app(services, access_logging=False)) as c:
        yield c


@pytest.fixture(autouse=True)
def _march_10() -> None:
    CLOCK.on(date(2025, 3, 10))


def service_minutes(pool: ConnectionPool[Conn], services: Services, w: World, person: uuid.UUID) -> uuid.UUID:
    """The volunteer's hours account (opened if need be, as posting would)."""
    service_posting.ensure_member_accounts(pool, services.communities, w.community_id, person)
    with pool.connection() as conn:
        return service_posting_repo.person_accounts(conn, w.community_id, person)[Unit.SERVICE_MINUTES]


# ------------------------------------------------------------------------------------ scenarios


def test_scenario_1_a_late_record_needs_an_override_and_stays_overdue(http: Client, world: World) -> None:
    act = activity(http, world)
    rec = record(http, world, act)
    assert rec["deadline"] == "2025-03-21"  # activity ended Fri 03-07, ten working days
    CLOCK.on(date(2025, 3, 24))
    body = problem(verify(http, world, rec), 409, ErrorCode.RECORDING_OVERDUE)
    assert body["deadline"] == "2025-03-21"
    assert (
        call(http, world, "social_worker", "GET", f"/service-records/{rec['record_id']}").json()["state"]
        == "submitted"
    )
    reason = {"reason": "活动方延迟报送"}
    path = f"/service-records/{rec['record_id']}/deadline-override"
    problem(call(http, world, "social_worker", "POST", path, reason), 403, ErrorCode.FORBIDDEN)
    assert (
        call(http, world, "community_admin", "POST", path, reason).json()["override_reason"]
        == "活动方延迟报送"
    )
    posted = verify(http, world, rec).json()
    assert (posted["state"], posted["overdue"], posted["credited_minutes"]) == ("posted", True, 150)
    history = call(http, world, "volunteer", "GET", f"/service-records/{rec['record_id']}/history").json()
    assert [e["kind"] for e in history] == [
        "created",
        "submitted",
        "deadline_overridden",
        "verified",
        "posted",
    ]
    assert history[2]["actor_id"] == str(world.user_ids["community_admin"])


def test_scenario_2_rounding_down_and_the_per_activity_cap(
    http: Client, world: World, services: Services
) -> None:
    act = activity(http, world)
    first = verify(http, world, record(http, world, act)).json()
    assert (first["served_minutes"], first["credited_minutes"], first["credited_points"]) == (165, 150, 2)
    services.settings.publish(
        world.community_id, {"per_activity_cap_minutes": 120}, effective_from=date(2025, 3, 1)
    )
    capped_act = activity(http, world, name="敬老院探访")
    capped = verify(http, world, record(http, world, capped_act, person=world.other_person)).json()
    assert (capped["credited_minutes"], capped["settings_version"]) == (120, 1)


def test_scenario_3_the_recorder_cannot_verify_the_leader_can(http: Client, world: World) -> None:
    act = activity(http, world)
    by_worker = record(http, world, act)
    problem(verify(http, world, by_worker, "social_worker"), 403, ErrorCode.FORBIDDEN)
    by_admin = record(http, world, act, who="community_admin", start="13:00", end="15:00")
    problem(verify(http, world, by_admin, "community_admin"), 403, ErrorCode.VERIFIER_IS_RECORDER)
    path = f"/service-records/{by_admin['record_id']}/rejection"
    problem(
        call(http, world, "community_admin", "POST", path, {"reason": "重复"}),
        403,
        ErrorCode.VERIFIER_IS_RECORDER,
    )
    for rec in (by_worker, by_admin):
        done = verify(http, world, rec).json()
        assert (done["state"], done["verified_by"]) == ("posted", str(world.user_ids["activity_leader"]))


def test_scenario_4_an_accepted_correction_reverses_and_reposts(
    http: Client, world: World, services: Services, pool: ConnectionPool[Conn]
) -> None:
    c = world.community_id
    hours = service_minutes(pool, services, world, world.volunteer_person)
    issuance = services.communities.system_accounts(c)[(SystemAccount.ISSUANCE, Unit.SERVICE_MINUTES)]
    earlier = (
        Posting(issuance, Unit.SERVICE_MINUTES, -96 * 60),
        Posting(hours, Unit.SERVICE_MINUTES, 96 * 60),
    )
    services.ledger.transfer(TransferRequest(c, "award", earlier, f"earlier-{uuid.uuid4()}"))
    act = activity(http, world)
    rec = verify(
        http, world, record(http, world, act, start="09:00", end="11:00")
    ).json()  # a 3 h shift as 2 h
    balance = f"/accounts/{hours}/balance"
    assert call(http, world, "volunteer", "GET", balance).json()["posted"] == 98 * 60

    filed = call(
        http,
        world,
        "volunteer",
        "POST",
        f"/service-records/{rec['record_id']}/corrections",
        {"start_time": "09:00", "end_time": "12:00", "reason": "实际服务到12点"},
    )
    assert filed.status_code == 201, filed.text
    correction = filed.json()
    assert correction["state"] == "filed"
    accepted = call(
        http, world, "social_worker", "POST", f"/corrections/{correction['correction_id']}/acceptance"
    )
    assert accepted.status_code == 200, accepted.text
    done = accepted.json()
    assert (done["state"], done["previous_credited_minutes"], done["credited_minutes"]) == (
        "accepted",
        120,
        180,
    )
    assert call(http, world, "volunteer", "GET", balance).json()["posted"] == 99 * 60
    lines = call(http, world, "volunteer", "GET", f"/accounts/{hours}/statement").json()["items"]
    assert sorted(x["amount"] for x in lines) == [-120, 120, 180, 96 * 60]
    now = call(http, world, "volunteer", "GET", f"/service-records/{rec['record_id']}").json()
    assert (now["credited_minutes"], now["transfer_id"]) == (180, done["new_transfer_id"])
    assert (now["start_time"], now["end_time"]) == ("09:00", "11:00")  # art 7 fields stay as first recorded


def test_stars_count_posted_minutes_only(http: Client, world: World, services: Services) -> None:
    """Cumulative minutes and stars (default thresholds 100/300/600/1000/1500 h) from posted records."""
    person = services.people.create(
        world.community_id, profile("孙丽"), consent_entry=True, consent_publish=False, entered_by_self=False
    )
    path = f"/people/{person}/stars"
    before = call(http, world, "social_worker", "GET", path).json()
    assert (before["total_minutes"], before["stars"]) == (0, 0)
    act = activity(http, world)
    rec = record(http, world, act, person=person)  # 09:00-11:45: 150 minutes once posted
    assert call(http, world, "social_worker", "GET", path).json()["total_minutes"] == 0  # only submitted
    assert verify(http, world, rec).json()["state"] == "posted"
    after = call(http, world, "activity_leader", "GET", path).json()
    assert (after["person_id"], after["total_minutes"], after["stars"]) == (str(person), 150, 0)
    problem(
        call(http, world, "social_worker", "GET", f"/people/{uuid.uuid4()}/stars"),
        404,
        ErrorCode.PERSON_NOT_FOUND,
    )
