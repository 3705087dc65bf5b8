"""Service records for the API tests: an activity of the world's community led by its activity
leader, and fresh records and corrections in any state, made through the services (not over HTTP)
by the world's social worker and activity leader.

The community's working days are Monday to Friday (a settings version from 2000), so that tests do
not depend on the years the official holiday calendar covers; the services' clock is the real one,
so the activity ends today.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from api.deps import Services
from ledger.domain.errors import ErrorCode
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.service_records import ActivityFields
from ledger.services.activities import Activities
from ledger.services.record_import import RecordImport
from ledger.services.service_corrections import ServiceCorrections
from ledger.services.service_records import ServiceRecords
from ledger.store.db import Conn
from ledger.store.service_corrections_repo import CorrectionRow
from ledger.store.service_records_repo import ActivityRow, RecordRow
from tests.api.conftest import Client, World

ACTIVITY = ActivityFields(
    "社区助老服务", date(2000, 1, 1), date(2000, 1, 1), "幸福社区活动中心", "陪伴老人", "幸福社区居委会"
)


class Clock:
    """The services' wall time in the tests that need the scenarios' dates; ``on(day)`` is noon."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 10, 12, tzinfo=CHINA_TZ)

    def __call__(self) -> datetime:
        return self.now

    def on(self, day: date) -> None:
        self.now = datetime(day.year, day.month, day.day, 12, tzinfo=CHINA_TZ)


CLOCK = Clock()


def clocked(services: Services, pool: ConnectionPool[Conn]) -> Services:
    """The services, with the service-record ones on CLOCK."""
    s = services
    return dataclasses.replace(
        s,
        activities=Activities(pool, clock=CLOCK),
        records=ServiceRecords(pool, s.ledger, s.communities, clock=CLOCK),
        corrections=ServiceCorrections(pool, s.ledger, clock=CLOCK),
        record_import=RecordImport(pool, s.people, s.communities, clock=CLOCK),
    )


def call(
    http: Client, w: World, who: str, method: str, path: str, body: object = None, key: str | None = None
) -> Any:
    """``method`` on the community's ``path`` as ``who`` (a role, or a token name of the world)."""
    headers = w.auth(who) | ({"Idempotency-Key": key} if key else {})
    return http.request(method, f"/api/v1/communities/{w.community_id}{path}", json=body, headers=headers)


def problem(response: Any, status: int, code: ErrorCode) -> dict[str, Any]:
    """The RFC 9457 body of a failed call, checked for its status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == str(code)
    return body


def today() -> date:
    return datetime.now(CHINA_TZ).date()


@dataclass(frozen=True)
class Records:
    activity: ActivityRow
    own_record: RecordRow  # the volunteer's, posted
    other_record: RecordRow  # the other person's, posted
    other_correction: CorrectionRow  # filed on the other person's record


_made: dict[int, Records] = {}


def worker(w: World) -> uuid.UUID:
    return w.user_ids["social_worker"]


def leader(w: World) -> uuid.UUID:
    return w.user_ids["activity_leader"]


def activity(w: World, s: Services, *, days: int = 6, name: str = ACTIVITY.name) -> ActivityRow:
    """An activity from ``days`` ago until today, led by the world's activity leader."""
    end = today()
    fields = ActivityFields(
        name, end - timedelta(days=days), end, ACTIVITY.place, ACTIVITY.content, ACTIVITY.organising_unit
    )
    return s.activities.create(w.community_id, fields, leader_user_id=leader(w), actor_id=worker(w))


def records(w: World, s: Services) -> Records:
    """The world's activity, records and correction (made once per world)."""
    made = _made.get(w.community_id)
    if made is None:
        s.settings.publish(
            w.community_id, {"working_day_calendar": "mon_to_fri"}, effective_from=date(2000, 1, 1)
        )
        act = activity(w, s)
        own = fresh(w, s, act, w.volunteer_person, "posted")
        other = fresh(w, s, act, w.other_person, "posted")
        made = _made[w.community_id] = Records(act, own, other, file_correction(w, s, other))
    return made


def fresh(
    w: World,
    s: Services,
    act: ActivityRow | None = None,
    person: uuid.UUID | None = None,
    state: str = "draft",
    *,
    start: time = time(9, 0),
    end: time = time(11, 45),
    day: date | None = None,
) -> RecordRow:
    """A new record (the other person's by default) taken to ``state`` by the social worker and the
    leader: draft, submitted, verified (not posted) or posted."""
    act = act or records(w, s).activity
    c = w.community_id
    row = s.records.create(
        c,
        activity_id=act.activity_id,
        person_id=person or w.other_person,
        service_date=day or today(),
        start_time=start,
        end_time=end,
        actor_id=worker(w),
    )
    if state != "draft":
        row = s.records.submit(c, row.record_id, actor_id=worker(w))
    if state in ("verified", "posted"):
        row = s.records.verify(c, row.record_id, verifier_id=leader(w), post=state == "posted")
    return row


def own_posted(w: World, s: Services) -> RecordRow:
    """A fresh posted record of the world's volunteer."""
    return fresh(w, s, records(w, s).activity, w.volunteer_person, "posted")


def file_correction(w: World, s: Services, record: RecordRow | None = None) -> CorrectionRow:
    """A filed correction (to 09:00–12:00) of a posted record (a fresh one of the other person)."""
    record = record or fresh(w, s, state="posted")
    return s.corrections.file(
        w.community_id,
        record.record_id,
        start_time=time(9, 0),
        end_time=time(12, 0),
        reason="实际服务到12点",
        actor_id=uuid.uuid4(),  # the person's own user, in life; who filed does not matter here
    )


# ------------------------------------------------------------------- over HTTP, as the roles do


def http_activity(http: Client, w: World, **changes: object) -> dict[str, Any]:
    body = {
        "name": "社区助老服务",
        "start_date": "2025-03-03",
        "end_date": "2025-03-07",
        "place": "幸福社区活动中心",
        "content": "陪伴老人、打扫卫生",
        "organising_unit": "幸福社区居委会",
        "leader_user_id": str(w.user_ids["activity_leader"]),
        **changes,
    }
    response = call(http, w, "social_worker", "POST", "/activities", body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def record(
    http: Client,
    w: World,
    act: dict[str, Any],
    *,
    person: uuid.UUID | None = None,
    day: str = "2025-03-07",
    start: str = "09:00",
    end: str = "11:45",
    who: str = "social_worker",
    submit: bool = True,
) -> dict[str, Any]:
    body = {
        "activity_id": act["activity_id"],
        "person_id": str(person or w.volunteer_person),
        "service_date": day,
        "start_time": start,
        "end_time": end,
    }
    response = call(http, w, who, "POST", "/service-records", body)
    assert response.status_code == 201, response.text
    row: dict[str, Any] = response.json()
    if submit:
        response = call(http, w, who, "POST", f"/service-records/{row['record_id']}/submission")
        assert response.status_code == 200, response.text
        row = response.json()
    return row


def verify(http: Client, w: World, rec: dict[str, Any], who: str = "activity_leader", **kw: str) -> Any:
    return call(http, w, who, "POST", f"/service-records/{rec['record_id']}/verification", **kw)
