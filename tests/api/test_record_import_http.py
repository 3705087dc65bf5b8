"""Bulk import over HTTP: the file is the body; a dry run answers the row report, a real run posts
the whole sheet once; roles, idempotency and unreadable files. Clock: 2025-03-10, China time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from litestar.testing import TestClient
from openpyxl import Workbook
from psycopg_pool import ConnectionPool
from records_world import CLOCK, clocked, problem

from api.app import create_app
from api.deps import Services
from ledger.domain.errors import ErrorCode
from ledger.domain.service_records import ActivityFields
from ledger.store.db import Conn
from ledger.store.service_records_repo import ActivityRow
from tests.api.conftest import Client, World

ID_NUMBER = "11010519491231002X"  # the world's other person


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


@pytest.fixture
def act(world: World, services: Services) -> ActivityRow:
    fields = ActivityFields(
        "社区助老服务", date(2025, 3, 3), date(2025, 3, 7), "活动中心", "陪伴老人", "幸福社区居委会"
    )
    leader, worker = world.user_ids["activity_leader"], world.user_ids["social_worker"]
    return services.activities.create(world.community_id, fields, leader_user_id=leader, actor_id=worker)


def upload(
    http: Client,
    w: World,
    data: bytes,
    *,
    dry_run: bool | None = None,
    who: str = "social_worker",
    key: str = "",
) -> Any:
    query = "" if dry_run is None else f"?dry_run={str(dry_run).lower()}"
    headers = w.auth(who) | {"Content-Type": "text/csv"} | ({"Idempotency-Key": key} if key else {})
    path = f"/api/v1/communities/{w.community_id}/service-records/imports{query}"
    return http.post(path, content=data, headers=headers)


def sheet(world: World, *rows: tuple[str, str, str, str]) -> bytes:
    """CSV (UTF-8 with BOM): ID number or person id, date, start, end."""
    lines = ["证件号码,人员编号,活动名称,服务日期,开始时间,结束时间"]
    for who, day, start, end in rows:
        id_number, person = ("", who) if len(who) == 36 else (who, "")  # a person id, or an ID number
        lines.append(f"{id_number},{person},社区助老服务,{day},{start},{end}")
    return ("\ufeff" + "\n".join(lines) + "\n").encode()


def test_a_dry_run_is_the_default_and_answers_the_row_report(
    http: Client, world: World, act: ActivityRow
) -> None:
    data = sheet(
        world,
        (ID_NUMBER, "2025-03-05", "09:00", "11:45"),
        (str(world.volunteer_person), "2025-03-05", "09:00", "10:00"),
        ("11010119900101999X", "2025-03-05", "09:00", "10:00"),
        (ID_NUMBER, "2025-03-05", "10:00", "12:00"),
    )
    response = upload(http, world, data)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["dry_run"], report["committed"], report["rows"], report["ready_rows"]) == (
        True,
        False,
        4,
        2,
    )
    assert report["problems"] == [
        {
            "row": 4,
            "column": "证件号码",
            "code": "PERSON_NOT_FOUND",
            "message": "未找到该人员",
            "other_row": None,
            "record_id": None,
        },
        {
            "row": 5,
            "column": "开始时间",
            "code": "OVERLAP",
            "message": "与另一行同一志愿者的服务时间重叠",
            "other_row": 2,
            "record_id": None,
        },
    ]
    assert ID_NUMBER not in response.text and "11010119900101999X" not in response.text
    refused = upload(http, world, data, dry_run=False)
    assert (refused.status_code, refused.json()["committed"], refused.json()["problem_rows"]) == (
        200,
        False,
        2,
    )
    listed = http.get(
        f"/api/v1/communities/{world.community_id}/service-records", headers=world.auth("auditor")
    )
    assert listed.json()["items"] == []


def test_a_real_run_posts_the_sheet_once(http: Client, world: World, act: ActivityRow) -> None:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.append(["证件号码", "人员编号", "活动编号", "服务日期", "开始时间", "结束时间", "服务时长（小时）"])
    ws.append([ID_NUMBER, None, str(act.activity_id), "2025-03-05", "09:00", "11:45", 2.75])
    ws.append([None, str(world.volunteer_person), str(act.activity_id), "2025-03-06", "14:00", "16:00", 2])
    buffer = io.BytesIO()
    book.save(buffer)
    first = upload(http, world, buffer.getvalue(), dry_run=False, key="sheet-1")
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["committed"], report["ready_rows"], report["transfers"], report["credited_minutes"]) == (
        True,
        2,
        2,
        150 + 120,
    )
    replay = upload(http, world, buffer.getvalue(), dry_run=False, key="sheet-1")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == report
    problem(upload(http, world, b"other", dry_run=False, key="sheet-1"), 409, ErrorCode.IDEMPOTENCY_CONFLICT)
    again = upload(http, world, buffer.getvalue(), dry_run=False).json()
    assert (again["committed"], again["ready_rows"], again["already_imported_rows"], again["transfers"]) == (
        True,
        0,
        2,
        0,
    )
    mine = http.get(
        f"/api/v1/communities/{world.community_id}/service-records", headers=world.auth("volunteer")
    )
    [own] = mine.json()["items"]
    assert (own["state"], own["credited_minutes"], own["verified_by"]) == (
        "posted",
        120,
        str(world.user_ids["activity_leader"]),
    )


def test_who_may_import_and_unreadable_files(http: Client, world: World, act: ActivityRow) -> None:
    data = sheet(world, (ID_NUMBER, "2025-03-05", "09:00", "10:00"))
    problem(upload(http, world, data, who="volunteer"), 403, ErrorCode.FORBIDDEN)
    problem(upload(http, world, data, who="activity_leader"), 403, ErrorCode.FORBIDDEN)
    assert upload(http, world, data, who="community_admin").json()["ready_rows"] == 1
    body = problem(upload(http, world, b"PK\x03\x04broken"), 422, ErrorCode.INVALID_FIELD)
    assert body["field"] == "file"
    empty = upload(http, world, b"").json()
    assert [p["code"] for p in empty["problems"]] == ["EMPTY_SHEET"]
