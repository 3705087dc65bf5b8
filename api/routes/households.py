"""Households (户): members over time, head, split and merge, and their history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from api.deps import Access, Services
from api.idempotent import idempotent
from api.pagination import Page, decode_cursor, next_cursor, page_limit
from api.params import Cursor, IdempotencyKey, Limit
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission
from ledger.services.households import HouseholdView

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Label = Annotated[str, msgspec.Meta(max_length=50)]


class HouseholdIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Code
    village_group: Label = ""
    grid: Label = ""
    head_person_id: uuid.UUID | None = None
    member_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=list)


class MemberIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    person_id: uuid.UUID


class RemoveMemberIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    person_id: uuid.UUID
    new_head_person_id: uuid.UUID | None = None


class SplitIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    person_ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=50)]
    new_code: Code
    head_person_id: uuid.UUID
    new_head_person_id: uuid.UUID | None = None


class MergeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    into_household_id: uuid.UUID


class MemberOut(msgspec.Struct, kw_only=True):
    person_id: uuid.UUID
    is_head: bool
    valid_from: datetime
    valid_to: datetime | None


class HouseholdOut(msgspec.Struct, kw_only=True):
    household_id: uuid.UUID
    code: str
    village_group: str
    grid: str
    created_at: datetime
    dissolved_at: datetime | None
    head_person_id: uuid.UUID | None
    members: list[MemberOut]

    @classmethod
    def of(cls, view: HouseholdView) -> HouseholdOut:
        return cls(
            household_id=view.household_id,
            code=view.code,
            village_group=view.village_group,
            grid=view.grid,
            created_at=view.created_at,
            dissolved_at=view.dissolved_at,
            head_person_id=view.head_person_id,
            members=[
                MemberOut(
                    person_id=m.person_id, is_head=m.is_head, valid_from=m.valid_from, valid_to=m.valid_to
                )
                for m in view.members
            ],
        )


class EventOut(msgspec.Struct, kw_only=True):
    event_id: uuid.UUID
    kind: str
    detail: dict[str, object]
    actor_id: uuid.UUID | None
    at: datetime


class HouseholdRoutes(Controller):
    path = "/api/v1/communities/{community_id:int}/households"
    tags = ("households",)

    def _readable(
        self,
        access: Access,
        services: Services,
        community_id: int,
        household_id: uuid.UUID,
    ) -> None:
        """Staff with HOUSEHOLD_READ, or a current member of the household."""
        if access.can(Permission.HOUSEHOLD_READ, community_id):
            return
        person_id = access.as_person(community_id, Permission.HOUSEHOLD_READ)
        if services.households.household_of(community_id, person_id) != household_id:
            raise LedgerError(ErrorCode.HOUSEHOLD_NOT_FOUND, household_id=str(household_id))

    @post(
        "/",
        sync_to_thread=True,
        summary="建户",
        responses={201: ResponseSpec(HouseholdOut, description="已建户", generate_examples=False)},
    )
    def create(
        self,
        community_id: FromPath[int],
        data: JSONBody[HouseholdIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(Permission.HOUSEHOLD_WRITE, community_id)

        def run() -> HouseholdOut:
            household_id = services.households.create(
                community_id,
                data.code,
                village_group=data.village_group,
                grid=data.grid,
                head_person_id=data.head_person_id,
                member_ids=data.member_ids,
                actor_id=access.principal.user_id,
            )
            return HouseholdOut.of(services.households.get(community_id, household_id))

        return idempotent(services, access, idempotency_key, f"households:{community_id}", data, run)

    @get("/", sync_to_thread=True, summary="户列表")
    def list_households(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
        village_group: Annotated[str | None, QueryParameter(name="village_group", required=False)] = None,
        grid: Annotated[str | None, QueryParameter(name="grid", required=False)] = None,
        include_dissolved: Annotated[bool, QueryParameter(name="include_dissolved", required=False)] = False,
    ) -> Page[HouseholdOut]:
        access.require(Permission.HOUSEHOLD_READ, community_id)
        size = page_limit(limit)
        views = services.households.list(
            community_id,
            after=decode_cursor(cursor),
            limit=size,
            village_group=village_group,
            grid=grid,
            include_dissolved=include_dissolved,
        )
        return Page(
            items=[HouseholdOut.of(v) for v in views],
            next_cursor=next_cursor([v.household_id for v in views], size),
        )

    @get("/{household_id:uuid}", sync_to_thread=True, summary="户详情（可查历史某一时刻）")
    def get_household(
        self,
        community_id: FromPath[int],
        household_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        at: Annotated[datetime | None, QueryParameter(name="at", required=False)] = None,
    ) -> HouseholdOut:
        self._readable(access, services, community_id, household_id)
        return HouseholdOut.of(services.households.get(community_id, household_id, at=at))

    @get("/{household_id:uuid}/history", sync_to_thread=True, summary="户变更记录")
    def history(
        self,
        community_id: FromPath[int],
        household_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[EventOut]:
        self._readable(access, services, community_id, household_id)
        return [
            EventOut(event_id=e.event_id, kind=str(e.kind), detail=e.detail, actor_id=e.actor_id, at=e.at)
            for e in services.households.history(community_id, household_id)
        ]

    def _change(self, community_id: FromPath[int], access: NamedDependency[Access]) -> None:
        access.require(Permission.HOUSEHOLD_WRITE, community_id)

    @post("/{household_id:uuid}/members", sync_to_thread=True, status_code=HTTP_200_OK, summary="添加成员")
    def add_member(
        self,
        community_id: FromPath[int],
        household_id: FromPath[uuid.UUID],
        data: JSONBody[MemberIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> HouseholdOut:
        self._change(community_id, access)
        hh = services.households
        if hh.household_of(community_id, data.person_id) != household_id:  # a replay changes nothing
            hh.add_member(community_id, household_id, data.person_id, actor_id=access.principal.user_id)
        return HouseholdOut.of(hh.get(community_id, household_id))

    @post("/{household_id:uuid}/removals", sync_to_thread=True, status_code=HTTP_200_OK, summary="移出成员")
    def remove_member(
        self,
        community_id: FromPath[int],
        household_id: FromPath[uuid.UUID],
        data: JSONBody[RemoveMemberIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> HouseholdOut:
        self._change(community_id, access)
        hh = services.households
        if hh.household_of(community_id, data.person_id) == household_id:  # a replay changes nothing
            hh.remove_member(
                community_id,
                household_id,
                data.person_id,
                new_head_person_id=data.new_head_person_id,
                actor_id=access.principal.user_id,
            )
        return HouseholdOut.of(hh.get(community_id, household_id))

    @post("/{household_id:uuid}/head", sync_to_thread=True, status_code=HTTP_200_OK, summary="变更户主")
    def set_head(
        self,
        community_id: FromPath[int],
        household_id: FromPath[uuid.UUID],
        data: JSONBody[MemberIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> HouseholdOut:
        self._change(community_id, access)
        hh = services.households
        if hh.get(community_id, household_id).head_person_id != data.person_id:
            hh.set_head(community_id, household_id, data.person_id, actor_id=access.principal.user_id)
        return HouseholdOut.of(hh.get(community_id, household_id))

    @post(
        "/{household_id:uuid}/split",
        sync_to_thread=True,
        summary="分户",
        responses={201: ResponseSpec(HouseholdOut, description="新户", generate_examples=False)},
    )
    def split(
        self,
        community_id: FromPath[int],
        household_id: FromPath[uuid.UUID],
        data: JSONBody[SplitIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        self._change(community_id, access)

        def run() -> HouseholdOut:
            new_id = services.households.split(
                community_id,
                household_id,
                data.person_ids,
                data.new_code,
                head_person_id=data.head_person_id,
                new_head_person_id=data.new_head_person_id,
                actor_id=access.principal.user_id,
            )
            return HouseholdOut.of(services.households.get(community_id, new_id))

        route = f"split:{community_id}:{household_id}"
        return idempotent(services, access, idempotency_key, route, data, run)

    @post(
        "/{household_id:uuid}/merge",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="并户（本户并入目标户）",
        responses={200: ResponseSpec(HouseholdOut, description="并入后的目标户", generate_examples=False)},
    )
    def merge(
        self,
        community_id: FromPath[int],
        household_id: FromPath[uuid.UUID],
        data: JSONBody[MergeIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        self._change(community_id, access)

        def run() -> HouseholdOut:
            services.households.merge(
                community_id, household_id, data.into_household_id, actor_id=access.principal.user_id
            )
            return HouseholdOut.of(services.households.get(community_id, data.into_household_id))

        route = f"merge:{community_id}:{household_id}"
        return idempotent(services, access, idempotency_key, route, data, run, status_code=HTTP_200_OK)
