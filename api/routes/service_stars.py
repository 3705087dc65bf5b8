"""A volunteer's cumulative service hours and star rating (星级), by the community's thresholds.

Staff with ``record:read`` read anyone's; a volunteer reads their own, and anyone else's does not
exist for them (PERSON_NOT_FOUND, 404), as with their records.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from api.deps import Access, Services
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission

OnDay = Annotated[date | None, QueryParameter(name="on", required=False, description="按该日生效的星级标准")]


class StarsOut(msgspec.Struct, kw_only=True):
    person_id: uuid.UUID
    total_minutes: int  # posted service minutes, corrections included
    stars: int  # 0 to 5
    settings_version: int  # the rule-settings version whose thresholds were applied


class ServiceStarRoutes(Controller):
    path = "/api/v1/communities/{community_id:int}/people/{person_id:uuid}/stars"
    tags = ("service-records",)

    @get("/", sync_to_thread=True, summary="志愿者累计服务时长与星级")
    def stars(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        on: Annotated[
            date | None, QueryParameter(name="on", required=False, description="按该日生效的星级标准")
        ] = None,
    ) -> StarsOut:
        if not access.can(Permission.RECORD_READ, community_id):
            own = access.as_person(community_id, Permission.RECORD_READ)
            if own != person_id:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
        view = services.records.stars(community_id, person_id, on=on)
        return StarsOut(
            person_id=view.person_id,
            total_minutes=view.total_minutes,
            stars=view.stars,
            settings_version=view.settings_version,
        )
