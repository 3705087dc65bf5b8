"""Connections: owner URLs for migrations, runtime pools that act as the restricted app role."""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool
from sqlalchemy.engine import URL

# The runtime role created by migration 0001: SELECT everywhere, INSERT on the append-only tables,
# UPDATE only on balance rows. Runtime connections assume it at connect time.
APP_ROLE = "vledger_app"

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


def app_conninfo(owner_url: str) -> str:
    """The owner's connection string, switched to the runtime role for every session it opens."""
    params: dict[str, Any] = conninfo_to_dict(owner_url)
    options = str(params.get("options") or "")
    params["options"] = f"{options} -c role={APP_ROLE}".strip()
    return make_conninfo(**params)


def open_pool(
    owner_url: str, *, min_size: int = 2, max_size: int = 20, name: str = "vledger"
) -> ConnectionPool[Conn]:
    """A psycopg pool of runtime-role connections; prepared statements on (the hot path repeats)."""
    pool: ConnectionPool[Conn] = ConnectionPool(
        app_conninfo(owner_url),
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"prepare_threshold": 0, "autocommit": False},
    )
    pool.open(wait=True, timeout=30)
    return pool
