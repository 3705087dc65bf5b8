"""Account reads on an asyncio pool: the balance route answers from the event loop, no thread hop.

Same query and same answer as ``Accounts.get``. The pool belongs to the event loop that first
used it (an HTTP server process has one; a test client may start several, one after another), is
opened on first use and closed by the application's shutdown hook.
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


class AsyncAccountReads:
    def __init__(self, conninfo: str, *, max_size: int = 8) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool[AsyncConn]] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def _pool(self) -> AsyncConnectionPool[AsyncConn]:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            async with self._opening.setdefault(loop, asyncio.Lock()):
                pool = self._pools.get(loop)
                if pool is None:
                    pool = await open_async_pool(self._conninfo, max_size=self._max_size)
                    self._pools[loop] = pool
        return pool

    async def get(self, community_id: int, account_id: uuid.UUID) -> AccountView:
        pool = await self._pool()
        async with pool.connection() as conn:
            cur = await conn.execute(sql.ACCOUNT, {"c": community_id, "a": account_id})
            row = await cur.fetchone()
        if row is None:
            raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, account_id=str(account_id))
        return account_view(row)

    async def close(self) -> None:
        """Close this event loop's pool (the application's shutdown hook)."""
        loop = asyncio.get_running_loop()
        self._opening.pop(loop, None)
        pool = self._pools.pop(loop, None)
        if pool is not None:
            await pool.close()
