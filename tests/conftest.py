"""Test infrastructure: one real PostgreSQL (embedded, or DATABASE_URL), migrations applied once per
worker, and a fresh community per test so that tests are isolated by tenancy, not by rollback (the
ledger commits its own transactions, as it does in production)."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountSpec, OwnerKind, member_account_flags
from ledger.domain.units import Unit
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store import migrate
from ledger.store.db import Conn, open_pool
from ledger.store.embedded import EmbeddedPostgres, drop_database, ensure_database

ROOT = Path(__file__).resolve().parents[1]
_ADMIN_ENV = "VLEDGER_TEST_ADMIN_URL"
_embedded: EmbeddedPostgres | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Start the embedded server once, in the controlling process, before any xdist worker exists."""
    global _embedded  # noqa: PLW0603 - one server for the whole run
    if hasattr(config, "workerinput") or os.environ.get(_ADMIN_ENV):
        return
    url = os.environ.get("DATABASE_URL")
    if not url:
        _embedded = EmbeddedPostgres(ROOT / "var" / "test")
        url = _embedded.start()
    os.environ[_ADMIN_ENV] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded is not None and not hasattr(config, "workerinput"):
        _embedded.stop()


@pytest.fixture(scope="session")
def admin_url() -> str:
    return os.environ[_ADMIN_ENV]


@pytest.fixture(scope="session")
def db_url(admin_url: str, worker_id: str) -> str:
    """A database for this worker, made by running every migration (never create_all)."""
    # VLEDGER_TEST_DB_SUFFIX keeps concurrent suites on one server apart (several checkouts, CI).
    name = f"vledger_test_{worker_id}{os.environ.get('VLEDGER_TEST_DB_SUFFIX', '')}"
    # Roles are cluster-wide: workers migrating at once would race on ALTER ROLE. Take turns.
    lock_path = ROOT / "var" / "test-migrate.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        drop_database(admin_url, name)
        url = ensure_database(admin_url, name)
        migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def pool(db_url: str) -> Iterator[ConnectionPool[Conn]]:
    p = open_pool(db_url, min_size=2, max_size=40, name="tests")
    yield p
    p.close()


@pytest.fixture
def owner(db_url: str) -> Iterator[Conn]:
    """An owner connection for assertions that read across tables (autocommit, read-only by habit)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def communities(pool: ConnectionPool[Conn]) -> Communities:
    return Communities(pool, origin_prefix="test.vledger", hot_buckets=4)


@pytest.fixture(scope="session")
def ledger(pool: ConnectionPool[Conn]) -> Ledger:
    return Ledger(pool)


@pytest.fixture(scope="session")
def region_id(communities: Communities) -> int:
    return communities.create_region(f"r-{uuid.uuid4().hex[:8]}", "测试街道")


@pytest.fixture
def community(communities: Communities, region_id: int) -> CommunityInfo:
    return communities.create_community(region_id, f"c-{uuid.uuid4().hex[:12]}", "测试社区")


@pytest.fixture
def open_member(communities: Communities, community: CommunityInfo):  # type: ignore[no-untyped-def]
    """Open a person's account in ``unit`` (flags by unit, as the services will)."""

    def _open(unit: Unit = Unit.POINTS, *, credit_limit: int = 0) -> uuid.UUID:
        spec = AccountSpec(
            OwnerKind.PERSON,
            unit,
            member_account_flags(unit),
            owner_id=uuid.uuid4(),
            credit_limit=credit_limit,
        )
        return communities.open_account(community.community_id, spec)

    return _open
