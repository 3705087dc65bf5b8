"""Corrections of posted service records (arts 12–13): the volunteer files, staff decide.

Only the record's own volunteer files a correction (anyone else: 403; someone else's record: 404).
Staff with ``correction:decide`` accept (the ledger reverses the record's transfer and posts the
corrected one) or reject with a reason; nobody decides a correction of their own record. Staff with
``record:read`` see every correction of the community; a volunteer sees those of their own records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import Access, Services
from api.idempotent import idempotent
from api.pagination import Page, decode_cursor, next_cursor, page_limit
from api.params import Cursor, IdempotencyKey, Limit
from api.routes.service_records import COMMUNITY, readable_record
from api.schemas_records import CorrectionIn, CorrectionOut, CorrectionStateName, ReasonIn, clock_time
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission
from ledger.domain.service_records import CorrectionState
from ledger.store.service_corrections_repo import CorrectionRow

P = Permission
_DECIDED = ResponseSpec(CorrectionOut, description="更正申请的当前状态", generate_examples=False)


def _readable(
    access: Access, services: Services, community_id: int, correction_id: uuid.UUID
) -> CorrectionRow:
    """A correction the caller may read: any, with RECORD_READ; one of the volunteer's own records."""
    if access.can(P.RECORD_READ, community_id):
        return services.corrections.get(community_id, correction_id)
    person_id = access.as_person(community_id, P.RECORD_READ)
    row = services.corrections.get(community_id, correction_id)
    if services.records.get(community_id, row.record_id).person_id != person_id:
        raise LedgerError(ErrorCode.CORRECTION_NOT_FOUND, correction_id=str(correction_id))
    return row


class RecordCorrectionRoutes(Controller):
    path = f"{COMMUNITY}/service-records/{{record_id:uuid}}/corrections"
    tags = ("service records",)

    @post(
        "/",
        sync_to_thread=True,
        summary="申请更正本人的志愿服务记录",
        responses={201: ResponseSpec(CorrectionOut, description="已提交", generate_examples=False)},
    )
    def file_correction(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        data: JSONBody[CorrectionIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        person = access.principal.person
        if person is None or person.community_id != community_id or not access.member_of(community_id):
            raise LedgerError(ErrorCode.FORBIDDEN)  # the volunteer files for themself; staff decide
        if services.records.get(community_id, record_id).person_id != person.person_id:
            raise LedgerError(ErrorCode.SERVICE_RECORD_NOT_FOUND, record_id=str(record_id))

        def run() -> CorrectionOut:
            row = services.corrections.file(
                community_id,
                record_id,
                start_time=clock_time(data.start_time),
                end_time=clock_time(data.end_time),
                reason=data.reason,
                actor_id=access.principal.user_id,
            )
            return CorrectionOut.of(row)

        route = f"corrections:file:{community_id}:{record_id}"
        return _idempotent(
            access, services, community_id, idempotency_key, route, data, run, HTTP_201_CREATED
        )

    @get("/", sync_to_thread=True, summary="某条记录的更正申请")
    def of_record(
        self,
        community_id: FromPath[int],
        record_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[CorrectionOut]:
        readable_record(access, services, community_id, record_id)
        return [CorrectionOut.of(c) for c in services.corrections.of_record(community_id, record_id)]


class CorrectionRoutes(Controller):
    path = f"{COMMUNITY}/corrections"
    tags = ("service records",)

    @get("/", sync_to_thread=True, summary="更正申请列表（志愿者只见本人记录的申请）")
    def list_corrections(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
        person_id: Annotated[uuid.UUID | None, QueryParameter(name="person_id", required=False)] = None,
        state_filter: Annotated[
            CorrectionStateName | None, QueryParameter(name="state", required=False)
        ] = None,
    ) -> Page[CorrectionOut]:
        if not access.can(P.RECORD_READ, community_id):
            own = access.as_person(community_id, P.RECORD_READ)
            if person_id not in (None, own):
                return Page(items=[])  # someone else's corrections do not exist for a volunteer
            person_id = own
        size = page_limit(limit)
        rows = services.corrections.list(
            community_id,
            person_id=person_id,
            state=None if state_filter is None else CorrectionState(state_filter),
            after=decode_cursor(cursor),
            limit=size,
        )
        return Page(
            items=[CorrectionOut.of(c) for c in rows],
            next_cursor=next_cursor([c.correction_id for c in rows], size),
        )

    @get("/{correction_id:uuid}", sync_to_thread=True, summary="更正申请详情")
    def get_correction(
        self,
        community_id: FromPath[int],
        correction_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> CorrectionOut:
        return CorrectionOut.of(_readable(access, services, community_id, correction_id))

    @post(
        "/{correction_id:uuid}/acceptance",
        sync_to_thread=True,
        summary="同意更正（冲正原记账并按更正后的时间重新记账）",
        responses={200: _DECIDED},
    )
    def accept(
        self,
        community_id: FromPath[int],
        correction_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        self._may_decide(access, services, community_id, correction_id)
        actor = access.principal.user_id
        return _idempotent(
            access,
            services,
            community_id,
            idempotency_key,
            f"corrections:accept:{community_id}:{correction_id}",
            {},
            lambda: CorrectionOut.of(
                services.corrections.accept(community_id, correction_id, actor_id=actor)
            ),
        )

    @post(
        "/{correction_id:uuid}/rejection",
        sync_to_thread=True,
        summary="不同意更正（须说明理由）",
        responses={200: _DECIDED},
    )
    def reject(
        self,
        community_id: FromPath[int],
        correction_id: FromPath[uuid.UUID],
        data: JSONBody[ReasonIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        self._may_decide(access, services, community_id, correction_id)
        actor = access.principal.user_id
        return _idempotent(
            access,
            services,
            community_id,
            idempotency_key,
            f"corrections:reject:{community_id}:{correction_id}",
            data,
            lambda: CorrectionOut.of(
                services.corrections.reject(community_id, correction_id, actor_id=actor, reason=data.reason)
            ),
        )

    def _may_decide(
        self, access: Access, services: Services, community_id: int, correction_id: uuid.UUID
    ) -> None:
        """CORRECTION_DECIDE, and not about one's own record (a social worker may also volunteer)."""
        access.require(P.CORRECTION_DECIDE, community_id)
        person = access.principal.person
        if person is not None and person.community_id == community_id:
            record_id = services.corrections.get(community_id, correction_id).record_id
            if services.records.get(community_id, record_id).person_id == person.person_id:
                raise LedgerError(ErrorCode.FORBIDDEN, permission=str(P.CORRECTION_DECIDE))


def _idempotent(
    access: Access,
    services: Services,
    community_id: int,
    key: str | None,
    route: str,
    payload: object,
    run: Callable[[], CorrectionOut],
    status_code: int = HTTP_200_OK,
) -> Response[object]:
    """Replays answer the correction as it is now (its id is stored, not the correction)."""
    return idempotent(
        services,
        access,
        key,
        route,
        payload,
        run,
        status_code=status_code,
        remember=lambda out: {"correction_id": str(out.correction_id)},
        recall=lambda s: CorrectionOut.of(
            services.corrections.get(community_id, uuid.UUID(s["correction_id"]))
        ),
    )
