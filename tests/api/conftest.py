"""API test fixtures: the real app on the test database, one user per role, and a small world.

Every user signs in with an API token issued through the identity service; the volunteer is linked
to a person of the community and owns accounts with some history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar.testing import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from api.deps import Services
from ledger.config import Settings
from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.people import PersonProfile
from ledger.domain.roles import Grant, PersonRef, Role
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import CommunityInfo
from ledger.services.identity import Identity
from ledger.store.db import Conn
from vledger.wiring import build_services

Client = TestClient  # type: ignore[type-arg]

# Grants for the matrix: region-wide roles are granted on the community's region.
REGION_ROLES = frozenset({Role.REGION_ADMIN})
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


@pytest.fixture(scope="session")
def api_services(pool: ConnectionPool[Conn], tmp_path_factory: pytest.TempPathFactory) -> Services:
    data_dir: Path = tmp_path_factory.mktemp("api-keys")
    settings = Settings(data_dir=data_dir, login_attempts_per_minute=5)
    return build_services(pool, settings, identity=Identity(pool, hasher=FAST_HASHER, cache_ttl_s=0.0))


@pytest.fixture(scope="session")
def client(api_services: Services) -> Iterator[Client]:
    with TestClient(app=create_app(api_services, access_logging=False)) as c:
        yield c


def profile(name: str = "王芳", **kw: object) -> PersonProfile:
    return PersonProfile(name=name, **kw)  # type: ignore[arg-type]


_UNSET = uuid.UUID(int=0)


@dataclass
class World:
    community_id: int
    region_id: int
    issuance: uuid.UUID
    tokens: dict[str, str] = field(default_factory=dict)  # role (or "outsider") -> bearer token
    user_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    volunteer_person: uuid.UUID = _UNSET
    other_person: uuid.UUID = _UNSET
    own_account: uuid.UUID = _UNSET
    other_account: uuid.UUID = _UNSET
    other_transfer: uuid.UUID = _UNSET

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
def world(api_services: Services, community: CommunityInfo) -> World:
    s = api_services
    c = community.community_id
    w = World(c, community.region_id, community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)])
    w.volunteer_person = s.people.create(
        c, profile("李明"), consent_entry=True, consent_publish=True, entered_by_self=False
    )
    w.other_person = s.people.create(
        c,
        profile("张伟", id_number="11010519491231002X", phone="13800138000"),
        consent_entry=True,
        consent_publish=False,
        entered_by_self=False,
    )
    tag = uuid.uuid4().hex[:8]
    for role in Role:
        person = PersonRef(c, w.volunteer_person) if role == Role.VOLUNTEER else None
        user_id = s.identity.create_user(f"{role.value.replace('_', '-')}-{tag}", None, person=person)
        scope = {"region_id": w.region_id} if role in REGION_ROLES else {"community_id": c}
        s.identity.grant(user_id, Grant(role, **scope))  # type: ignore[arg-type]
        w.user_ids[role.value] = user_id
        w.tokens[role.value] = s.identity.issue_api_token(user_id, "tests").secret
    other = s.communities.create_community(w.region_id, f"other-{tag}", "别的社区")
    outsider = s.identity.create_user(f"outsider-{tag}", None)
    s.identity.grant(outsider, Grant(Role.COMMUNITY_ADMIN, community_id=other.community_id))
    w.user_ids["outsider"] = outsider
    w.tokens["outsider"] = s.identity.issue_api_token(outsider, "tests").secret
    w.own_account = _points_account(s, c, w.volunteer_person)
    w.other_account = _points_account(s, c, w.other_person)
    for account, key in ((w.own_account, "own"), (w.other_account, "other")):
        result = s.ledger.transfer(
            TransferRequest(
                c, "award", (Posting(w.issuance, Unit.POINTS, -50), Posting(account, Unit.POINTS, 50)), key
            )
        )
        if account == w.other_account:
            w.other_transfer = result.transfer_id
    return w


def _points_account(s: Services, community_id: int, person_id: uuid.UUID) -> uuid.UUID:
    spec = AccountSpec(OwnerKind.PERSON, Unit.POINTS, member_account_flags(Unit.POINTS), owner_id=person_id)
    return s.communities.open_account(community_id, spec)


@pytest.fixture(scope="module")
def caching(pool: ConnectionPool[Conn], tmp_path_factory: pytest.TempPathFactory) -> Services:
    """Services whose identity caches tokens, as in production (the fast paths need the cache)."""
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("fastpath-keys")))
    return build_services(pool, settings, identity=Identity(pool, hasher=FAST_HASHER))


@pytest.fixture(scope="module")
def apps(caching: Services) -> Iterator[tuple[TestClient[Any], TestClient[Any]]]:
    """Two apps over the same services: with the fast paths, and without them."""
    with (
        TestClient(app=create_app(caching, access_logging=False)) as fast,
        TestClient(app=create_app(caching, access_logging=False, fast_paths=False)) as slow,
    ):
        yield fast, slow
