"""Service records over HTTP: who may do what, idempotency, the problems answered, lists. Same
settable clock as test_service_records_http.py (2025-03-10, China time)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, time

import pytest
from litestar.testing import TestClient
from psycopg_pool import ConnectionPool
from records_world import CLOCK, call, clocked, problem, record, verify
from records_world import http_activity as activity

from api.app import create_app
from api.deps import Services
from ledger.domain.errors import ErrorCode
from ledger.domain.roles import Grant, PersonRef, Role
from ledger.store.db import Conn
from tests.api.conftest import Client, World


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


# ----------------------------------------------------------------------------------------- roles


def test_a_volunteer_sees_only_their_own_records_and_corrections(
    http: Client, world: World, services: Services
) -> None:
    act = activity(http, world)
    own = verify(http, world, record(http, world, act)).json()
    other = verify(http, world, record(http, world, act, person=world.other_person)).json()
    items = call(http, world, "volunteer", "GET", "/service-records").json()["items"]
    assert [r["record_id"] for r in items] == [own["record_id"]]
    assert call(
        http, world, "volunteer", "GET", f"/service-records?person_id={world.other_person}"
    ).json() == {
        "items": [],
        "next_cursor": None,
    }
    problem(
        call(http, world, "volunteer", "GET", f"/service-records/{other['record_id']}"),
        404,
        ErrorCode.SERVICE_RECORD_NOT_FOUND,
    )
    staff = call(http, world, "auditor", "GET", f"/service-records?person_id={world.other_person}").json()[
        "items"
    ]
    assert [r["record_id"] for r in staff] == [other["record_id"]]
    theirs = services.corrections.file(
        world.community_id,
        uuid.UUID(other["record_id"]),
        start_time=time(9),
        end_time=time(12),
        reason="到12点",
        actor_id=uuid.uuid4(),
    )
    assert call(http, world, "volunteer", "GET", "/corrections").json()["items"] == []
    problem(
        call(http, world, "volunteer", "GET", f"/corrections/{theirs.correction_id}"),
        404,
        ErrorCode.CORRECTION_NOT_FOUND,
    )
    listed = call(http, world, "review_panel", "GET", "/corrections")
    problem(listed, 403, ErrorCode.FORBIDDEN)  # the review panel has no record:read
    assert call(http, world, "activity_leader", "GET", "/corrections?state=filed").json()["items"][0][
        "correction_id"
    ] == str(theirs.correction_id)
    problem(call(http, world, "volunteer", "GET", "/activities"), 403, ErrorCode.FORBIDDEN)


def test_only_the_volunteer_files_and_nobody_decides_on_their_own_record(
    http: Client, world: World, services: Services
) -> None:
    act = activity(http, world)
    other = verify(http, world, record(http, world, act, person=world.other_person)).json()
    body = {"start_time": "09:00", "end_time": "12:00", "reason": "到12点"}
    path = f"/service-records/{other['record_id']}/corrections"
    problem(call(http, world, "volunteer", "POST", path, body), 404, ErrorCode.SERVICE_RECORD_NOT_FOUND)
    problem(call(http, world, "social_worker", "POST", path, body), 403, ErrorCode.FORBIDDEN)
    # A social worker who volunteers too: files for their own record, may not decide on it.
    s, c = services, world.community_id
    both = s.identity.create_user(
        f"sw-vol-{uuid.uuid4().hex[:8]}", None, person=PersonRef(c, world.other_person)
    )
    s.identity.grant(both, Grant(Role.SOCIAL_WORKER, community_id=c))
    world.tokens["both"] = s.identity.issue_api_token(both, "tests").secret
    filed = call(http, world, "both", "POST", path, body).json()
    decide = f"/corrections/{filed['correction_id']}/acceptance"
    problem(call(http, world, "both", "POST", decide), 403, ErrorCode.FORBIDDEN)
    problem(call(http, world, "volunteer", "POST", decide), 403, ErrorCode.FORBIDDEN)
    rejected = call(
        http,
        world,
        "social_worker",
        "POST",
        f"/corrections/{filed['correction_id']}/rejection",
        {"reason": "与签到表不符"},
    )
    assert (rejected.json()["state"], rejected.json()["rejection_reason"]) == ("rejected", "与签到表不符")
    problem(call(http, world, "social_worker", "POST", decide), 409, ErrorCode.INVALID_STATE_TRANSITION)


# ---------------------------------------------------------------------------------- idempotency


def test_every_post_replays_under_its_idempotency_key(http: Client, world: World) -> None:
    act = activity(http, world)
    body = {
        "activity_id": act["activity_id"],
        "person_id": str(world.volunteer_person),
        "service_date": "2025-03-06",
        "start_time": "14:00",
        "end_time": "16:30",
    }
    first = call(http, world, "social_worker", "POST", "/service-records", body, key="rec-1")
    again = call(http, world, "social_worker", "POST", "/service-records", body, key="rec-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["record_id"] == first.json()["record_id"]
    other = call(
        http, world, "social_worker", "POST", "/service-records", {**body, "end_time": "17:00"}, key="rec-1"
    )
    problem(other, 409, ErrorCode.IDEMPOTENCY_CONFLICT)
    rid = first.json()["record_id"]
    call(http, world, "social_worker", "POST", f"/service-records/{rid}/submission", key="sub-1")
    posted = [verify(http, world, {"record_id": rid}, key="ver-1") for _ in range(3)]
    assert [p.status_code for p in posted] == [200, 200, 200]
    assert {p.json()["transfer_id"] for p in posted} == {posted[0].json()["transfer_id"]}
    assert posted[2].headers["Idempotent-Replayed"] == "true"
    lines = call(
        http,
        world,
        "social_worker",
        "GET",
        f"/accounts?owner_id={world.volunteer_person}&unit=service_minutes",
    )
    account = lines.json()["items"][0]
    assert account["balance"]["posted"] == 150  # 2.5 h credited once


# -------------------------------------------------------------------------------------- problems


def test_problems_have_their_codes_and_statuses(http: Client, world: World) -> None:
    act = activity(http, world)
    good = {
        "activity_id": act["activity_id"],
        "person_id": str(world.volunteer_person),
        "service_date": "2025-03-07",
        "start_time": "09:00",
        "end_time": "10:00",
    }
    post = "/service-records"
    bad_time = problem(
        call(http, world, "social_worker", "POST", post, {**good, "start_time": "9:00"}),
        400,
        ErrorCode.MALFORMED_REQUEST,
    )
    assert bad_time["fields"] == ["start_time"]
    problem(
        call(http, world, "social_worker", "POST", post, {**good, "activity_id": str(uuid.uuid4())}),
        404,
        ErrorCode.ACTIVITY_NOT_FOUND,
    )
    problem(
        call(http, world, "social_worker", "POST", post, {**good, "person_id": str(uuid.uuid4())}),
        404,
        ErrorCode.PERSON_NOT_FOUND,
    )
    outside = problem(
        call(http, world, "social_worker", "POST", post, {**good, "service_date": "2025-03-08"}),
        422,
        ErrorCode.INVALID_FIELD,
    )
    assert outside["field"] == "service_date"
    late = problem(
        call(http, world, "social_worker", "POST", post, {**good, "end_time": "08:00"}),
        422,
        ErrorCode.INVALID_FIELD,
    )
    assert late["field"] == "end_time"
    rec = record(http, world, act, submit=False)
    problem(
        call(http, world, "activity_leader", "POST", f"/service-records/{rec['record_id']}/verification"),
        409,
        ErrorCode.INVALID_STATE_TRANSITION,
    )
    problem(
        call(
            http,
            world,
            "community_admin",
            "POST",
            f"/service-records/{rec['record_id']}/rejection",
            {"reason": ""},
        ),
        400,
        ErrorCode.MALFORMED_REQUEST,
    )
    call(http, world, "social_worker", "POST", f"/service-records/{rec['record_id']}/submission")
    rejected = call(
        http,
        world,
        "activity_leader",
        "POST",
        f"/service-records/{rec['record_id']}/rejection",
        {"reason": "时间有误"},
    )
    assert (rejected.json()["state"], rejected.json()["rejection_reason"]) == ("rejected", "时间有误")
    body = problem(verify(http, world, rec), 409, ErrorCode.INVALID_STATE_TRANSITION)
    assert (body["state"], body["action"]) == ("rejected", "verify")
    problem(
        call(http, world, "social_worker", "GET", f"/service-records/{uuid.uuid4()}"),
        404,
        ErrorCode.SERVICE_RECORD_NOT_FOUND,
    )
    problem(
        call(http, world, "social_worker", "GET", f"/corrections/{uuid.uuid4()}"),
        404,
        ErrorCode.CORRECTION_NOT_FOUND,
    )
    problem(
        call(http, world, "social_worker", "GET", "/service-records?cursor=!!"),
        400,
        ErrorCode.MALFORMED_REQUEST,
    )
    problem(
        call(
            http, world, "social_worker", "POST", "/activities", {**act_body(world), "end_date": "2025-03-01"}
        ),
        422,
        ErrorCode.INVALID_FIELD,
    )
    problem(
        call(
            http,
            world,
            "social_worker",
            "POST",
            "/activities",
            {**act_body(world), "leader_user_id": str(uuid.uuid4())},
        ),
        404,
        ErrorCode.USER_NOT_FOUND,
    )


def act_body(w: World) -> dict[str, object]:
    return {
        "name": "测试活动",
        "start_date": "2025-03-03",
        "end_date": "2025-03-07",
        "place": "活动中心",
        "content": "服务",
        "organising_unit": "居委会",
        "leader_user_id": str(w.user_ids["activity_leader"]),
    }


def test_record_lists_page_with_a_cursor_and_filter_by_state(http: Client, world: World) -> None:
    act = activity(http, world)
    made = [
        record(http, world, act, start=f"{h:02d}:00", end=f"{h:02d}:30", submit=h % 2 == 0)
        for h in range(8, 13)
    ]
    page = call(
        http, world, "social_worker", "GET", f"/service-records?activity_id={act['activity_id']}&limit=2"
    ).json()
    seen = [r["record_id"] for r in page["items"]]
    while page["next_cursor"]:
        page = call(
            http,
            world,
            "social_worker",
            "GET",
            f"/service-records?activity_id={act['activity_id']}&limit=2&cursor={page['next_cursor']}",
        ).json()
        seen += [r["record_id"] for r in page["items"]]
    assert seen == [r["record_id"] for r in made]
    drafts = call(
        http, world, "social_worker", "GET", f"/service-records?activity_id={act['activity_id']}&state=draft"
    ).json()
    assert [r["record_id"] for r in drafts["items"]] == [
        r["record_id"] for r in made if r["state"] == "draft"
    ]
