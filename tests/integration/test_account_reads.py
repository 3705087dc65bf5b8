"""AsyncAccountReads: the balance route's reads on an asyncio pool answer what Accounts.get answers,
refuse an owner connection, and keep one pool per event loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.units import Unit
from ledger.services.account_reads import AsyncAccountReads
from ledger.services.accounts import Accounts
from ledger.services.communities import CommunityInfo
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
