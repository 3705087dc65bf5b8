"""Account reads for people and staff: lists, one account, statements (history) and points lots."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountFlags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.units import Unit
from ledger.store import accounts_repo as sql
from ledger.store.db import Conn, read_connection

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: uuid.UUID
    owner_kind: str
    owner_id: uuid.UUID | None
    code: str | None
    unit: Unit
    flags: AccountFlags
    credit_limit: int
    created_at: datetime
    posted: int
    pending_in: int
    pending_out: int
    version: int

    @property
    def available(self) -> int:
        return self.posted - self.pending_out


@dataclass(frozen=True, slots=True)
class StatementLine:
    transfer_id: uuid.UUID
    seq: int
    kind: str
    phase: str
    effective_at: datetime
    recorded_at: datetime
    amount: int
    balance_after: int | None
    expires_at: datetime | None
    reverses_id: uuid.UUID | None
    pending_id: uuid.UUID | None
    actor_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class LotView:
    lot_id: uuid.UUID
    transfer_id: uuid.UUID
    amount: int
    remaining: int
    earned_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class CommunityView:
    community_id: int
    region_id: int
    code: str
    name: str
    origin: str
    created_at: datetime


def account_view(row: tuple[Any, ...]) -> AccountView:
    return AccountView(
        row[0],
        str(row[1]),
        row[2],
        row[3],
        Unit(row[4]),
        AccountFlags(row[5]),
        int(row[6]),
        row[7],
        int(row[8]),
        int(row[9]),
        int(row[10]),
        int(row[11]),
    )


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="limit", max=MAX_PAGE)
    return limit


class Accounts:
    """Reads only; every method opens a pooled connection and leaves no transaction behind."""

    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self._pool = pool

    def _rows(self, query: str, params: Mapping[str, object] | tuple[object, ...]) -> list[tuple[Any, ...]]:
        with read_connection(self._pool) as conn:  # one statement
            return conn.execute(query, params).fetchall()

    def get(self, community_id: int, account_id: uuid.UUID) -> AccountView:
        rows = self._rows(sql.ACCOUNT, {"c": community_id, "a": account_id})
        if not rows:
            raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, account_id=str(account_id))
        return account_view(rows[0])

    def find(
        self,
        community_id: int,
        *,
        after: uuid.UUID | None = None,
        limit: int = 50,
        owner_kind: str | None = None,
        owner_id: uuid.UUID | None = None,
        unit: Unit | None = None,
    ) -> list[AccountView]:
        params = {
            "c": community_id,
            "after": after,
            "owner_kind": owner_kind,
            "owner_id": owner_id,
            "unit": None if unit is None else str(unit),
            "limit": _limit(limit),
        }
        return [account_view(r) for r in self._rows(sql.ACCOUNTS, params)]

    def statement(
        self,
        community_id: int,
        account_id: uuid.UUID,
        *,
        before: uuid.UUID | None = None,
        limit: int = 50,
        kind: str | None = None,
        effective_from: datetime | None = None,
        effective_to: datetime | None = None,
    ) -> list[StatementLine]:
        """Postings of one account, newest first; ``before`` is the last transfer id of the previous page."""
        self.get(community_id, account_id)  # ACCOUNT_NOT_FOUND rather than an empty page
        params = {
            "c": community_id,
            "a": account_id,
            "before": before,
            "kind": kind,
            "from": effective_from,
            "to": effective_to,
            "limit": _limit(limit),
        }
        return [
            StatementLine(r[0], int(r[1]), r[2], r[3], r[4], r[5], int(r[6]), r[7], r[8], r[9], r[10], r[11])
            for r in self._rows(sql.STATEMENT, params)
        ]

    def lots(
        self, community_id: int, account_id: uuid.UUID, *, open_only: bool = True, limit: int = MAX_PAGE
    ) -> list[LotView]:
        self.get(community_id, account_id)
        params = {"c": community_id, "a": account_id, "open": open_only, "limit": _limit(limit)}
        return [LotView(r[0], r[1], int(r[2]), int(r[3]), r[4], r[5]) for r in self._rows(sql.LOTS, params)]

    def transfer_accounts(self, community_id: int, transfer_id: uuid.UUID) -> set[uuid.UUID]:
        return {r[0] for r in self._rows(sql.TRANSFER_ACCOUNTS, (community_id, transfer_id))}

    def community(self, community_id: int) -> CommunityView:
        rows = self._rows(sql.COMMUNITY, (community_id,))
        if not rows:
            raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
        return CommunityView(*rows[0])

    def communities(self, community_ids: list[int], region_ids: list[int]) -> list[CommunityView]:
        rows = self._rows(sql.COMMUNITIES, {"ids": community_ids, "regions": region_ids})
        return [CommunityView(*r) for r in rows]
