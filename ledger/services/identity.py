"""Users, password login, bearer tokens and role grants; the principal behind each request.

Passwords are argon2id hashes, rehashed on login when the parameters change. A token's secret is
``vl_`` + base64url(32 random bytes), shown once; only its SHA-256 is stored. ``resolve`` runs on
every HTTP request, so it is one query behind a short in-process cache that the changes made here
invalidate (other processes see them when their cache entry expires, within ``cache_ttl_s``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.roles import Grant, PersonRef, Principal
from ledger.domain.transfers import check_text
from ledger.services.login_limiter import LoginLimiter
from ledger.store import identity_repo as repo
from ledger.store.db import Conn, read_connection

__all__ = [
    "Identity",
    "IssuedToken",
    "LoginLimiter",
    "TokenInfo",
    "UserInfo",
    "check_password",
    "new_secret",
    "token_hash",
]

log = logging.getLogger("ledger.identity")

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 1024  # argon2 takes any length; this only stops absurd request bodies
MAX_TOKEN_NAME_LEN = 100
MAX_API_TOKEN_LIFETIME_S = 10 * 366 * 86_400
TOKEN_PREFIX = "vl_"  # noqa: S105 - a public marker that lets scanners spot leaked tokens
_TOKEN_LEN = len(TOKEN_PREFIX) + 43  # base64url of 32 bytes without padding


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token_id: uuid.UUID
    secret: str = field(repr=False)  # shown to the caller once; kept out of reprs and logs
    kind: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: uuid.UUID
    kind: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    user_id: uuid.UUID
    username: str
    person: PersonRef | None
    disabled: bool
    grants: tuple[Grant, ...]


def new_secret() -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def token_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LEN <= len(password) <= MAX_PASSWORD_LEN:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="password", min_length=MIN_PASSWORD_LEN)


class _PrincipalCache:
    """A small TTL + LRU cache of resolved tokens, keyed by token hash, invalidated per user.

    ``generation`` guards against a race: a lookup that started before an invalidation must not
    store its (possibly stale) answer after it.
    """

    def __init__(self, ttl_s: float, max_size: int, clock: Callable[[], float]) -> None:
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self.generation = 0

    def get(self, key: bytes) -> Principal | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def put(self, key: bytes, principal: Principal, until: float, generation: int) -> None:
        if self._max_size <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            self._entries[key] = (min(until, self._clock() + self._ttl_s), principal)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_size:
                self._entries.popitem(last=False)

    def invalidate_user(self, user_id: uuid.UUID) -> None:
        with self._lock:
            self.generation += 1
            stale = [k for k, (_, p) in self._entries.items() if p.user_id == user_id]
            for k in stale:
                del self._entries[k]


class Identity:
    """Users, login, tokens and grants over one pool; thread-safe (HTTP workers share one)."""

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        *,
        session_ttl_s: int = 8 * 3600,
        clock: Callable[[], float] = time.time,
        hasher: PasswordHasher | None = None,
        cache_ttl_s: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self._pool = pool
        self._session_ttl_s = session_ttl_s
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._cache = _PrincipalCache(cache_ttl_s, cache_size, clock)
        self._regions: dict[int, int] = {}

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def create_user(
        self,
        username: str,
        password: str | None,
        *,
        person: PersonRef | None = None,
        actor_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        if not USERNAME_RE.fullmatch(username):
            raise LedgerError(ErrorCode.INVALID_FIELD, field="username")
        if password is not None:
            check_password(password)
        password_hash = None if password is None else self._hasher.hash(password)
        user_id = uuid7()
        try:
            with self._pool.connection() as conn:
                repo.insert_user(conn, user_id, username, password_hash, person, actor_id, self._now())
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "app_user_person_uq":
                raise LedgerError(ErrorCode.INVALID_FIELD, field="person") from None
            raise LedgerError(ErrorCode.USERNAME_TAKEN, field="username") from None
        log.info("user %s created by %s", user_id, actor_id)
        return user_id

    def set_password(
        self, user_id: uuid.UUID, password: str | None, *, actor_id: uuid.UUID | None = None
    ) -> None:
        """Set (or with None, remove) a user's password. Existing tokens stay valid."""
        if password is not None:
            check_password(password)
        password_hash = None if password is None else self._hasher.hash(password)
        with self._pool.connection() as conn:
            if not repo.set_password(conn, user_id, password_hash):
                raise LedgerError(ErrorCode.USER_NOT_FOUND, user_id=str(user_id))
        log.info("password of user %s set by %s", user_id, actor_id)

    def disable_user(self, user_id: uuid.UUID, *, actor_id: uuid.UUID | None = None) -> None:
        """Disabled users cannot log in and their tokens stop resolving (there is no re-enable here)."""
        with self._pool.connection() as conn:
            if not repo.disable_user(conn, user_id):
                raise LedgerError(ErrorCode.USER_NOT_FOUND, user_id=str(user_id))
        self._cache.invalidate_user(user_id)
        log.info("user %s disabled by %s", user_id, actor_id)

    def user(self, user_id: uuid.UUID) -> UserInfo:
        with self._pool.connection() as conn:
            row = repo.user_by_id(conn, user_id)
        if row is None:
            raise LedgerError(ErrorCode.USER_NOT_FOUND, user_id=str(user_id))
        return _info(row)

    def user_by_name(self, username: str) -> UserInfo:
        row = None
        if USERNAME_RE.fullmatch(username):
            with self._pool.connection() as conn:
                row = repo.user_by_name(conn, username)
        if row is None:
            raise LedgerError(ErrorCode.USER_NOT_FOUND)
        return _info(row)

    def users(self) -> list[UserInfo]:
        with self._pool.connection() as conn:
            return [_info(row) for row in repo.all_users(conn)]

    def login(self, username: str, password: str) -> IssuedToken:
        """A session token, or INVALID_CREDENTIALS whatever the reason (no probing of usernames)."""
        row = None
        if USERNAME_RE.fullmatch(username) and len(password) <= MAX_PASSWORD_LEN:
            with self._pool.connection() as conn:
                row = repo.login_row(conn, username)
        # The connection goes back to the pool before hashing: argon2 is slow on purpose.
        user_id, stored, disabled = row if row is not None else (None, None, True)
        if not self._verify(stored, password) or user_id is None or disabled:
            raise LedgerError(ErrorCode.INVALID_CREDENTIALS)
        assert stored is not None
        rehashed = self._hasher.hash(password) if self._hasher.check_needs_rehash(stored) else None
        with self._pool.connection() as conn:
            if rehashed is not None:
                repo.rehash(conn, user_id, rehashed, stored)
            return self._issue(conn, user_id, "session", "", self._session_ttl_s)

    def _verify(self, stored: str | None, password: str) -> bool:
        """Always runs one argon2 verification, against a dummy hash when there is no real one."""
        if stored is None:
            if self._dummy_hash is None:  # a lost race only hashes twice
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            stored = self._dummy_hash
        try:
            return self._hasher.verify(stored, password[:MAX_PASSWORD_LEN])
        except (VerificationError, InvalidHashError):
            return False

    def issue_api_token(
        self,
        user_id: uuid.UUID,
        name: str,
        *,
        expires_in_s: int | None = None,
        actor_id: uuid.UUID | None = None,
    ) -> IssuedToken:
        """A token for an integration: named, optionally expiring."""
        check_text(name, "name")
        if not name.strip() or len(name) > MAX_TOKEN_NAME_LEN:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="name")
        if expires_in_s is not None and not 0 < expires_in_s <= MAX_API_TOKEN_LIFETIME_S:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="expires_in_s")
        try:
            with self._pool.connection() as conn:
                issued = self._issue(conn, user_id, "api", name, expires_in_s)
        except pg_errors.ForeignKeyViolation:
            raise LedgerError(ErrorCode.USER_NOT_FOUND, user_id=str(user_id)) from None
        log.info("api token %s issued to user %s by %s", issued.token_id, user_id, actor_id)
        return issued

    def _issue(self, conn: Conn, user_id: uuid.UUID, kind: str, name: str, ttl_s: int | None) -> IssuedToken:
        now = self._clock()
        created = datetime.fromtimestamp(now, UTC)
        expires_at = None if ttl_s is None else datetime.fromtimestamp(now + ttl_s, UTC)
        secret = new_secret()
        token_id = uuid7()
        repo.insert_token(conn, token_id, token_hash(secret), user_id, kind, name, created, expires_at)
        return IssuedToken(token_id, secret, kind, expires_at)

    def cached(self, secret: str) -> Principal | None:
        """The principal of a token resolved recently (within the cache's time to live), without
        touching the database; None if it is not cached (``resolve`` then decides)."""
        if len(secret) != _TOKEN_LEN or not secret.startswith(TOKEN_PREFIX):
            return None
        return self._cache.get(token_hash(secret))

    def resolve(self, secret: str) -> Principal | None:
        """The principal a bearer token acts as; None if unknown, expired, revoked or disabled."""
        if len(secret) != _TOKEN_LEN or not secret.startswith(TOKEN_PREFIX):
            return None
        key = token_hash(secret)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        generation = self._cache.generation
        now = self._clock()
        with read_connection(self._pool) as conn:  # one statement
            row = repo.resolve(conn, key, datetime.fromtimestamp(now, UTC))
        if row is None:
            return None
        principal = Principal(row.user_id, row.username, row.grants, row.person)
        until = float("inf") if row.expires_at is None else row.expires_at.timestamp()
        self._cache.put(key, principal, until, generation)
        return principal

    def revoke_token(self, token_id: uuid.UUID, *, actor_id: uuid.UUID | None = None) -> bool:
        """True if this call revoked the token; False if it is unknown or was already revoked."""
        with self._pool.connection() as conn:
            user_id = repo.revoke_token(conn, token_id, self._now())
        if user_id is None:
            return False
        self._cache.invalidate_user(user_id)
        log.info("token %s of user %s revoked by %s", token_id, user_id, actor_id)
        return True

    def revoke_secret(self, secret: str, *, actor_id: uuid.UUID | None = None) -> bool:
        """Revoke the token whose secret this is (logout); False if there is no such live token."""
        with self._pool.connection() as conn:
            row = conn.execute(repo.TOKEN_ID_BY_HASH, (token_hash(secret),)).fetchone()
            conn.rollback()
        return row is not None and self.revoke_token(row[0], actor_id=actor_id)

    def tokens_of(self, user_id: uuid.UUID) -> list[TokenInfo]:
        """Every token of the user, newest first, without secrets or hashes."""
        with self._pool.connection() as conn:
            return [TokenInfo(*row) for row in repo.tokens_of(conn, user_id)]

    def grant(self, user_id: uuid.UUID, grant: Grant, *, actor_id: uuid.UUID | None = None) -> uuid.UUID:
        """Grant a role; an identical active grant is not duplicated (its id is returned)."""
        with self._pool.connection() as conn:
            user_exists, scope_exists = repo.grant_targets(conn, user_id, grant)
            if not scope_exists:  # listed before USER_NOT_FOUND in ErrorCode: reported first
                field_name = "community_id" if grant.community_id is not None else "region_id"
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, field=field_name)
            if not user_exists:
                raise LedgerError(ErrorCode.USER_NOT_FOUND, user_id=str(user_id))
            grant_id = uuid7()
            if not repo.insert_grant(conn, grant_id, user_id, grant, actor_id, self._now()):
                existing = repo.active_grant_id(conn, user_id, grant)
                assert existing is not None, "the conflicting active grant is visible once the insert returns"
                return existing
        self._cache.invalidate_user(user_id)
        log.info("grant %s (%s) to user %s by %s", grant_id, grant.role, user_id, actor_id)
        return grant_id

    def revoke_grant(self, grant_id: uuid.UUID, *, actor_id: uuid.UUID | None = None) -> bool:
        """True if this call revoked the grant; False if it is unknown or was already revoked."""
        with self._pool.connection() as conn:
            user_id = repo.revoke_grant(conn, grant_id, actor_id, self._now())
        if user_id is None:
            return False
        self._cache.invalidate_user(user_id)
        log.info("grant %s of user %s revoked by %s", grant_id, user_id, actor_id)
        return True

    def grants_of(self, user_id: uuid.UUID) -> tuple[Grant, ...]:
        return tuple(g for _, g in self.active_grants(user_id))

    def active_grants(self, user_id: uuid.UUID) -> list[tuple[uuid.UUID, Grant]]:
        """Active grants with their ids (for revocation), oldest first."""
        with self._pool.connection() as conn:
            return repo.active_grants(conn, user_id)

    def cached_region(self, community_id: int) -> int | None:
        """The community's region if ``region_of`` has looked it up before (no database), else None."""
        return self._regions.get(community_id)

    def region_of(self, community_id: int) -> int:
        """The community's region (cached: communities never move region)."""
        region_id = self._regions.get(community_id)
        if region_id is None:
            with read_connection(self._pool) as conn:  # one statement
                region_id = repo.region_of(conn, community_id)
            if region_id is None:
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            # A plain dict: one assignment is atomic, and a lost race only repeats a query.
            if len(self._regions) < 100_000:
                self._regions[community_id] = region_id
        return region_id

    def find_region(self, code: str) -> int | None:
        with self._pool.connection() as conn:
            return repo.region_by_code(conn, code)

    def find_community(self, code: str) -> int | None:
        with self._pool.connection() as conn:
            return repo.community_by_code(conn, code)


def _info(row: repo.UserRow) -> UserInfo:
    return UserInfo(row.user_id, row.username, row.person, row.disabled, row.grants)
