"""Login, logout and who am I."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from api.deps import Access, Services, bearer_secret
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import ROLE_NAMES_ZH


class LoginIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class TokenOut(msgspec.Struct, kw_only=True):
    token: str
    token_type: str
    expires_at: datetime | None


class GrantOut(msgspec.Struct, kw_only=True):
    role: str
    role_name: str
    community_id: int | None
    region_id: int | None


class MeOut(msgspec.Struct, kw_only=True):
    user_id: str
    username: str
    person_community_id: int | None
    person_id: str | None
    grants: list[GrantOut]


@post("/api/v1/auth/login", sync_to_thread=True, status_code=HTTP_200_OK, tags=["auth"], summary="登录")
def login(
    data: JSONBody[LoginIn], request: Request[object, object, State], services: NamedDependency[Services]
) -> TokenOut:
    """Password login; rate-limited per username and per client address."""
    address = request.client.host if request.client else "unknown"
    keys = (f"user:{data.username.lower()}", f"ip:{address}")
    for key in keys:
        wait_s = services.limiter.hit(key)
        if wait_s is not None:
            raise LedgerError(ErrorCode.RATE_LIMITED, retry_after_s=max(1, int(wait_s + 0.999)))
    issued = services.identity.login(data.username, data.password)
    services.limiter.reset(keys[0])
    scheme = "Bearer"
    return TokenOut(token=issued.secret, token_type=scheme, expires_at=issued.expires_at)


@post(
    "/api/v1/auth/logout", sync_to_thread=True, status_code=HTTP_204_NO_CONTENT, tags=["auth"], summary="退出"
)
def logout(
    request: Request[object, object, State],
    access: NamedDependency[Access],
    services: NamedDependency[Services],
) -> None:
    secret = bearer_secret(request)
    assert secret is not None  # access exists only for an authenticated request
    services.identity.revoke_secret(secret, actor_id=access.principal.user_id)


@get("/api/v1/me", sync_to_thread=False, tags=["auth"], summary="当前用户")
def me(access: NamedDependency[Access]) -> MeOut:
    p = access.principal
    return MeOut(
        user_id=str(p.user_id),
        username=p.username,
        person_community_id=p.person.community_id if p.person else None,
        person_id=str(p.person.person_id) if p.person else None,
        grants=[
            GrantOut(
                role=str(g.role),
                role_name=ROLE_NAMES_ZH[g.role],
                community_id=g.community_id,
                region_id=g.region_id,
            )
            for g in p.grants
        ],
    )
