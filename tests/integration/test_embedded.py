"""The embedded PostgreSQL really starts, stops, keeps its data and restarts fast (no DATABASE_URL needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine, make_url, text

from ledger.store.embedded import (
    EmbeddedPostgres,
    database_server,
    drop_database,
    ensure_database,
    sqlalchemy_url,
)

REPO = Path(__file__).resolve().parents[2]


def _is_up(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter: how a second vledger process or a crashed run behaves."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cluster initialised once and left stopped; each test starts from there (initdb is the slow part)."""
    path = tmp_path_factory.mktemp("cluster") / "missing" / "data"  # first use creates both levels
    with EmbeddedPostgres(path):
        pass
    return path


def test_start_stop_and_restart_on_existing_data(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir)
    url = server.start()
    try:
        assert url.startswith("postgresql://postgres@/postgres?host=/")
        assert server.start() == url  # idempotent
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None
            assert int(version[0]) >= 180000
            conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO kept VALUES (1, '志愿服务')")
    finally:
        server.stop()

    assert not _is_up(url)
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    server.stop()  # stopping twice is harmless

    started = time.perf_counter()
    server = EmbeddedPostgres(data_dir)
    assert server.start() == url
    elapsed = time.perf_counter() - started
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT note FROM kept WHERE id = 1").fetchone() == ("志愿服务",)
    finally:
        server.stop()
    # The product promise: `serve --demo` on existing data is up in well under 3 s.
    assert elapsed < 3.0, f"restart took {elapsed:.2f} s"
    assert not _is_up(url)


def test_start_reuses_server_left_running_by_a_crashed_run(data_dir: Path) -> None:
    crashed = _python(
        f"""
        import os
        from pathlib import Path
        from ledger.store.embedded import EmbeddedPostgres
        print(EmbeddedPostgres(Path({str(data_dir)!r})).start(), flush=True)
        os._exit(1)  # no stop(): the server is left behind
        """
    )
    left_url = crashed.stdout.strip()
    assert _is_up(left_url), crashed.stderr
    # Without XDG_RUNTIME_DIR platformdirs warns when the library is imported; we keep screens quiet.
    assert crashed.stderr == ""

    server = EmbeddedPostgres(data_dir)
    assert server.start() == left_url
    server.stop()  # the crashed process is gone, so nobody else uses it: really stopped
    assert not _is_up(left_url)


def test_stop_leaves_server_up_for_another_live_user(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as server:
        url = server.url
        other = _python(
            f"""
            from pathlib import Path
            from ledger.store.embedded import EmbeddedPostgres
            with EmbeddedPostgres(Path({str(data_dir)!r})):
                pass
            """
        )
        assert other.returncode == 0, other.stderr
        assert _is_up(url)
        with EmbeddedPostgres(data_dir):  # a second user in this process
            pass
        assert _is_up(url)
    assert not _is_up(url)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="the stale check reads Linux's /proc")
def test_start_ignores_postmaster_pid_of_an_unrelated_process(data_dir: Path) -> None:
    # After a reboot the pid in a left-over postmaster.pid may belong to anything, e.g. this process.
    pgdata = (data_dir / "pg").resolve()
    (pgdata / "postmaster.pid").write_text(
        "\n".join([str(os.getpid()), str(pgdata), "1700000000", "5432", str(pgdata), "", "0 0", "ready", ""])
    )
    with EmbeddedPostgres(data_dir) as server:
        assert _is_up(server.url)


@pytest.fixture
def admin_url(data_dir: Path) -> Iterator[str]:
    with EmbeddedPostgres(data_dir) as server:
        yield server.url


def test_ensure_database_is_idempotent_and_usable(admin_url: str) -> None:
    first = ensure_database(admin_url, "vledger-test Ω")
    assert ensure_database(admin_url, "vledger-test Ω") == first

    with psycopg.connect(first) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("vledger-test Ω",)
    engine = create_engine(sqlalchemy_url(first))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == "vledger-test Ω"
    finally:
        engine.dispose()

    drop_database(admin_url, "vledger-test Ω")
    drop_database(admin_url, "vledger-test Ω")  # already gone: no error
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'vledger-test Ω'").fetchone()
        assert row == (0,)


def test_drop_database_ends_open_sessions(admin_url: str) -> None:
    url = ensure_database(admin_url, "busy")
    with psycopg.connect(url) as holder:
        drop_database(admin_url, "busy")
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")


def test_database_server_passes_a_given_url_through(tmp_path: Path) -> None:
    given = "postgresql://someone@db.example:6543/prod"
    with database_server(given, tmp_path / "unused") as url:
        assert url == given
    assert not (tmp_path / "unused").exists()


def test_database_server_runs_embedded_without_url(data_dir: Path) -> None:
    with database_server(None, data_dir) as url:
        assert _is_up(url)
    assert not _is_up(url)


@pytest.mark.parametrize(
    ("conninfo", "expected"),
    [
        (
            "postgresql://app:p%40ss@db.example:6543/prod?sslmode=require",
            "postgresql+psycopg://app:p%40ss@db.example:6543/prod?sslmode=require",
        ),
        (
            "host=/run/pg port=5433 user=postgres dbname=x",
            "postgresql+psycopg://postgres@/x?host=/run/pg&port=5433",
        ),
        ("postgresql://postgres@/y?host=/tmp/s", "postgresql+psycopg://postgres@/y?host=/tmp/s"),
    ],
)
def test_sqlalchemy_url_keeps_every_part(conninfo: str, expected: str) -> None:
    assert sqlalchemy_url(conninfo) == expected


@pytest.mark.parametrize(
    "conninfo",
    [
        "postgresql://app:p%40ss%20w%2Fd@[::1]:5432/my%20db?sslmode=disable",
        "host=/run/pg port=5433 user=postgres dbname='vledger test Ω' application_name=x",
        "host=db1.example,db2.example port=5432,5433 user=u dbname=d",
    ],
)
def test_urls_parse_back_to_the_same_parameters(conninfo: str) -> None:
    # What libpq would use must survive the trip through our URL, for psycopg and for SQLAlchemy.
    url = sqlalchemy_url(conninfo)
    expected = conninfo_to_dict(conninfo)
    assert conninfo_to_dict(url.replace("postgresql+psycopg://", "postgresql://", 1)) == expected
    engine = create_engine(url)
    try:
        _args, kwargs = engine.dialect.create_connect_args(make_url(url))
    finally:
        engine.dispose()
    kwargs.pop("context", None)  # SQLAlchemy's type adapters, not a connection parameter
    assert {k: str(v) for k, v in kwargs.items()} == {k: str(v) for k, v in expected.items()}
