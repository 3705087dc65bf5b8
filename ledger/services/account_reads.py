"""Account reads on an asyncio pool: the balance route answers from the event loop, no thread hop.

Same rows and same answer as ``Accounts.get``. The pool belongs to the event loop that first used
it (an HTTP server process has one; a test client may start several, one after another), is opened
on first use and closed by the application's shutdown hook.

Concurrent reads are coalesced: a read that arrives while another is at the database waits for it
to return and then goes with every read that queued meanwhile, in one query per community. An
idle service reads at once; a busy one pays one query and one round trip per group rather than
per read, on both sides. Every read is sent after it arrived, so it sees every commit that
preceded it.
"""

from __future__ import annotations

import asyncio
import uuid

from psycopg_pool import AsyncConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.services.accounts import AccountView, account_view
from ledger.store import accounts_repo as sql
from ledger.store.db import AsyncConn, open_async_pool

__all__ = ["AsyncAccountReads"]


_Waiting = tuple[int, uuid.UUID, "asyncio.Future[AccountView]"]


class _Queue:
    """One event loop's reads waiting for the database, and the task reading them, if running."""

    def __init__(self) -> None:
        self.waiting: list[_Waiting] = []
        self.reading: asyncio.Task[None] | None = None


class AsyncAccountReads:
    def __init__(self, conninfo: str, *, max_size: int = 8) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool[AsyncConn]] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._queues: dict[asyncio.AbstractEventLoop, _Queue] = {}

    async def _pool(self) -> AsyncConnectionPool[AsyncConn]:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            async with self._opening.setdefault(loop, asyncio.Lock()):
                pool = self._pools.get(loop)
                if pool is None:
                    # Its two statements look each account up by key (tests/integration/test_plans.py):
                    # planned once per connection, not per read.
                    pool = await open_async_pool(self._conninfo, max_size=self._max_size, generic_plans=True)
                    self._pools[loop] = pool
        return pool

    async def get(self, community_id: int, account_id: uuid.UUID) -> AccountView:
        """The account and its balance; ACCOUNT_NOT_FOUND if the community has no such account."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        answer: asyncio.Future[AccountView] = loop.create_future()
        queue.waiting.append((community_id, account_id, answer))
        if queue.reading is None:
            queue.reading = loop.create_task(self._read_queued(queue))
        return await answer

    async def _read_queued(self, queue: _Queue) -> None:
        """Read whatever has queued, a group at a time, until nothing waits."""
        try:
            while queue.waiting:
                group, queue.waiting = queue.waiting, []
                try:
                    await self._read_group(group)
                except BaseException as exc:  # each waiting reader gets the failure
                    for _, _, answer in group:
                        if not answer.done():
                            answer.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            queue.reading = None

    async def _read_group(self, group: list[_Waiting]) -> None:
        by_community: dict[int, list[uuid.UUID]] = {}
        for community_id, account_id, _ in group:
            by_community.setdefault(community_id, []).append(account_id)
        found: dict[tuple[int, uuid.UUID], AccountView] = {}
        pool = await self._pool()
        async with pool.connection() as conn:
            for community_id, account_ids in by_community.items():
                if len(account_ids) == 1:
                    cur = await conn.execute(sql.ACCOUNT, {"c": community_id, "a": account_ids[0]})
                else:
                    cur = await conn.execute(sql.ACCOUNTS_BY_ID, {"c": community_id, "a": account_ids})
                for row in await cur.fetchall():
                    found[(community_id, row[0])] = account_view(row)
        for community_id, account_id, answer in group:
            if answer.done():  # its caller went away
                continue
            view = found.get((community_id, account_id))
            if view is None:
                answer.set_exception(LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, account_id=str(account_id)))
            else:
                answer.set_result(view)

    async def close(self) -> None:
        """Close this event loop's pool (the application's shutdown hook)."""
        loop = asyncio.get_running_loop()
        self._opening.pop(loop, None)
        self._queues.pop(loop, None)
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()
