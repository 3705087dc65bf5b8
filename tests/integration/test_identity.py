"""Identity against the real database: users, login, tokens, grants, the resolve cache, and what is
stored (hashes only, never a secret)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Grant, Permission, PersonRef, Role
from ledger.services.communities import CommunityInfo
from ledger.services.identity import Identity, token_hash
from ledger.store.db import Conn

CHEAP = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
PASSWORD = "correct horse battery"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def identity(pool: ConnectionPool[Conn], clock: FakeClock) -> Identity:
    return Identity(pool, session_ttl_s=3600, clock=clock, hasher=CHEAP)


@pytest.fixture
def name() -> Callable[[], str]:
    return lambda: f"u-{uuid.uuid4().hex[:12]}"


def _code(fn: Callable[[], object]) -> ErrorCode:
    with pytest.raises(LedgerError) as err:
        fn()
    return err.value.code


def test_create_login_resolve(identity: Identity, name: Callable[[], str], community: CommunityInfo) -> None:
    username = name()
    user_id = identity.create_user(username, PASSWORD)
    identity.grant(user_id, Grant(Role.SOCIAL_WORKER, community_id=community.community_id))
    token = identity.login(username, PASSWORD)
    assert token.kind == "session" and token.secret.startswith("vl_")
    assert token.secret not in repr(token)
    principal = identity.resolve(token.secret)
    assert principal is not None
    assert principal.user_id == user_id and principal.username == username
    assert principal.grants == (Grant(Role.SOCIAL_WORKER, community_id=community.community_id),)
    region = identity.region_of(community.community_id)
    assert region == community.region_id
    assert principal.can(Permission.PERSON_WRITE, community.community_id, region)
    assert not principal.can(Permission.SETTINGS_WRITE, community.community_id, region)


def test_resolve_refuses_garbage(identity: Identity) -> None:
    for secret in ("", "vl_", "nope", "vl_" + "A" * 43, "Bearer vl_x"):
        assert identity.resolve(secret) is None


def test_session_expires(identity: Identity, clock: FakeClock, name: Callable[[], str]) -> None:
    username = name()
    identity.create_user(username, PASSWORD)
    token = identity.login(username, PASSWORD)
    assert token.expires_at is not None
    assert abs(token.expires_at.timestamp() - (clock.now + 3600)) < 0.001
    assert identity.resolve(token.secret) is not None  # now cached
    clock.now += 3599
    assert identity.resolve(token.secret) is not None
    clock.now += 2
    assert identity.resolve(token.secret) is None  # neither the cache nor the database accepts it


def test_api_token_named_with_optional_expiry(
    identity: Identity, clock: FakeClock, name: Callable[[], str]
) -> None:
    user_id = identity.create_user(name(), None)
    forever = identity.issue_api_token(user_id, "积分超市收银机")
    daily = identity.issue_api_token(user_id, "nightly-export", expires_in_s=86_400)
    assert forever.kind == "api" and forever.expires_at is None
    assert identity.resolve(forever.secret) is not None
    clock.now += 86_401
    assert identity.resolve(daily.secret) is None
    assert identity.resolve(forever.secret) is not None
    infos = {t.token_id: t for t in identity.tokens_of(user_id)}
    assert infos[forever.token_id].name == "积分超市收银机"
    assert infos[daily.token_id].expires_at is not None
    for info in infos.values():
        assert forever.secret not in repr(info) and daily.secret not in repr(info)
    assert _code(lambda: identity.issue_api_token(user_id, "")) == ErrorCode.INVALID_FIELD
    assert _code(lambda: identity.issue_api_token(user_id, "x", expires_in_s=0)) == ErrorCode.INVALID_FIELD
    assert _code(lambda: identity.issue_api_token(uuid.uuid4(), "x")) == ErrorCode.USER_NOT_FOUND


def test_revoke_token_invalidates_the_cache(identity: Identity, name: Callable[[], str]) -> None:
    username = name()
    user_id = identity.create_user(username, PASSWORD)
    keep = identity.login(username, PASSWORD)
    drop = identity.login(username, PASSWORD)
    assert identity.resolve(drop.secret) is not None  # cached now; the cache lives 5 s
    assert identity.revoke_token(drop.token_id) is True
    assert identity.resolve(drop.secret) is None
    assert identity.resolve(keep.secret) is not None
    assert identity.revoke_token(drop.token_id) is False  # already revoked
    assert identity.revoke_token(uuid.uuid4()) is False
    revoked = {t.token_id: t.revoked_at for t in identity.tokens_of(user_id)}
    assert revoked[drop.token_id] is not None and revoked[keep.token_id] is None


def test_the_cache_serves_repeat_lookups(
    identity: Identity, clock: FakeClock, name: Callable[[], str], owner: Conn
) -> None:
    """A change made behind this instance's back (another process) shows once the entry expires."""
    username = name()
    identity.create_user(username, PASSWORD)
    token = identity.login(username, PASSWORD)
    assert identity.cached(token.secret) is None  # never resolved here yet
    assert identity.resolve(token.secret) is not None
    owner.execute("UPDATE auth_token SET revoked_at = now() WHERE token_id = %s", (token.token_id,))
    assert identity.resolve(token.secret) is not None  # served from the cache, no query
    clock.now += 4
    assert identity.resolve(token.secret) == identity.cached(token.secret) is not None
    clock.now += 2  # past the 5 s cache TTL, well within the session
    assert identity.cached(token.secret) is None
    assert identity.resolve(token.secret) is None
    assert identity.cached("not a token") is None


