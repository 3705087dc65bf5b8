"""Regions, communities and accounts: the tenancy every transfer lives in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.audit.leaf import origin_for
from ledger.domain.accounts import (
    SYSTEM_ACCOUNTS,
    AccountFlags,
    AccountSpec,
    OwnerKind,
    SystemAccount,
)
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7, uuid7_many
from ledger.domain.transfers import check_text
from ledger.domain.units import Unit
from ledger.store.db import Conn


@dataclass(frozen=True, slots=True)
class CommunityInfo:
    community_id: int
    region_id: int
    code: str
    origin: str
    system_accounts: dict[tuple[SystemAccount, Unit], uuid.UUID]


_INSERT_ACCOUNT = """
INSERT INTO account (community_id, account_id, owner_kind, owner_id, code, unit, flags, credit_limit, buckets)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_INSERT_BALANCE = """
INSERT INTO balance (community_id, account_id, bucket, floor)
SELECT %s, %s, b, %s FROM generate_series(0, %s - 1) AS b
"""
# Many owned accounts at once (open_missing), from one array per column: those that do not exist
# (account_owner_uq) are inserted, with their balance rows.
_OPEN_MISSING = """
WITH opened AS (
    INSERT INTO account (community_id, account_id, owner_kind, owner_id, code, unit, flags, credit_limit,
                         buckets)
    SELECT %(c)s, a.* FROM unnest(%(ids)s::uuid[], %(kinds)s::text[], %(owners)s::uuid[], %(codes)s::text[],
        %(units)s::text[], %(flags)s::int[], %(limits)s::bigint[], %(buckets)s::smallint[]) AS a
    ON CONFLICT (community_id, owner_kind, owner_id, unit) WHERE owner_id IS NOT NULL DO NOTHING
    RETURNING account_id, buckets
)
INSERT INTO balance (community_id, account_id, bucket, floor)
SELECT %(c)s, o.account_id, b, f.floor
FROM opened o JOIN unnest(%(ids)s::uuid[], %(floors)s::bigint[]) AS f (account_id, floor) USING (account_id),
    generate_series(0, o.buckets - 1) AS b
"""


class Communities:
    def __init__(self, pool: ConnectionPool[Conn], *, origin_prefix: str, hot_buckets: int = 8) -> None:
        self._pool = pool
        self._origin_prefix = origin_prefix
        self._hot_buckets = hot_buckets

    def create_region(self, code: str, name: str, *, cross_community: bool = False) -> int:
        check_text(code, "code")
        check_text(name, "name")
        with self._pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO region (code, name, cross_community) VALUES (%s, %s, %s) RETURNING region_id",
                (code, name, cross_community),
            ).fetchone()
            assert row is not None
            return int(row[0])

    def create_community(self, region_id: int, code: str, name: str) -> CommunityInfo:
        """Create a community with its log and one set of system accounts per unit."""
        check_text(code, "code")
        check_text(name, "name")
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT nextval(pg_get_serial_sequence('community', 'community_id'))"
            ).fetchone()
            assert row is not None
            community_id = int(row[0])
            origin = origin_for(self._origin_prefix, community_id)
            try:
                conn.execute(
                    "INSERT INTO community (community_id, region_id, code, name, origin)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (community_id, region_id, code, name, origin),
                )
            except pg_errors.ForeignKeyViolation:
                raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="region_id") from None
            conn.execute("INSERT INTO log_head (community_id) VALUES (%s)", (community_id,))
            system: dict[tuple[SystemAccount, Unit], uuid.UUID] = {}
            for unit, accounts in SYSTEM_ACCOUNTS.items():
                for code_, flags in accounts:
                    spec = AccountSpec(OwnerKind.COMMUNITY, unit, flags, code=str(code_))
                    system[(code_, unit)] = self._open(conn, community_id, spec)
            return CommunityInfo(community_id, region_id, code, origin, system)

    def open_account(self, community_id: int, spec: AccountSpec) -> uuid.UUID:
        spec.validate()
        with self._pool.connection() as conn:
            try:
                return self._open(conn, community_id, spec)
            except pg_errors.ForeignKeyViolation:
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id) from None
            except pg_errors.UniqueViolation:  # one account per owner and unit (account_owner_uq)
                raise LedgerError(ErrorCode.ACCOUNT_EXISTS, unit=str(spec.unit)) from None

    def open_missing(self, conn: Conn, community_id: int, specs: list[AccountSpec]) -> None:
        """Open the owned accounts of ``specs`` that do not exist yet, in the caller's transaction on
        ``conn`` (a bulk import opens its volunteers' accounts with its records): one statement,
        which the caller may queue in a pipeline. An account that exists already, or that another
        transaction opens meanwhile, is left as it is (its balance rows too)."""
        for spec in specs:
            spec.validate()
            assert spec.owner_id is not None  # the conflict clause covers owned accounts only
        if not specs:
            return
        account_ids = uuid7_many(len(specs))
        params = {
            "c": community_id,
            "ids": account_ids,
            "kinds": [str(s.owner_kind) for s in specs],
            "owners": [s.owner_id for s in specs],
            "codes": [s.code for s in specs],
            "units": [str(s.unit) for s in specs],
            "flags": [int(s.flags) for s in specs],
            "limits": [s.credit_limit for s in specs],
            "buckets": [self._hot_buckets if AccountFlags.HOT in s.flags else 1 for s in specs],
            "floors": [-s.credit_limit if AccountFlags.NON_NEGATIVE in s.flags else None for s in specs],
        }
        conn.execute(_OPEN_MISSING, params)

    def _open(self, conn: Conn, community_id: int, spec: AccountSpec) -> uuid.UUID:
        spec.validate()
        account_id = uuid7()
        buckets = self._hot_buckets if AccountFlags.HOT in spec.flags else 1
        floor = -spec.credit_limit if AccountFlags.NON_NEGATIVE in spec.flags else None
        conn.execute(
            _INSERT_ACCOUNT,
            (
                community_id,
                account_id,
                str(spec.owner_kind),
                spec.owner_id,
                spec.code,
                str(spec.unit),
                int(spec.flags),
                spec.credit_limit,
                buckets,
            ),
        )
        conn.execute(_INSERT_BALANCE, (community_id, account_id, floor, buckets))
        return account_id

    def find_by_code(self, code: str) -> int | None:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT community_id FROM community WHERE code = %s", (code,)).fetchone()
            conn.rollback()
        return None if row is None else int(row[0])

    def system_accounts(self, community_id: int) -> dict[tuple[SystemAccount, Unit], uuid.UUID]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT code, unit, account_id FROM account WHERE community_id = %s AND owner_id IS NULL",
                (community_id,),
            ).fetchall()
        return {(SystemAccount(code), Unit(unit)): account_id for code, unit, account_id in rows}
