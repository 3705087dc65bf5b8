"""AsyncAccountReads: the balance route's reads on an asyncio pool answer what Accounts.get answers,
refuse an owner connection, and keep one pool per event loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.units import Unit
from ledger.services.account_reads import AsyncAccountReads
from ledger.services.accounts import Accounts
from ledger.services.communities import Communities, CommunityInfo
from ledger.store import accounts_repo
from ledger.store.db import Conn, RuntimeRoleError


def _conninfo(pool: ConnectionPool[Conn]) -> str:
    return pool.conninfo if isinstance(pool.conninfo, str) else pool.conninfo()


def test_the_same_answer_as_accounts_get_from_any_event_loop(
    pool: ConnectionPool[Conn], community: CommunityInfo, open_member: Callable[..., uuid.UUID]
) -> None:
    account = open_member(Unit.POINTS)
    reads = AsyncAccountReads(_conninfo(pool))

    async def read() -> object:
        try:
            return await reads.get(community.community_id, account)
        finally:
            await reads.close()

    expected = Accounts(pool).get(community.community_id, account)
    assert asyncio.run(read()) == expected
    assert asyncio.run(read()) == expected  # a second loop opens its own pool


def test_an_unknown_account_is_account_not_found(
    pool: ConnectionPool[Conn], community: CommunityInfo
) -> None:
    reads = AsyncAccountReads(_conninfo(pool))

    async def read() -> None:
        try:
            await reads.get(community.community_id, uuid.uuid4())
        finally:
            await reads.close()

    with pytest.raises(LedgerError) as err:
        asyncio.run(read())
    assert err.value.code is ErrorCode.ACCOUNT_NOT_FOUND


def test_an_owner_connection_is_refused(db_url: str, community: CommunityInfo) -> None:
    reads = AsyncAccountReads(db_url)  # the owner, not the runtime role

    async def read() -> None:
        await reads.get(community.community_id, uuid.uuid4())

    with pytest.raises(RuntimeRoleError):
        asyncio.run(read())


def test_concurrent_reads_are_coalesced_and_each_gets_its_own_answer(
    pool: ConnectionPool[Conn],
    communities: Communities,
    region_id: int,
    community: CommunityInfo,
    open_member: Callable[..., uuid.UUID],
) -> None:
    """Reads queued together (several accounts, a repeat, another community's account, a missing
    one, an account asked for in the wrong community) answer exactly as Accounts.get does."""
    other = communities.create_community(region_id, f"c-{uuid.uuid4().hex[:12]}", "另一社区")
    theirs = next(iter(other.system_accounts.values()))
    mine = [open_member(Unit.POINTS) for _ in range(5)]
    c = community.community_id
    asks = [(c, a) for a in mine] + [
        (c, mine[0]),
        (other.community_id, theirs),
        (c, uuid.uuid4()),
        (c, theirs),
    ]
    reads = AsyncAccountReads(_conninfo(pool))

    async def read_all() -> list[object]:
        try:
            await reads.get(c, mine[0])  # the pool is open, so the rest queue behind one read
            return list(await asyncio.gather(*(reads.get(ci, a) for ci, a in asks), return_exceptions=True))
        finally:
            await reads.close()

    accounts = Accounts(pool)
    expected: list[object] = []
    for ci, a in asks:
        try:
            expected.append(accounts.get(ci, a))
        except LedgerError as exc:
            expected.append(exc.code)
    got = [a.code if isinstance(a, LedgerError) else a for a in asyncio.run(read_all())]
    assert got == expected
    assert got[-2:] == [ErrorCode.ACCOUNT_NOT_FOUND, ErrorCode.ACCOUNT_NOT_FOUND]


def test_a_failed_group_fails_every_read_in_it_and_the_next_reads_work(
    pool: ConnectionPool[Conn],
    community: CommunityInfo,
    open_member: Callable[..., uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    accounts = [open_member(Unit.POINTS) for _ in range(3)]
    c = community.community_id
    reads = AsyncAccountReads(_conninfo(pool))

    async def scenario() -> tuple[list[object], list[object]]:
        try:
            await reads.get(c, accounts[0])  # the pool is open
            with monkeypatch.context() as broken:
                broken.setattr(accounts_repo, "ACCOUNT", "SELECT no_such_column FROM account")
                broken.setattr(accounts_repo, "ACCOUNTS_BY_ID", "SELECT no_such_column FROM account")
                failed = await asyncio.gather(*(reads.get(c, a) for a in accounts), return_exceptions=True)
            after = await asyncio.gather(*(reads.get(c, a) for a in accounts))
            return list(failed), list(after)
        finally:
            await reads.close()

    failed, after = asyncio.run(scenario())
    assert len(failed) == 3
    assert all(isinstance(f, psycopg.errors.UndefinedColumn) for f in failed)
    assert after == [Accounts(pool).get(c, a) for a in accounts]


def test_a_reader_that_goes_away_does_not_disturb_the_others(
    pool: ConnectionPool[Conn], community: CommunityInfo, open_member: Callable[..., uuid.UUID]
) -> None:
    accounts = [open_member(Unit.POINTS) for _ in range(3)]
    reads = AsyncAccountReads(_conninfo(pool))

    async def scenario() -> list[object]:
        try:
            await reads.get(community.community_id, accounts[0])
            tasks = [asyncio.ensure_future(reads.get(community.community_id, a)) for a in accounts]
            tasks[1].cancel()
            return list(await asyncio.gather(*tasks, return_exceptions=True))
        finally:
            await reads.close()

    first, cancelled, last = asyncio.run(scenario())
    assert isinstance(cancelled, asyncio.CancelledError)
    assert first == Accounts(pool).get(community.community_id, accounts[0])
    assert last == Accounts(pool).get(community.community_id, accounts[2])


def test_the_pool_plans_each_statement_once_per_connection(pool: ConnectionPool[Conn]) -> None:
    """Generic plans: both read statements look each account up by key whatever the values
    (tests/integration/test_plans.py checks those plans), so they need not be planned per read."""
    reads = AsyncAccountReads(_conninfo(pool))

    async def setting() -> object:
        try:
            async with (await reads._pool()).connection() as conn:
                row = await (await conn.execute("SHOW plan_cache_mode")).fetchone()
            return None if row is None else row[0]
        finally:
            await reads.close()

    assert asyncio.run(setting()) == "force_generic_plan"
