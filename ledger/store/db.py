"""Connections: owner URLs for migrations, runtime pools that log in as the restricted app role."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy.engine import URL

# The runtime role created by migrations 0001/0002: SELECT everywhere, INSERT on the append-only
# tables, UPDATE only on balance rows. Runtime connections log in as it; it is a member of no role.
APP_ROLE = "vledger_app"


class RuntimeRoleError(RuntimeError):
    """A runtime connection is not the restricted role it must be (refuse to serve with it)."""


Conn = Connection[TupleRow]


def sqlalchemy_url(conninfo: str) -> URL:
    """Turn a libpq URL or key=value string (Unix-socket form included) into a SQLAlchemy URL."""
    params: dict[str, Any] = conninfo_to_dict(conninfo)
    host = params.pop("host", None)
    port = params.pop("port", None)
    query = {k: str(v) for k, v in params.items() if k not in ("user", "password", "dbname")}
    tcp_host = host if host and not str(host).startswith("/") else None
    if host and tcp_host is None:
        query["host"] = str(host)
    return URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password"),
        host=tcp_host,
        port=int(port) if port and tcp_host else None,
        database=params.get("dbname"),
        query=query,
    )


def app_conninfo(owner_url: str, app_url: str | None = None) -> str:
    """Where runtime sessions log in: ``app_url`` when given, else the owner's server as the app role.

    The derived form drops the owner's password; it suits servers that trust local connections (the
    embedded one, CI's). Servers with password authentication pass ``VLEDGER_APP_DATABASE_URL``.
    """
    if app_url:
        return app_url
    params: dict[str, Any] = conninfo_to_dict(owner_url)
    params.pop("password", None)
    params["user"] = APP_ROLE
    return make_conninfo(**params)


# Who the session is, and whether it could become anyone else.
_ROLE_CHECK = (
    "SELECT session_user, current_user, r.rolsuper, r.rolbypassrls,"
    " EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid)"
    " FROM pg_roles r WHERE r.rolname = session_user"
)


def _require_runtime_role(row: tuple[Any, ...] | None) -> None:
    if row is None or row[0] != APP_ROLE or row[1] != APP_ROLE or any(row[2:]):
        raise RuntimeRoleError(f"runtime connections must log in as {APP_ROLE} with no other role")


def check_runtime_role(conn: Conn) -> None:
    """Fail unless the session is the app role and cannot become anyone else."""
    _require_runtime_role(conn.execute(_ROLE_CHECK).fetchone())
    conn.rollback()


def open_pool(
    owner_url: str,
    *,
    app_url: str | None = None,
    min_size: int = 2,
    max_size: int = 20,
    name: str = "vledger",
) -> ConnectionPool[Conn]:
    """A psycopg pool of runtime-role connections; prepared statements on (the hot path repeats)."""
    pool: ConnectionPool[Conn] = ConnectionPool(
        app_conninfo(owner_url, app_url),
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"prepare_threshold": 0, "autocommit": False},
    )
    pool.open(wait=True, timeout=30)
    try:
        with pool.connection() as conn:
            check_runtime_role(conn)
    except BaseException:
        pool.close()
        raise
    return pool


@contextmanager
def read_connection(pool: ConnectionPool[Conn]) -> Iterator[Conn]:
    """A pooled connection for reads whose statements each stand alone, in autocommit: no BEGIN
    before and no ROLLBACK after, so a one-query read is one round trip instead of three (a
    balance read over HTTP cost 0.45 ms of PostgreSQL CPU that way, 0.15 ms this way). Use it only
    where every statement is consistent on its own (one query, or rows that never change)."""
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.autocommit = False


AsyncConn = AsyncConnection[TupleRow]


async def _generic_plans(conn: AsyncConn) -> None:
    await conn.execute("SET plan_cache_mode = force_generic_plan")


async def open_async_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    name: str = "vledger-async",
    generic_plans: bool = False,
) -> AsyncConnectionPool[AsyncConn]:
    """An asyncio pool of runtime-role connections in autocommit, for one-statement reads served on
    the event loop (no worker-thread hop); the same role check as ``open_pool``.

    ``generic_plans``: each prepared statement is planned once per connection, for any values,
    instead of for each call's values (PostgreSQL's plan cache otherwise kept re-planning statements
    that read an array parameter). Only for pools whose statements all look their rows up by key,
    where the generic plan is the plan anyway."""
    pool: AsyncConnectionPool[AsyncConn] = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"prepare_threshold": 0, "autocommit": True},
        configure=_generic_plans if generic_plans else None,
    )
    await pool.open(wait=True, timeout=30)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(_ROLE_CHECK)
            _require_runtime_role(await cur.fetchone())
    except BaseException:
        await pool.close()
        raise
    return pool
