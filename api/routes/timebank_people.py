"""The time bank's facts about people and regions over HTTP: relations, hardship flags, gifts of coins
to relatives, and the region's cross-community switch (通存通兑).

- Relations and hardship flags are recorded, ended and revoked by time-bank staff
  (``timebank:manage``); staff read anyone's, a member reads their own, and anyone else's person
  does not exist for a member (404). Which relatives someone has and whether they are in hardship
  are personal data: they appear in answers to those callers only, never in logs or error details.
- A gift is the giver's own act: the giver is the caller's person, in this community.
- The switch of a region is changed (and its history read) by a region admin of that region only:
  a ``region_admin`` grant for the whole region, not an admin of one of its communities. Any member
  of a community reads whether it is on for their community.
"""

from __future__ import annotations

import hashlib
import uuid

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import Access, Services
from api.idempotent import idempotent
from api.keys import ledger_key
from api.params import IdempotencyKey
from api.routes.timebank import actor_of
from api.schemas import TransferOut
from api.schemas_timebank import (
    CommunitySwitchOut,
    GiftIn,
    HardshipIn,
    HardshipOut,
    RegionSwitchOut,
    RelationEndedOut,
    RelationIn,
    RelationOut,
    SwitchEventOut,
    SwitchIn,
)
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission, Role
from ledger.domain.timebank import Actor
from ledger.domain.timebank_rules import RelationKind
from ledger.domain.transfers import check_idempotency_key
from ledger.store.timebank_people_repo import HardshipRow

P = Permission
COMMUNITY = "/api/v1/communities/{community_id:int}"


def _staff(access: Access, community_id: int) -> Actor:
    """Time-bank staff of the community, as the service's actor; FORBIDDEN for anyone else."""
    access.require(P.TIMEBANK_MANAGE, community_id)
    return actor_of(access, community_id)


def _readable(access: Access, community_id: int, person_id: uuid.UUID) -> None:
    """Staff read anyone's relations and flags; a member their own; others' are PERSON_NOT_FOUND."""
    if access.can(P.TIMEBANK_MANAGE, community_id):
        return
    if access.as_person(community_id, P.TIMEBANK_MANAGE) != person_id:
        raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))


def _flag(services: Services, community_id: int, person_id: uuid.UUID, flag_id: uuid.UUID) -> HardshipRow:
    for flag in services.timebank_members.hardship_flags(community_id, person_id):
        if flag.flag_id == flag_id:
            return flag
    raise LedgerError(ErrorCode.HARDSHIP_FLAG_NOT_FOUND, flag_id=str(flag_id))


def gift_key(user_id: uuid.UUID, client_key: str | None) -> str:
    """The gift's key for the service (at most 100 characters): the caller's namespaced ledger key,
    checked, then hashed so that any client key up to the API's limit fits."""
    full = check_idempotency_key(ledger_key(user_id, client_key))
    return f"u{user_id.hex}:{hashlib.sha256(full.encode()).hexdigest()[:48]}"


_REPLAY = ResponseSpec(
    TransferOut, description="重放：同一幂等键、同一请求的首次结果", generate_examples=False
)