def test_grants_are_idempotent_and_revocable(
    identity: Identity, name: Callable[[], str], community: CommunityInfo
) -> None:
    user_id = identity.create_user(name(), PASSWORD)
    token = identity.issue_api_token(user_id, "t")
    assert identity.resolve(token.secret) is not None
    c, r = community.community_id, community.region_id
    leader = Grant(Role.ACTIVITY_LEADER, community_id=c)
    first = identity.grant(user_id, leader)
    assert identity.grant(user_id, leader) == first
    regional = identity.grant(user_id, Grant(Role.AUDITOR, region_id=r))
    assert regional != first
    assert set(identity.grants_of(user_id)) == {leader, Grant(Role.AUDITOR, region_id=r)}
    principal = identity.resolve(token.secret)  # the grant invalidated the cached principal
    assert principal is not None and len(principal.grants) == 2
    assert identity.revoke_grant(first) is True
    assert identity.revoke_grant(first) is False
    assert identity.grants_of(user_id) == (Grant(Role.AUDITOR, region_id=r),)
    principal = identity.resolve(token.secret)
    assert principal is not None and principal.roles_in(c, r) == {Role.AUDITOR}
    again = identity.grant(user_id, leader)  # a revoked grant can be given anew
    assert again != first
    assert [gid for gid, _ in identity.active_grants(user_id)] == [regional, again]


def test_grant_targets_must_exist(identity: Identity, name: Callable[[], str], region_id: int) -> None:
    user_id = identity.create_user(name(), None)
    assert _code(lambda: identity.grant(user_id, Grant(Role.VOLUNTEER, community_id=10**12))) == (
        ErrorCode.COMMUNITY_NOT_FOUND
    )
    assert _code(lambda: identity.grant(user_id, Grant(Role.REGION_ADMIN, region_id=10**12))) == (
        ErrorCode.COMMUNITY_NOT_FOUND
    )
    assert _code(lambda: identity.grant(uuid.uuid4(), Grant(Role.REGION_ADMIN, region_id=region_id))) == (
        ErrorCode.USER_NOT_FOUND
    )
    assert _code(lambda: identity.region_of(10**12)) == ErrorCode.COMMUNITY_NOT_FOUND


def test_disabled_users_neither_log_in_nor_resolve(identity: Identity, name: Callable[[], str]) -> None:
    username = name()
    user_id = identity.create_user(username, PASSWORD)
    session = identity.login(username, PASSWORD)
    api = identity.issue_api_token(user_id, "t")
    assert identity.resolve(session.secret) is not None and identity.resolve(api.secret) is not None
    identity.disable_user(user_id)
    assert identity.resolve(session.secret) is None and identity.resolve(api.secret) is None
    assert _code(lambda: identity.login(username, PASSWORD)) == ErrorCode.INVALID_CREDENTIALS
    assert identity.user(user_id).disabled is True
    assert _code(lambda: identity.disable_user(uuid.uuid4())) == ErrorCode.USER_NOT_FOUND


def test_invalid_credentials_look_alike(identity: Identity, name: Callable[[], str]) -> None:
    with_password, without_password, disabled = name(), name(), name()
    identity.create_user(with_password, PASSWORD)
    identity.create_user(without_password, None)
    identity.disable_user(identity.create_user(disabled, PASSWORD))
    attempts = [
        (with_password, "wrong password"),
        (name(), PASSWORD),  # no such user
        (without_password, PASSWORD),
        (without_password, ""),
        (disabled, PASSWORD),
        ("NOT A USERNAME", PASSWORD),
    ]
    for username, password in attempts:
        with pytest.raises(LedgerError) as err:
            identity.login(username, password)
        assert err.value.code == ErrorCode.INVALID_CREDENTIALS
        assert err.value.detail == {}  # nothing that tells the cases apart


def test_unknown_users_cost_a_verification(pool: ConnectionPool[Conn], name: Callable[[], str]) -> None:
    """The dummy hash makes an unknown user as slow as a wrong password (no username probing)."""
    identity = Identity(pool, hasher=PasswordHasher(time_cost=3, memory_cost=32768, parallelism=1))
    username = name()
    identity.create_user(username, PASSWORD)

    def timed(user: str) -> float:
        start = time.perf_counter()
        with pytest.raises(LedgerError):
            identity.login(user, "wrong password")
        return time.perf_counter() - start

    timed(name())  # computes the dummy hash once
    known = min(timed(username) for _ in range(3))
    unknown = min(timed(name()) for _ in range(3))
    assert unknown > known * 0.5


