"""Time-bank exchanges over HTTP: request, match, start, confirm, settle, cancel, dispute, resolve; read.

Who may take each step is the service's rule (``ledger/domain/timebank.py``): the HTTP layer only
says who the caller is, as an ``Actor``: their user, the person they are (a member of that
person's community) and whether they are time-bank staff (``timebank:manage``) of the exchange's
community. Who may *see* an exchange is decided here: staff who read the community's transfers
(``transfer:read``, which every ``timebank:manage`` holder has) see all of its exchanges; a member
sees the exchanges they are the recipient or the provider of, possibly as a provider from another
community of the region, and any other exchange does not exist for them (404). Every POST takes an
Idempotency-Key; a replay answers the exchange as it is now.
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
from api.schemas_timebank import (
    CancelIn,
    ConfirmIn,
    DisputeIn,
    ExchangeEventOut,
    ExchangeIn,
    ExchangeOut,
    ExchangeStateName,
    MatchIn,
    ResolveIn,
)
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission
from ledger.domain.timebank import Actor, ExchangeState, Resolution
from ledger.store.timebank_repo import ExchangeRow

P = Permission
COMMUNITY = "/api/v1/communities/{community_id:int}"


def actor_of(access: Access, community_id: int) -> Actor:
    """The caller as the service layer sees them in ``community_id``: the user; the person they are,
    while they hold a role in that person's community; staff if they have ``timebank:manage`` here."""
    person = access.principal.person
    ref = None
    if person is not None and access.member_of(person.community_id):
        ref = (person.community_id, person.person_id)
    return Actor(access.principal.user_id, ref, staff=access.can(P.TIMEBANK_MANAGE, community_id))


def reads_all(access: Access, community_id: int) -> bool:
    """Staff who see every exchange of the community."""
    return access.can(P.TRANSFER_READ, community_id) or access.can(P.TIMEBANK_MANAGE, community_id)


def party_of(access: Access) -> tuple[int, uuid.UUID]:
    """The caller as a member who can be a party (of any community); FORBIDDEN for anyone else."""
    person = access.principal.person
    if person is None or not access.member_of(person.community_id):
        raise LedgerError(ErrorCode.FORBIDDEN, permission=str(P.TRANSFER_READ))
    return (person.community_id, person.person_id)


def visible_exchange(
    access: Access, services: Services, community_id: int, exchange_id: uuid.UUID
) -> ExchangeRow:
    """An exchange the caller may see (see the module's docstring); EXCHANGE_NOT_FOUND otherwise."""
    if reads_all(access, community_id):
        return services.timebank.get(community_id, exchange_id)
    me = party_of(access)
    row = services.timebank.get(community_id, exchange_id)
    if me not in (
        (community_id, row.recipient_person_id),
        (row.provider_community_id, row.provider_person_id),
    ):
        raise LedgerError(ErrorCode.EXCHANGE_NOT_FOUND, exchange_id=str(exchange_id))
    return row


_STEP = ResponseSpec(ExchangeOut, description="服务交换的当前状态", generate_examples=False)