class TimeBankPeopleRoutes(Controller):
    path = COMMUNITY
    tags = ("time bank",)

    # ---------------------------------------------------------------------------------- gifts

    @post(
        "/timebank/gifts",
        sync_to_thread=True,
        summary="向亲属赠与时间币（赠与人为本人）",
        responses={200: _REPLAY},
    )
    def give(
        self,
        community_id: FromPath[int],
        data: JSONBody[GiftIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[TransferOut]:
        person = access.principal.person
        if person is None or person.community_id != community_id:
            raise LedgerError(ErrorCode.ACTOR_NOT_ALLOWED, action="gift", allowed="giver")
        giver = access.as_person(community_id, P.COMMUNITY_READ)  # still a member
        result = services.timebank_members.gift(
            community_id,
            giver,
            data.recipient_person_id,
            data.amount_coin_minutes,
            actor=actor_of(access, community_id),
            idempotency_key=gift_key(access.principal.user_id, idempotency_key),
        )
        return Response(
            TransferOut.of(result), status_code=HTTP_200_OK if result.replayed else HTTP_201_CREATED
        )

    @get("/timebank/cross-community", sync_to_thread=True, summary="本社区所在街道是否已开通时间币通存通兑")
    def community_switch(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> CommunitySwitchOut:
        access.require(P.COMMUNITY_READ, community_id)
        region_id = access.region(community_id)
        enabled, _history = services.timebank_members.cross_community(region_id)
        return CommunitySwitchOut(community_id=community_id, region_id=region_id, cross_community=enabled)

    # ------------------------------------------------------------------------------ relations

    @get(
        "/people/{person_id:uuid}/relations",
        sync_to_thread=True,
        summary="登记的亲友关系（本人或时间银行工作人员）",
    )
    def relations(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[RelationOut]:
        _readable(access, community_id, person_id)
        try:
            views = services.timebank_members.relations(community_id, person_id)
        except LedgerError as err:
            if err.code is not ErrorCode.PERSON_ERASED:
                raise
            return []  # an erased person's records are not shown (and take part in nothing new)
        return [RelationOut.of(v) for v in views]

    @post(
        "/people/{person_id:uuid}/relations",
        sync_to_thread=True,
        summary="登记亲友关系（kind 为亲属对本人的关系）",
        responses={201: ResponseSpec(RelationOut, description="已登记", generate_examples=False)},
    )
    def record_relation(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        data: JSONBody[RelationIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        actor = _staff(access, community_id)

        def run() -> RelationOut:
            view = services.timebank_members.record_relation(
                community_id, person_id, data.relative_person_id, RelationKind(data.kind), actor=actor
            )
            return RelationOut.of(view)

        route = f"timebank-relation:{community_id}:{person_id}"
        return idempotent(services, access, idempotency_key, route, data, run)

    @post(
        "/people/{person_id:uuid}/relations/{relation_id:uuid}/ending",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="解除亲友关系登记",
        responses={200: ResponseSpec(RelationEndedOut, description="已解除", generate_examples=False)},
    )
    def end_relation(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        relation_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        actor = _staff(access, community_id)

        def run() -> RelationEndedOut:
            current = services.timebank_members.relations(community_id, person_id)
            if relation_id not in {v.relation_id for v in current}:
                raise LedgerError(ErrorCode.RELATION_NOT_FOUND, relation_id=str(relation_id))
            services.timebank_members.end_relation(community_id, relation_id, actor=actor)
            return RelationEndedOut(relation_id=relation_id, person_id=person_id, ended=True)

        route = f"timebank-relation-end:{community_id}:{person_id}:{relation_id}"
        return idempotent(services, access, idempotency_key, route, {}, run, status_code=HTTP_200_OK)

    # ------------------------------------------------------------------------- hardship flags

    @get(
        "/people/{person_id:uuid}/hardship-flags",
        sync_to_thread=True,
        summary="困难认定记录（本人或时间银行工作人员）",
    )
    def hardship_flags(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[HardshipOut]:
        _readable(access, community_id, person_id)
        today = services.timebank_members.today()
        try:
            flags = services.timebank_members.hardship_flags(community_id, person_id)
        except LedgerError as err:
            if err.code is not ErrorCode.PERSON_ERASED:
                raise
            return []  # as for relations
        return [HardshipOut.of(f, today) for f in flags]

    @post(
        "/people/{person_id:uuid}/hardship-flags",
        sync_to_thread=True,
        summary="登记困难认定（不记录原因）",
        responses={201: ResponseSpec(HardshipOut, description="已登记", generate_examples=False)},
    )
    def grant_hardship(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        data: JSONBody[HardshipIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        actor = _staff(access, community_id)
        members = services.timebank_members

        def run() -> HardshipOut:
            row = members.grant_hardship(
                community_id, person_id, valid_from=data.valid_from, valid_until=data.valid_until, actor=actor
            )
            return HardshipOut.of(row, members.today())

        return idempotent(
            services,
            access,
            idempotency_key,
            f"timebank-hardship:{community_id}:{person_id}",
            data,
            run,
            remember=lambda out: {"flag_id": str(out.flag_id)},
            recall=lambda s: HardshipOut.of(
                _flag(services, community_id, person_id, uuid.UUID(s["flag_id"])), members.today()
            ),
        )

    @post(
        "/people/{person_id:uuid}/hardship-flags/{flag_id:uuid}/revocation",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="撤销困难认定（当日起不再有效）",
        responses={200: ResponseSpec(HardshipOut, description="已撤销", generate_examples=False)},
    )
    def revoke_hardship(
        self,
        community_id: FromPath[int],
        person_id: FromPath[uuid.UUID],
        flag_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        actor = _staff(access, community_id)
        members = services.timebank_members

        def run() -> HardshipOut:
            _flag(services, community_id, person_id, flag_id)  # the flag is this person's
            return HardshipOut.of(
                members.revoke_hardship(community_id, flag_id, actor=actor), members.today()
            )

        return idempotent(
            services,
            access,
            idempotency_key,
            f"timebank-hardship-revoke:{community_id}:{person_id}:{flag_id}",
            {},
            run,
            status_code=HTTP_200_OK,
            remember=lambda out: {"flag_id": str(out.flag_id)},
            recall=lambda _s: HardshipOut.of(
                _flag(services, community_id, person_id, flag_id), members.today()
            ),
        )


def _region_admin(access: Access, region_id: int) -> Actor:
    """A region admin of this region (a grant for the whole region), as staff; FORBIDDEN otherwise."""
    if not any(g.role is Role.REGION_ADMIN and g.region_id == region_id for g in access.principal.grants):
        raise LedgerError(ErrorCode.FORBIDDEN, permission=str(P.TIMEBANK_MANAGE), region_id=region_id)
    return Actor(access.principal.user_id, None, staff=True)


def _switch(services: Services, region_id: int) -> RegionSwitchOut:
    enabled, history = services.timebank_members.cross_community(region_id)
    return RegionSwitchOut(
        region_id=region_id, cross_community=enabled, history=[SwitchEventOut.of(e) for e in history]
    )


class RegionTimeBankRoutes(Controller):
    path = "/api/v1/regions/{region_id:int}/cross-community"
    tags = ("time bank",)

    @get("/", sync_to_thread=True, summary="街道时间币通存通兑开关及变更记录（街道管理员）")
    def get_switch(
        self, region_id: FromPath[int], access: NamedDependency[Access], services: NamedDependency[Services]
    ) -> RegionSwitchOut:
        _region_admin(access, region_id)
        return _switch(services, region_id)

    @post(
        "/",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="开通或关闭街道内时间币通存通兑（街道管理员）",
        responses={200: ResponseSpec(RegionSwitchOut, description="开关的当前状态", generate_examples=False)},
    )
    def set_switch(
        self,
        region_id: FromPath[int],
        data: JSONBody[SwitchIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        actor = _region_admin(access, region_id)

        def run() -> RegionSwitchOut:
            services.timebank_members.set_cross_community(
                region_id, data.enabled, actor=actor, note=data.note
            )
            return _switch(services, region_id)

        return idempotent(
            services,
            access,
            idempotency_key,
            f"timebank-switch:{region_id}",
            data,
            run,
            status_code=HTTP_200_OK,
            remember=lambda out: {"region_id": out.region_id},
            recall=lambda _s: _switch(services, region_id),
        )
