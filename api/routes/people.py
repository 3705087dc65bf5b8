"""People: register (with consent), read (masked unless the role needs the full value), erase."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from api.deps import Access, Services
from api.idempotent import idempotent
from api.pagination import Page, decode_cursor, next_cursor, page_limit
from api.params import Cursor, IdempotencyKey, Limit
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.people import PersonProfile
from ledger.domain.roles import Permission
from ledger.services.people import PersonView

Short = Annotated[str, msgspec.Meta(max_length=100)]


class ProfileIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    sex: Literal["male", "female", ""] = ""
    birth_date: date | None = None
    id_type: Literal["resident_id", "passport", "other"] = "resident_id"
    id_number: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    residence: Short = ""
    skills: Annotated[list[Short], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    service_categories: Annotated[list[Short], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )

    def domain(self) -> PersonProfile:
        return PersonProfile(
            name=self.name,
            sex=self.sex,
            birth_date=self.birth_date,
            id_type=self.id_type,
            id_number=self.id_number,
            phone=self.phone,
            residence=self.residence,
            skills=tuple(self.skills),
            service_categories=tuple(self.service_categories),
        )


class PersonIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    profile: ProfileIn
    consent_entry: bool = False
    consent_publish: bool = False
    entered_by_self: bool = False
    guardian_person_id: uuid.UUID | None = None


class ConsentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    consent_entry: bool | None = None
    consent_publish: bool | None = None


class ProfileOut(msgspec.Struct, kw_only=True):
    name: str
    sex: str
    birth_date: date | None
    id_type: str
    id_number: str | None
    phone: str | None
    residence: str
    skills: list[str]
    service_categories: list[str]


class PersonOut(msgspec.Struct, kw_only=True):
    person_id: uuid.UUID
    community_id: int
    profile: ProfileOut | None
    masked: bool
    erased: bool
    consent_entry: bool
    consent_publish: bool
    minor: bool
    guardian_person_id: uuid.UUID | None
    created_at: datetime
    erased_at: datetime | None

    @classmethod
    def of(cls, view: PersonView) -> PersonOut:
        p = view.profile
        profile = (
            None
            if p is None
            else ProfileOut(
                name=p.name,
                sex=p.sex,
                birth_date=None if view.masked else p.birth_date,
                id_type=p.id_type,
                id_number=p.id_number,
                phone=p.phone,
                residence=p.residence,
                skills=list(p.skills),
                service_categories=list(p.service_categories),
            )
        )
        return cls(
            person_id=view.person_id,
            community_id=view.community_id,
            profile=profile,
            masked=view.masked,
            erased=view.erased,
            consent_entry=view.consent_entry,
            consent_publish=view.consent_publish,
            minor=view.minor,
            guardian_person_id=view.guardian_person_id,
            created_at=view.created_at,
            erased_at=view.erased_at,
        )


class PersonRoutes(Controller):
    path = "/api/v1/communities/{community_id:int}/people"
    tags = ("people",)

    def _readable(self, access: Access, community_id: int, person_id: uuid.UUID) -> bool:
        """Staff with PERSON_READ, or the person themself."""
        if access.can(Permission.PERSON_READ, community_id):
            return True
        return access.as_person(community_id, Permission.PERSON_READ) == person_id

    def _full(self, access: Access, community_id: int, person_id: uuid.UUID | None = None) -> bool:
        own = person_id is not None and access.principal.is_person(community_id, person_id)
        return own or access.can(Permission.PERSON_READ_FULL, community_id)

    @post(
        "/",
        sync_to_thread=True,
        summary="登记人员（组织录入须本人同意）",
        responses={201: ResponseSpec(PersonOut, description="已登记", generate_examples=False)},
    )
    def create_person(
        self,
        community_id: FromPath[int],
        data: JSONBody[PersonIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(Permission.PERSON_WRITE, community_id)

        def run() -> PersonOut:
            person_id = services.people.create(
                community_id,
                data.profile.domain(),
                consent_entry=data.consent_entry,
                consent_publish=data.consent_publish,
                entered_by_self=data.entered_by_self,
                guardian_person_id=data.guardian_person_id,
                actor_id=access.principal.user_id,
            )
            full = self._full(access, community_id)
            return PersonOut.of(services.people.get(community_id, person_id, full=full))

        def recall(stored: dict[str, str]) -> PersonOut:
            person_id = uuid.UUID(stored["person_id"])
            full = self._full(access, community_id)
            return PersonOut.of(services.people.get(community_id, person_id, full=full))

        return idempotent(
            services,
            access,
            idempotency_key,
            f"people:{community_id}",
            data,
            run,
            remember=lambda out: {"person_id": str(out.person_id)},
            recall=recall,
        )

    @get("/", sync_to_thread=True, summary="人员列表（证件号、手机号按权限脱敏）")
    def list_people(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
        id_number: Annotated[
            str | None, QueryParameter(name="id_number", required=False, max_length=40)
        ] = None,
    ) -> Page[PersonOut]:
        access.require(Permission.PERSON_READ, community_id)
        full = self._full(access, community_id)
        if id_number is not None:  # exact lookup through the blind index; never a partial match
            found = services.people.find_by_id_number(community_id, id_number)
            views = [] if found is None else [services.people.get(community_id, found, full=full)]
            return Page(items=[PersonOut.of(v) for v in views])
        size = page_limit(limit)
        views = services.people.list(community_id, after=decode_cursor(cursor), limit=size, full=full)
        return Page(
            items=[PersonOut.of(v) for v in views],
            next_cursor=next_cursor([v.person_id for v in views], size),
        )

    @get("/{person_id:uuid}", sync_to_thread=True, summary="人员详情")
    def get_person(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> PersonOut:
        if not self._readable(access, community_id, person_id):
            raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
        full = self._full(access, community_id, person_id)
        return PersonOut.of(services.people.get(community_id, person_id, full=full))

    @patch("/{person_id:uuid}/consent", sync_to_thread=True, summary="更新同意事项")
    def update_consent(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        data: JSONBody[ConsentIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> PersonOut:
        if not access.principal.is_person(community_id, person_id):
            access.require(Permission.PERSON_WRITE, community_id)
        services.people.update_consent(
            community_id,
            person_id,
            consent_entry=data.consent_entry,
            consent_publish=data.consent_publish,
            actor_id=access.principal.user_id,
        )
        full = self._full(access, community_id, person_id)
        return PersonOut.of(services.people.get(community_id, person_id, full=full))

    @post(
        "/{person_id:uuid}/erasure",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="删除个人信息",
        responses={200: ResponseSpec(PersonOut, description="已删除", generate_examples=False)},
    )
    def erase(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        """Crypto-shredding on request: the person's key is destroyed; ledger history stays, pseudonymous."""
        access.require(Permission.PERSON_ERASE, community_id)

        def run() -> PersonOut:
            services.people.erase(community_id, person_id, actor_id=access.principal.user_id)
            return PersonOut.of(services.people.get(community_id, person_id, full=False))

        route = f"erase:{community_id}:{person_id}"
        return idempotent(
            services,
            access,
            idempotency_key,
            route,
            {},
            run,
            status_code=HTTP_200_OK,
            remember=lambda out: {"person_id": str(out.person_id)},
            recall=lambda _stored: PersonOut.of(services.people.get(community_id, person_id, full=False)),
        )
