"""Users, role grants and API tokens, managed by admins within the scope of their own grants."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from api.deps import Access, Services
from api.idempotent import idempotent
from api.params import IdempotencyKey
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import ROLE_NAMES_ZH, Grant, Permission, PersonRef, Role
from ledger.services.identity import UserInfo

RoleName = Literal[
    "volunteer",
    "social_worker",
    "activity_leader",
    "grid_worker",
    "review_panel",
    "shop_clerk",
    "community_admin",
    "region_admin",
    "auditor",
]


class UserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=3, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=1024)] | None = None
    person_community_id: int | None = None
    person_id: uuid.UUID | None = None


class GrantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: RoleName
    community_id: int | None = None
    region_id: int | None = None


class TokenIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    expires_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class GrantOut(msgspec.Struct, kw_only=True):
    grant_id: uuid.UUID
    role: str
    role_name: str
    community_id: int | None
    region_id: int | None


class UserOut(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    username: str
    person_community_id: int | None
    person_id: uuid.UUID | None
    disabled: bool
    grants: list[GrantOut]


class IssuedTokenOut(msgspec.Struct, kw_only=True):
    token_id: uuid.UUID
    token: str
    expires_at: datetime | None


class TokenOut(msgspec.Struct, kw_only=True):
    token_id: uuid.UUID
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def _user_out(services: NamedDependency[Services], user: UserInfo) -> UserOut:
    return UserOut(
        user_id=user.user_id,
        username=user.username,
        person_community_id=user.person.community_id if user.person else None,
        person_id=user.person.person_id if user.person else None,
        disabled=user.disabled,
        grants=[
            GrantOut(
                grant_id=grant_id,
                role=str(g.role),
                role_name=ROLE_NAMES_ZH[g.role],
                community_id=g.community_id,
                region_id=g.region_id,
            )
            for grant_id, g in services.identity.active_grants(user.user_id)
        ],
    )


def _manages(access: Access, user: UserInfo, *, every: bool) -> bool:
    """Whether the caller administers the user: themself; else the communities and regions the user
    holds roles in (or is a person of). ``every`` for acts that hand over the user's power (tokens):
    the caller must administer all of those scopes, or an outside admin could grant our admin a role
    in their own community and then mint a token carrying all of our admin's rights."""
    if user.user_id == access.principal.user_id:
        return True
    scopes = list(user.grants)
    if user.person is not None:
        scopes.append(Grant(Role.VOLUNTEER, community_id=user.person.community_id))
    if not scopes:  # a user with no role has no power to hand over; any administrator may manage it
        return _is_admin(access)

    def covered(g: Grant) -> bool:
        if g.community_id is not None:
            return access.can(Permission.USER_MANAGE, g.community_id)
        return access.principal.may_grant(Grant(Role.AUDITOR, region_id=g.region_id), None)

    return all(map(covered, scopes)) if every else any(map(covered, scopes))


def _managed_user(access: Access, services: Services, user_id: uuid.UUID, *, every: bool) -> UserInfo:
    """The user, if the caller manages them (see _manages); USER_NOT_FOUND otherwise, so that users
    outside the caller's scope do not show."""
    user = services.identity.user(user_id)
    if not _manages(access, user, every=every):
        raise LedgerError(ErrorCode.USER_NOT_FOUND, user_id=str(user_id))
    return user


def _is_admin(access: Access) -> bool:
    return any(g.role in (Role.COMMUNITY_ADMIN, Role.REGION_ADMIN) for g in access.principal.grants)


def _any_admin(access: Access) -> None:
    if not _is_admin(access):
        raise LedgerError(ErrorCode.FORBIDDEN, permission=str(Permission.USER_MANAGE))


