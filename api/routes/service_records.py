"""Activities and service records: record, submit, verify, reject, post, override a deadline; read.

Who may do what (docs/service-records.md, "Over HTTP"): activities need ``activity:write``;
recording and submitting ``record:write`` (social workers); verifying, rejecting and posting
``record:verify`` (activity leaders); a deadline override ``record:override`` (administrators).
Staff with ``record:read`` read every record of the community; a volunteer reads their own
records, and anyone else's is 404. The service layer enforces what holds whoever calls (the
verifier is not the recorder, the deadline, the state machine). Every POST takes an
Idempotency-Key; replays answer the record as it is now.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from api.deps import Access, Services
from api.idempotent import idempotent
from api.pagination import Page, decode_cursor, next_cursor, page_limit
from api.params import Cursor, IdempotencyKey, Limit
from api.schemas_records import (
    ActivityIn,
    ActivityOut,
    EventOut,
    ReasonIn,
    RecordIn,
    RecordOut,
    RecordStateName,
    clock_time,
)
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission
from ledger.domain.service_records import ActivityFields, RecordState
from ledger.store.service_records_repo import RecordRow

P = Permission
COMMUNITY = "/api/v1/communities/{community_id:int}"


def readable_record(access: Access, services: Services, community_id: int, record_id: uuid.UUID) -> RecordRow:
    """A record the caller may read: any, with RECORD_READ; a volunteer's own; otherwise it does not
    exist for them (SERVICE_RECORD_NOT_FOUND)."""
    if access.can(P.RECORD_READ, community_id):
        return services.records.get(community_id, record_id)
    person_id = access.as_person(community_id, P.RECORD_READ)
    row = services.records.get(community_id, record_id)
    if row.person_id != person_id:
        raise LedgerError(ErrorCode.SERVICE_RECORD_NOT_FOUND, record_id=str(record_id))
    return row


class ActivityRoutes(Controller):
    path = f"{COMMUNITY}/activities"
    tags = ("service records",)

    @post(
        "/",
        sync_to_thread=True,
        summary="创建志愿服务活动",
        responses={201: ResponseSpec(ActivityOut, description="已创建", generate_examples=False)},
    )
    def create_activity(
        self,
        community_id: FromPath[int],
        data: JSONBody[ActivityIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.ACTIVITY_WRITE, community_id)

        def run() -> ActivityOut:
            fields = ActivityFields(
                data.name, data.start_date, data.end_date, data.place, data.content, data.organising_unit
            )
            row = services.activities.create(
                community_id,
                fields,
                leader_user_id=data.leader_user_id,
                leader_person_id=data.leader_person_id,
                actor_id=access.principal.user_id,
            )
            return ActivityOut.of(row)

        return idempotent(
            services,
            access,
            idempotency_key,
            f"activities:{community_id}",
            data,
            run,
            remember=lambda out: {"activity_id": str(out.activity_id)},
            recall=lambda s: ActivityOut.of(
                services.activities.get(community_id, uuid.UUID(s["activity_id"]))
            ),
        )

    @get("/", sync_to_thread=True, summary="志愿服务活动列表")
    def list_activities(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> Page[ActivityOut]:
        access.require(P.RECORD_READ, community_id)
        size = page_limit(limit)
        rows = services.activities.list(community_id, after=decode_cursor(cursor), limit=size)
        return Page(
            items=[ActivityOut.of(r) for r in rows],
            next_cursor=next_cursor([r.activity_id for r in rows], size),
        )

    @get("/{activity_id:uuid}", sync_to_thread=True, summary="志愿服务活动详情")
    def get_activity(
        self,
        community_id: FromPath[int],
        activity_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> ActivityOut:
        access.require(P.RECORD_READ, community_id)
        return ActivityOut.of(services.activities.get(community_id, activity_id))


_STEP = ResponseSpec(RecordOut, description="记录的当前状态", generate_examples=False)


class ServiceRecordRoutes(Controller):
    path = f"{COMMUNITY}/service-records"
    tags = ("service records",)

    @post(
        "/",
        sync_to_thread=True,
        summary="录入志愿服务记录（草稿）",
        responses={201: ResponseSpec(RecordOut, description="已录入", generate_examples=False)},
    )
    def create_record(
        self,
        community_id: FromPath[int],
        data: JSONBody[RecordIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.RECORD_WRITE, community_id)

        def run() -> RecordOut:
            row = services.records.create(
                community_id,
                activity_id=data.activity_id,
                person_id=data.person_id,
                service_date=data.service_date,
                start_time=clock_time(data.start_time),
                end_time=clock_time(data.end_time),
                place=data.place,
                content=data.content,
                actor_id=access.principal.user_id,
            )
            return RecordOut.of(row)

        return self._idempotent(
            access, services, community_id, idempotency_key, f"records:{community_id}", data, run, 201
        )

    @get("/", sync_to_thread=True, summary="志愿服务记录列表（志愿者只见本人记录）")
    def list_records(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
        person_id: Annotated[uuid.UUID | None, QueryParameter(name="person_id", required=False)] = None,
        activity_id: Annotated[uuid.UUID | None, QueryParameter(name="activity_id", required=False)] = None,
        state_filter: Annotated[RecordStateName | None, QueryParameter(name="state", required=False)] = None,
    ) -> Page[RecordOut]:
        if not access.can(P.RECORD_READ, community_id):
            own = access.as_person(community_id, P.RECORD_READ)
            if person_id not in (None, own):
                return Page(items=[])  # someone else's records do not exist for a volunteer
            person_id = own
        size = page_limit(limit)
        rows = services.records.list(
            community_id,
            person_id=person_id,
            activity_id=activity_id,
            state=None if state_filter is None else RecordState(state_filter),
            after=decode_cursor(cursor),
            limit=size,
        )
        return Page(
            items=[RecordOut.of(r) for r in rows], next_cursor=next_cursor([r.record_id for r in rows], size)
        )

    @get("/{record_id:uuid}", sync_to_thread=True, summary="志愿服务记录详情")
    def get_record(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> RecordOut:
        return RecordOut.of(readable_record(access, services, community_id, record_id))

    @get("/{record_id:uuid}/history", sync_to_thread=True, summary="志愿服务记录的办理经过")
    def history(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[EventOut]:
        readable_record(access, services, community_id, record_id)
        return [EventOut.of(e) for e in services.records.history(community_id, record_id)]

    @post(
        "/{record_id:uuid}/submission", sync_to_thread=True, summary="提交记录待核实", responses={200: _STEP}
    )
    def submit(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.RECORD_WRITE, community_id)
        actor = access.principal.user_id
        return self._idempotent(
            access,
            services,
            community_id,
            idempotency_key,
            f"records:submit:{community_id}:{record_id}",
            {},
            lambda: RecordOut.of(services.records.submit(community_id, record_id, actor_id=actor)),
        )

    @post(
        "/{record_id:uuid}/verification",
        sync_to_thread=True,
        summary="核实记录（默认同时入账；记录人不能核实自己录入的记录）",
        responses={200: _STEP},
    )
    def verify(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
        post_now: Annotated[
            bool, QueryParameter(name="post", required=False, description="核实后立即入账（默认是）")
        ] = True,
    ) -> Response[object]:
        access.require(P.RECORD_VERIFY, community_id)
        actor = access.principal.user_id
        return self._idempotent(
            access,
            services,
            community_id,
            idempotency_key,
            f"records:verify:{community_id}:{record_id}",
            {"post": post_now},
            lambda: RecordOut.of(
                services.records.verify(community_id, record_id, verifier_id=actor, post=post_now)
            ),
        )

    @post(
        "/{record_id:uuid}/rejection",
        sync_to_thread=True,
        summary="驳回记录（须说明理由）",
        responses={200: _STEP},
    )
    def reject(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        data: JSONBody[ReasonIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.RECORD_VERIFY, community_id)
        actor = access.principal.user_id
        return self._idempotent(
            access,
            services,
            community_id,
            idempotency_key,
            f"records:reject:{community_id}:{record_id}",
            data,
            lambda: RecordOut.of(
                services.records.reject(community_id, record_id, actor_id=actor, reason=data.reason)
            ),
        )

    @post(
        "/{record_id:uuid}/posting", sync_to_thread=True, summary="已核实的记录入账", responses={200: _STEP}
    )
    def post_record(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.RECORD_VERIFY, community_id)
        actor = access.principal.user_id
        return self._idempotent(
            access,
            services,
            community_id,
            idempotency_key,
            f"records:post:{community_id}:{record_id}",
            {},
            lambda: RecordOut.of(services.records.post(community_id, record_id, actor_id=actor)),
        )

    @post(
        "/{record_id:uuid}/deadline-override",
        sync_to_thread=True,
        summary="特批超期记录（入账后标记为逾期）",
        responses={200: _STEP},
    )
    def override_deadline(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        data: JSONBody[ReasonIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(P.RECORD_OVERRIDE, community_id)
        actor = access.principal.user_id
        return self._idempotent(
            access,
            services,
            community_id,
            idempotency_key,
            f"records:override:{community_id}:{record_id}",
            data,
            lambda: RecordOut.of(
                services.records.override_deadline(
                    community_id, record_id, actor_id=actor, reason=data.reason
                )
            ),
        )

    def _idempotent(
        self,
        access: Access,
        services: Services,
        community_id: int,
        key: str | None,
        route: str,
        payload: object,
        run: Callable[[], RecordOut],
        status_code: int = HTTP_200_OK,
    ) -> Response[object]:
        """Replays answer the record as it is now (ids are stored, not the record)."""

        def recall(stored: dict[str, str]) -> RecordOut:
            return RecordOut.of(services.records.get(community_id, uuid.UUID(stored["record_id"])))

        return idempotent(
            services,
            access,
            key,
            route,
            payload,
            run,
            status_code=status_code,
            remember=lambda out: {"record_id": str(out.record_id)},
            recall=recall,
        )