class ExchangeRoutes(Controller):
    path = f"{COMMUNITY}/timebank/exchanges"
    tags = ("time bank",)

    @post(
        "/",
        sync_to_thread=True,
        summary="申请时间银行服务（本人申请，或工作人员代为申请），并冻结所需时间币",
        responses={201: ResponseSpec(ExchangeOut, description="已申请", generate_examples=False)},
    )
    def request_exchange(
        self,
        community_id: FromPath[int],
        data: JSONBody[ExchangeIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        actor = actor_of(access, community_id)
        if not actor.staff:
            access.as_person(community_id, P.TIMEBANK_MANAGE)  # members of this community ask for themselves
        recipient = data.recipient_person_id
        if recipient is None:
            if actor.person is None or actor.person[0] != community_id:
                raise LedgerError(ErrorCode.INVALID_FIELD, field="recipient_person_id")
            recipient = actor.person[1]

        def run() -> ExchangeOut:
            row = services.timebank.request(
                community_id,
                recipient,
                service=data.service,
                actor=actor,
                planned_minutes=data.planned_minutes,
                item_price_coin_minutes=data.item_price_coin_minutes,
            )
            return ExchangeOut.of(row)

        return idempotent(
            services,
            access,
            idempotency_key,
            f"timebank-exchange:{community_id}",
            data,
            run,
            remember=lambda out: {"exchange_id": str(out.exchange_id)},
            recall=lambda s: ExchangeOut.of(
                visible_exchange(access, services, community_id, uuid.UUID(s["exchange_id"]))
            ),
        )

    @get("/", sync_to_thread=True, summary="时间银行服务交换列表（志愿者只看到本人参与的）")
    def list_exchanges(
        self,
        community_id: FromPath[int],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        cursor: Cursor = None,
        limit: Limit = None,
        state_filter: Annotated[
            ExchangeStateName | None, QueryParameter(name="state", required=False, description="按状态筛选")
        ] = None,
        recipient_person_id: Annotated[
            uuid.UUID | None,
            QueryParameter(name="recipient_person_id", required=False, description="按受助人筛选"),
        ] = None,
    ) -> Page[ExchangeOut]:
        size = page_limit(limit)
        party = None if reads_all(access, community_id) else party_of(access)
        rows = services.timebank.list(
            community_id,
            recipient_person_id=recipient_person_id,
            party=party,
            state=None if state_filter is None else ExchangeState(state_filter),
            after=decode_cursor(cursor),
            limit=size,
        )
        return Page(
            items=[ExchangeOut.of(r) for r in rows],
            next_cursor=next_cursor([r.exchange_id for r in rows], size),
        )

    @get("/{exchange_id:uuid}", sync_to_thread=True, summary="时间银行服务交换详情")
    def get_exchange(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> ExchangeOut:
        return ExchangeOut.of(visible_exchange(access, services, community_id, exchange_id))

    @get("/{exchange_id:uuid}/history", sync_to_thread=True, summary="服务交换的每一步（办理人、身份、时间）")
    def exchange_history(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[ExchangeEventOut]:
        visible_exchange(access, services, community_id, exchange_id)
        return [ExchangeEventOut.of(e) for e in services.timebank.history(community_id, exchange_id)]

    # ------------------------------------------------------------------------------------ steps

    @post(
        "/{exchange_id:uuid}/match",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="匹配服务者（时间银行工作人员）",
        responses={200: _STEP},
    )
    def match(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        data: JSONBody[MatchIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        def act(actor: Actor) -> ExchangeRow:
            return services.timebank.match(
                community_id,
                exchange_id,
                provider_community_id=data.provider_community_id or community_id,
                provider_person_id=data.provider_person_id,
                actor=actor,
            )

        return _step(access, services, community_id, exchange_id, "match", data, idempotency_key, act)

    @post(
        "/{exchange_id:uuid}/start",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="开始服务（服务者或工作人员）",
        responses={200: _STEP},
    )
    def start(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        def act(actor: Actor) -> ExchangeRow:
            return services.timebank.start(community_id, exchange_id, actor=actor)

        return _step(access, services, community_id, exchange_id, "start", {}, idempotency_key, act)

    @post(
        "/{exchange_id:uuid}/confirmation",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="确认服务完成及服务时长（仅受助人本人）",
        responses={200: _STEP},
    )
    def confirm(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        data: JSONBody[ConfirmIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        def act(actor: Actor) -> ExchangeRow:
            return services.timebank.confirm(
                community_id, exchange_id, actor=actor, served_minutes=data.served_minutes
            )

        return _step(access, services, community_id, exchange_id, "confirm", data, idempotency_key, act)

    @post(
        "/{exchange_id:uuid}/settlement",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="结算：解冻并向服务者支付时间币（双方或工作人员）",
        responses={200: _STEP},
    )
    def settle(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        def act(actor: Actor) -> ExchangeRow:
            return services.timebank.settle(community_id, exchange_id, actor=actor)

        return _step(access, services, community_id, exchange_id, "settle", {}, idempotency_key, act)

    @post(
        "/{exchange_id:uuid}/cancellation",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="取消服务（服务开始前；解冻时间币）",
        responses={200: _STEP},
    )
    def cancel(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        data: JSONBody[CancelIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        def act(actor: Actor) -> ExchangeRow:
            return services.timebank.cancel(community_id, exchange_id, actor=actor, reason=data.reason)

        return _step(access, services, community_id, exchange_id, "cancel", data, idempotency_key, act)

    @post(
        "/{exchange_id:uuid}/dispute",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="提出争议（服务中或已确认；时间币保持冻结）",
        responses={200: _STEP},
    )
    def dispute(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        data: JSONBody[DisputeIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        def act(actor: Actor) -> ExchangeRow:
            return services.timebank.dispute(community_id, exchange_id, actor=actor, reason=data.reason)

        return _step(access, services, community_id, exchange_id, "dispute", data, idempotency_key, act)

    @post(
        "/{exchange_id:uuid}/resolution",
        sync_to_thread=True,
        status_code=HTTP_200_OK,
        summary="处理争议：结算或取消（非当事人的时间银行工作人员）",
        responses={200: _STEP},
    )
    def resolve(
        self,
        community_id: FromPath[int],
        exchange_id: FromPath[uuid.UUID],
        data: JSONBody[ResolveIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        def act(actor: Actor) -> ExchangeRow:
            return services.timebank.resolve(
                community_id,
                exchange_id,
                actor=actor,
                resolution=Resolution(data.resolution),
                served_minutes=data.served_minutes,
                note=data.note,
            )

        return _step(access, services, community_id, exchange_id, "resolve", data, idempotency_key, act)


def _step(
    access: Access,
    services: Services,
    community_id: int,
    exchange_id: uuid.UUID,
    name: str,
    payload: object,
    key: str | None,
    act: Callable[[Actor], ExchangeRow],
) -> Response[object]:
    """One step on an exchange the caller can see, as the actor they are; replays answer the
    exchange as it is now."""
    visible_exchange(access, services, community_id, exchange_id)
    actor = actor_of(access, community_id)
    return idempotent(
        services,
        access,
        key,
        f"timebank-{name}:{community_id}:{exchange_id}",
        payload,
        lambda: ExchangeOut.of(act(actor)),
        status_code=HTTP_200_OK,
        remember=lambda out: {"exchange_id": str(out.exchange_id)},
        recall=lambda _s: ExchangeOut.of(visible_exchange(access, services, community_id, exchange_id)),
    )
