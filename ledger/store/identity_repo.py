"""SQL for users, bearer tokens and role grants (tables app_user, auth_token, role_grant). All of it.

The runtime role may only update app_user(password_hash, disabled), auth_token(revoked_at) and
role_grant(revoked_at, revoked_by), so every other change is an INSERT.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.domain.roles import Grant, PersonRef, Role
from ledger.store.db import Conn


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: uuid.UUID
    username: str
    password_hash: str | None
    person: PersonRef | None
    disabled: bool
    grants: tuple[Grant, ...]


@dataclass(frozen=True, slots=True)
class ResolvedRow:
    user_id: uuid.UUID
    username: str
    person: PersonRef | None
    expires_at: datetime | None
    grants: tuple[Grant, ...]


# Active grants of one user as three parallel arrays. Aggregating without GROUP BY always yields one
# row (NULL arrays when there are none), so it joins laterally without losing grant-less users.
# The partial unique index role_grant_active_uq (user_id, ...) WHERE revoked_at IS NULL serves it.
_GRANTS_LATERAL = """
CROSS JOIN LATERAL (
    SELECT array_agg(g.role ORDER BY g.granted_at, g.grant_id) AS roles,
           array_agg(g.community_id ORDER BY g.granted_at, g.grant_id) AS communities,
           array_agg(g.region_id ORDER BY g.granted_at, g.grant_id) AS regions
    FROM role_grant g WHERE g.user_id = u.user_id AND g.revoked_at IS NULL
) ga
"""
_USER_COLUMNS = (
    "u.user_id, u.username, u.password_hash, u.person_community_id, u.person_id, u.disabled,"
    " ga.roles, ga.communities, ga.regions"
)

INSERT_USER = """
INSERT INTO app_user (user_id, username, password_hash, person_community_id, person_id, created_by,
                      created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
# The f-strings below only join constants of this module (S608 is about untrusted text).
USER_BY_ID = f"SELECT {_USER_COLUMNS} FROM app_user u {_GRANTS_LATERAL} WHERE u.user_id = %s"  # noqa: S608
USER_BY_NAME = f"SELECT {_USER_COLUMNS} FROM app_user u {_GRANTS_LATERAL} WHERE u.username = %s"  # noqa: S608
ALL_USERS = f"SELECT {_USER_COLUMNS} FROM app_user u {_GRANTS_LATERAL} ORDER BY u.username"  # noqa: S608
LOGIN_ROW = "SELECT user_id, password_hash, disabled FROM app_user WHERE username = %s"
SET_PASSWORD = "UPDATE app_user SET password_hash = %s WHERE user_id = %s RETURNING 1"  # noqa: S105
# Rehash on login: only if the hash is still the one verified, so a concurrent set_password wins.
REHASH = "UPDATE app_user SET password_hash = %s WHERE user_id = %s AND password_hash = %s"
DISABLE_USER = "UPDATE app_user SET disabled = true WHERE user_id = %s RETURNING 1"

INSERT_TOKEN = """
INSERT INTO auth_token (token_id, token_hash, user_id, kind, name, created_at, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""  # noqa: S105
REVOKE_TOKEN = """
UPDATE auth_token SET revoked_at = %s WHERE token_id = %s AND revoked_at IS NULL RETURNING user_id
"""  # noqa: S105
TOKEN_ID_BY_HASH = "SELECT token_id FROM auth_token WHERE token_hash = %s"  # noqa: S105
TOKENS_OF = """
SELECT token_id, kind, name, created_at, expires_at, revoked_at FROM auth_token
WHERE user_id = %s ORDER BY created_at DESC, token_id DESC
"""
# The per-request lookup: token, user and active grants in one round trip, via the unique index on
# token_hash and the primary key of app_user.
RESOLVE = f"""
SELECT u.user_id, u.username, u.person_community_id, u.person_id, t.expires_at,
       ga.roles, ga.communities, ga.regions
FROM auth_token t
JOIN app_user u ON u.user_id = t.user_id
{_GRANTS_LATERAL}
WHERE t.token_hash = %s AND t.revoked_at IS NULL AND NOT u.disabled
  AND (t.expires_at IS NULL OR t.expires_at > %s)
"""  # noqa: S608

GRANT_TARGETS = """
SELECT EXISTS (SELECT FROM app_user WHERE user_id = %s),
       EXISTS (SELECT FROM community WHERE community_id = %s)
       OR EXISTS (SELECT FROM region WHERE region_id = %s)
"""
INSERT_GRANT = """
INSERT INTO role_grant (grant_id, user_id, role, community_id, region_id, granted_by, granted_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING RETURNING grant_id
"""
ACTIVE_GRANT_ID = """
SELECT grant_id FROM role_grant
WHERE user_id = %s AND role = %s AND community_id IS NOT DISTINCT FROM %s
  AND region_id IS NOT DISTINCT FROM %s AND revoked_at IS NULL
"""
ACTIVE_GRANTS = """
SELECT grant_id, role, community_id, region_id FROM role_grant
WHERE user_id = %s AND revoked_at IS NULL ORDER BY granted_at, grant_id
"""
REVOKE_GRANT = """
UPDATE role_grant SET revoked_at = %s, revoked_by = %s
WHERE grant_id = %s AND revoked_at IS NULL RETURNING user_id
"""

REGION_OF = "SELECT region_id FROM community WHERE community_id = %s"
REGION_BY_CODE = "SELECT region_id FROM region WHERE code = %s"
COMMUNITY_BY_CODE = "SELECT community_id FROM community WHERE code = %s"


def _grants(
    roles: list[str] | None, communities: list[int | None], regions: list[int | None]
) -> tuple[Grant, ...]:
    if not roles:
        return ()
    return tuple(Grant(Role(r), c, g) for r, c, g in zip(roles, communities, regions, strict=True))


def _person(community_id: int | None, person_id: uuid.UUID | None) -> PersonRef | None:
    return None if community_id is None or person_id is None else PersonRef(community_id, person_id)


def _user(row: tuple[Any, ...]) -> UserRow:
    user_id, username, password_hash, p_community, p_id, disabled, roles, communities, regions = row
    return UserRow(
        user_id,
        username,
        password_hash,
        _person(p_community, p_id),
        disabled,
        _grants(roles, communities, regions),
    )


def insert_user(
    conn: Conn,
    user_id: uuid.UUID,
    username: str,
    password_hash: str | None,
    person: PersonRef | None,
    created_by: uuid.UUID | None,
    now: datetime,
) -> None:
    """Raises psycopg UniqueViolation on a taken username or an already linked person."""
    p_community, p_id = (person.community_id, person.person_id) if person else (None, None)
    conn.execute(INSERT_USER, (user_id, username, password_hash, p_community, p_id, created_by, now))


def user_by_id(conn: Conn, user_id: uuid.UUID) -> UserRow | None:
    row = conn.execute(USER_BY_ID, (user_id,)).fetchone()
    return None if row is None else _user(row)


def user_by_name(conn: Conn, username: str) -> UserRow | None:
    row = conn.execute(USER_BY_NAME, (username,)).fetchone()
    return None if row is None else _user(row)


def all_users(conn: Conn) -> list[UserRow]:
    return [_user(row) for row in conn.execute(ALL_USERS).fetchall()]


def login_row(conn: Conn, username: str) -> tuple[uuid.UUID, str | None, bool] | None:
    row = conn.execute(LOGIN_ROW, (username,)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def set_password(conn: Conn, user_id: uuid.UUID, password_hash: str | None) -> bool:
    return conn.execute(SET_PASSWORD, (password_hash, user_id)).fetchone() is not None


def rehash(conn: Conn, user_id: uuid.UUID, new_hash: str, old_hash: str) -> None:
    conn.execute(REHASH, (new_hash, user_id, old_hash))


def disable_user(conn: Conn, user_id: uuid.UUID) -> bool:
    return conn.execute(DISABLE_USER, (user_id,)).fetchone() is not None


def insert_token(
    conn: Conn,
    token_id: uuid.UUID,
    token_hash: bytes,
    user_id: uuid.UUID,
    kind: str,
    name: str,
    now: datetime,
    expires_at: datetime | None,
) -> None:
    """Raises psycopg ForeignKeyViolation for an unknown user."""
    conn.execute(INSERT_TOKEN, (token_id, token_hash, user_id, kind, name, now, expires_at))


def revoke_token(conn: Conn, token_id: uuid.UUID, now: datetime) -> uuid.UUID | None:
    """The token's user if this call revoked it; None if unknown or already revoked."""
    row = conn.execute(REVOKE_TOKEN, (now, token_id)).fetchone()
    return None if row is None else row[0]


def tokens_of(
    conn: Conn, user_id: uuid.UUID
) -> list[tuple[uuid.UUID, str, str, datetime, datetime | None, datetime | None]]:
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in conn.execute(TOKENS_OF, (user_id,)).fetchall()]


def resolve(conn: Conn, token_hash: bytes, now: datetime) -> ResolvedRow | None:
    row = conn.execute(RESOLVE, (token_hash, now)).fetchone()
    if row is None:
        return None
    user_id, username, p_community, p_id, expires_at, roles, communities, regions = row
    return ResolvedRow(
        user_id, username, _person(p_community, p_id), expires_at, _grants(roles, communities, regions)
    )


def grant_targets(conn: Conn, user_id: uuid.UUID, grant: Grant) -> tuple[bool, bool]:
    """Whether the user exists, and whether the grant's community or region does."""
    row = conn.execute(GRANT_TARGETS, (user_id, grant.community_id, grant.region_id)).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


def insert_grant(
    conn: Conn,
    grant_id: uuid.UUID,
    user_id: uuid.UUID,
    grant: Grant,
    granted_by: uuid.UUID | None,
    now: datetime,
) -> bool:
    """False when an identical grant is already active (the partial unique index)."""
    params = (grant_id, user_id, str(grant.role), grant.community_id, grant.region_id, granted_by, now)
    return conn.execute(INSERT_GRANT, params).fetchone() is not None


def active_grant_id(conn: Conn, user_id: uuid.UUID, grant: Grant) -> uuid.UUID | None:
    params = (user_id, str(grant.role), grant.community_id, grant.region_id)
    row = conn.execute(ACTIVE_GRANT_ID, params).fetchone()
    return None if row is None else row[0]


def active_grants(conn: Conn, user_id: uuid.UUID) -> list[tuple[uuid.UUID, Grant]]:
    rows = conn.execute(ACTIVE_GRANTS, (user_id,)).fetchall()
    return [(grant_id, Grant(Role(role), c, r)) for grant_id, role, c, r in rows]


def revoke_grant(
    conn: Conn, grant_id: uuid.UUID, revoked_by: uuid.UUID | None, now: datetime
) -> uuid.UUID | None:
    """The grant's user if this call revoked it; None if unknown or already revoked."""
    row = conn.execute(REVOKE_GRANT, (now, revoked_by, grant_id)).fetchone()
    return None if row is None else row[0]


def _scalar_int(conn: Conn, sql: str, param: object) -> int | None:
    row = conn.execute(sql, (param,)).fetchone()
    return None if row is None else int(row[0])


def region_of(conn: Conn, community_id: int) -> int | None:
    return _scalar_int(conn, REGION_OF, community_id)


def region_by_code(conn: Conn, code: str) -> int | None:
    return _scalar_int(conn, REGION_BY_CODE, code)


def community_by_code(conn: Conn, code: str) -> int | None:
    return _scalar_int(conn, COMMUNITY_BY_CODE, code)
