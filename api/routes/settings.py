"""Community rule settings: versioned, each version with its effective date; staff read, admins publish."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from api.deps import Access, Services
from api.idempotent import idempotent
from api.params import IdempotencyKey
from ledger.domain.roles import Permission
from ledger.services.rule_settings import SettingsVersion


class SettingsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    effective_from: date
    params: dict[str, object]
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class SettingsOut(msgspec.Struct, kw_only=True):
    version: int
    effective_from: date | None  # null for version 0, the built-in defaults
    params: dict[str, object]
    note: str
    created_by: uuid.UUID | None
    created_at: datetime | None

    @classmethod
    def of(cls, v: SettingsVersion) -> SettingsOut:
        return cls(
            version=v.version,
            effective_from=None if v.version == 0 else v.effective_from,
            params=v.params,
            note=v.note,
            created_by=v.created_by,
            created_at=v.created_at,
        )


class SettingsRoutes(Controller):
    path = "/api/v1/communities/{community_id:int}/settings"
    tags = ("settings",)

    @get("/", sync_to_thread=True, summary="现行规则参数（可指定日期）")
    def current(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        on: Annotated[date | None, QueryParameter(name="on", required=False)] = None,
    ) -> SettingsOut:
        access.require(Permission.SETTINGS_READ, community_id)
        return SettingsOut.of(services.settings.current(community_id, on=on))

    @get("/versions", sync_to_thread=True, summary="规则参数的全部版本")
    def versions(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[SettingsOut]:
        access.require(Permission.SETTINGS_READ, community_id)
        return [SettingsOut.of(v) for v in services.settings.versions(community_id)]

    @post(
        "/versions",
        sync_to_thread=True,
        summary="发布新版本规则参数",
        responses={201: ResponseSpec(SettingsOut, description="已发布", generate_examples=False)},
    )
    def publish(
        self,
        community_id: FromPath[int],
        data: JSONBody[SettingsIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        access.require(Permission.SETTINGS_WRITE, community_id)

        def run() -> SettingsOut:
            version = services.settings.publish(
                community_id,
                data.params,
                effective_from=data.effective_from,
                note=data.note,
                actor_id=access.principal.user_id,
            )
            return SettingsOut.of(version)

        return idempotent(services, access, idempotency_key, f"settings:{community_id}", data, run)