class UserRoutes(Controller):
    path = "/api/v1/users"
    tags = ("users",)

    @post(
        "/",
        sync_to_thread=True,
        summary="创建用户",
        responses={201: ResponseSpec(UserOut, description="已创建", generate_examples=False)},
    )
    def create_user(
        self,
        data: JSONBody[UserIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[object]:
        _any_admin(access)
        person = None
        if data.person_id is not None or data.person_community_id is not None:
            if data.person_id is None or data.person_community_id is None:
                raise LedgerError(ErrorCode.INVALID_FIELD, field="person_id")
            access.require(Permission.USER_MANAGE, data.person_community_id)
            services.people.get(data.person_community_id, data.person_id, full=False)  # PERSON_NOT_FOUND
            person = PersonRef(data.person_community_id, data.person_id)

        def run() -> UserOut:
            user_id = services.identity.create_user(
                data.username, data.password, person=person, actor_id=access.principal.user_id
            )
            return _user_out(services, services.identity.user(user_id))

        payload = {**msgspec.to_builtins(data), "password": None}  # the hash of a password is not stored
        return idempotent(
            services,
            access,
            idempotency_key,
            "users",
            payload,
            run,
            remember=lambda out: {"user_id": str(out.user_id)},  # usernames may be names: ids only
            recall=lambda stored: _user_out(services, services.identity.user(uuid.UUID(stored["user_id"]))),
        )

    @get("/{user_id:uuid}", sync_to_thread=True, summary="用户详情")
    def get_user(
        self,
        user_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> UserOut:
        user = _managed_user(access, services, user_id, every=False)
        return _user_out(services, user)

    @post("/{user_id:uuid}/grants", sync_to_thread=True, summary="授予角色")
    def grant(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[GrantIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> UserOut:
        if (data.community_id is None) == (data.region_id is None):
            raise LedgerError(ErrorCode.INVALID_FIELD, field="community_id")
        grant = Grant(Role(data.role), community_id=data.community_id, region_id=data.region_id)
        region = None if data.community_id is None else access.region(data.community_id)
        if not access.principal.may_grant(grant, region):
            raise LedgerError(ErrorCode.FORBIDDEN, permission=str(Permission.USER_MANAGE))
        services.identity.grant(user_id, grant, actor_id=access.principal.user_id)  # idempotent
        return _user_out(services, services.identity.user(user_id))

    @delete("/{user_id:uuid}/grants/{grant_id:uuid}", sync_to_thread=True, summary="撤销角色")
    def revoke_grant(
        self,
        user_id: FromPath[uuid.UUID],
        grant_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> None:
        grants = dict(services.identity.active_grants(user_id))
        grant = grants.get(grant_id)
        if grant is None:
            return  # already revoked or never existed: DELETE is idempotent
        region = None if grant.community_id is None else access.region(grant.community_id)
        if not access.principal.may_grant(grant, region):
            raise LedgerError(ErrorCode.FORBIDDEN, permission=str(Permission.USER_MANAGE))
        services.identity.revoke_grant(grant_id, actor_id=access.principal.user_id)

    @post("/{user_id:uuid}/tokens", sync_to_thread=True, summary="签发 API 令牌（只显示一次）")
    def issue_token(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[TokenIn],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> IssuedTokenOut:
        """Not idempotent by design: a replay would have to store the secret to return it again."""
        _managed_user(access, services, user_id, every=True)
        expires = None if data.expires_days is None else data.expires_days * 86_400
        issued = services.identity.issue_api_token(
            user_id, data.name, expires_in_s=expires, actor_id=access.principal.user_id
        )
        return IssuedTokenOut(token_id=issued.token_id, token=issued.secret, expires_at=issued.expires_at)

    @get("/{user_id:uuid}/tokens", sync_to_thread=True, summary="令牌列表（不含密钥）")
    def list_tokens(
        self,
        user_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> list[TokenOut]:
        _managed_user(access, services, user_id, every=True)
        return [
            TokenOut(
                token_id=t.token_id,
                kind=t.kind,
                name=t.name,
                created_at=t.created_at,
                expires_at=t.expires_at,
                revoked_at=t.revoked_at,
            )
            for t in services.identity.tokens_of(user_id)
        ]

    @delete(
        "/{user_id:uuid}/tokens/{token_id:uuid}",
        sync_to_thread=True,
        status_code=HTTP_204_NO_CONTENT,
        summary="吊销令牌",
    )
    def revoke_token(
        self,
        user_id: FromPath[uuid.UUID],
        token_id: FromPath[uuid.UUID],
        access: NamedDependency[Access],
        services: NamedDependency[Services],
    ) -> None:
        _managed_user(access, services, user_id, every=True)
        if token_id in {t.token_id for t in services.identity.tokens_of(user_id)}:
            services.identity.revoke_token(token_id, actor_id=access.principal.user_id)