def test_usernames(identity: Identity, name: Callable[[], str]) -> None:
    username = name()
    identity.create_user(username, PASSWORD)
    assert _code(lambda: identity.create_user(username, PASSWORD)) == ErrorCode.USERNAME_TAKEN
    for bad in ("ab", "Alice", "-abc", "has space", "a" * 65, "名字名字", "abc\n"):
        with pytest.raises(LedgerError) as err:
            identity.create_user(bad, PASSWORD)
        assert err.value.code == ErrorCode.INVALID_FIELD and err.value.field == "username"
    with pytest.raises(LedgerError) as err:
        identity.create_user(name(), "short")
    assert err.value.code == ErrorCode.INVALID_FIELD and err.value.field == "password"
    assert _code(lambda: identity.user_by_name(name())) == ErrorCode.USER_NOT_FOUND
    assert _code(lambda: identity.user(uuid.uuid4())) == ErrorCode.USER_NOT_FOUND


def test_racing_creates_give_one_user(identity: Identity, name: Callable[[], str]) -> None:
    username = name()

    def attempt(_: int) -> str:
        try:
            identity.create_user(username, None)
        except LedgerError as exc:
            return str(exc.code)
        return "ok"

    with ThreadPoolExecutor(8) as ex:
        outcomes = sorted(ex.map(attempt, range(8)))
    assert outcomes == ["USERNAME_TAKEN"] * 7 + ["ok"]


def test_person_link(identity: Identity, name: Callable[[], str], community: CommunityInfo) -> None:
    person = PersonRef(community.community_id, uuid.uuid4())
    user_id = identity.create_user(name(), PASSWORD, person=person)
    info = identity.user(user_id)
    assert info.person == person and info.disabled is False and info.grants == ()
    token = identity.issue_api_token(user_id, "t")
    principal = identity.resolve(token.secret)
    assert principal is not None and principal.is_person(person.community_id, person.person_id)
    with pytest.raises(LedgerError) as err:
        identity.create_user(name(), PASSWORD, person=person)  # one user per person
    assert err.value.code == ErrorCode.INVALID_FIELD and err.value.field == "person"


def test_the_database_stores_no_secret(identity: Identity, name: Callable[[], str], owner: Conn) -> None:
    username = name()
    user_id = identity.create_user(username, PASSWORD)
    session = identity.login(username, PASSWORD)
    api = identity.issue_api_token(user_id, "t")
    rows = owner.execute("SELECT * FROM auth_token WHERE user_id = %s", (user_id,)).fetchall()
    assert len(rows) == 2
    dump = repr(rows).encode()
    raw = b"".join(bytes(v) for row in rows for v in row if isinstance(v, bytes | memoryview))
    for secret in (session.secret, api.secret):
        body = secret.removeprefix("vl_").encode()
        random_bytes = base64.urlsafe_b64decode(body + b"=")
        assert len(random_bytes) == 32
        assert body not in dump and body not in raw and random_bytes not in raw
    hashes = {
        bytes(h) for (h,) in owner.execute("SELECT token_hash FROM auth_token WHERE user_id = %s", (user_id,))
    }
    assert hashes == {token_hash(session.secret), token_hash(api.secret)}
    (stored,) = (
        owner.execute("SELECT password_hash FROM app_user WHERE user_id = %s", (user_id,)).fetchone() or ()
    )
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_login_rehashes_when_parameters_change(
    pool: ConnectionPool[Conn], name: Callable[[], str], owner: Conn
) -> None:
    username = name()
    old = Identity(pool, hasher=CHEAP)
    user_id = old.create_user(username, PASSWORD)
    query = "SELECT password_hash FROM app_user WHERE user_id = %s"
    (before,) = owner.execute(query, (user_id,)).fetchone() or ()
    stronger = PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1)
    Identity(pool, hasher=stronger).login(username, PASSWORD)
    (after,) = owner.execute(query, (user_id,)).fetchone() or ()
    assert before != after and "m=8192,t=1" in before and "m=16384,t=2" in after
    assert not stronger.check_needs_rehash(after)
    old.login(username, PASSWORD)  # the new hash still verifies (and is put back to the old cost)


def test_set_password(identity: Identity, name: Callable[[], str]) -> None:
    username = name()
    user_id = identity.create_user(username, None)
    assert _code(lambda: identity.login(username, "")) == ErrorCode.INVALID_CREDENTIALS
    identity.set_password(user_id, "a new password")
    assert identity.resolve(identity.login(username, "a new password").secret) is not None
    assert _code(lambda: identity.set_password(user_id, "short")) == ErrorCode.INVALID_FIELD
    assert _code(lambda: identity.set_password(uuid.uuid4(), PASSWORD)) == ErrorCode.USER_NOT_FOUND
