"""What the time-bank services share: today's date, the rules in force, people, coin accounts, the
withdrawal check and the region switch (通存通兑). Functions take the caller's connection."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountSpec, OwnerKind, member_account_flags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.rule_settings import default_params, with_defaults
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.timebank_rules import HardshipPeriod, TimeBankRules, check_withdrawal, hardship_in_force
from ledger.domain.units import Unit
from ledger.services.communities import Communities
from ledger.store import timebank_people_repo as people_sql
from ledger.store import timebank_repo as sql
from ledger.store.db import Conn

#: Reads a person's birth date (decrypting their profile); None when unknown or erased.
BirthDateOf = Callable[[int, uuid.UUID], date | None]


def utc_now() -> datetime:
    return datetime.now(UTC)


def china_date(instant: datetime) -> date:
    """The calendar date in China (UTC+8, no daylight saving) at ``instant``."""
    return instant.astimezone(CHINA_TZ).date()


def rules_on(conn: Conn, community_id: int, day: date) -> TimeBankRules:
    """The time-bank parameters of the settings version in force on ``day`` (version 0 before any)."""
    found = sql.settings_in_force(conn, community_id, day)
    if found is None:
        return TimeBankRules.from_params(0, default_params())
    return TimeBankRules.from_params(found[0], with_defaults(found[1]))


def require_person(conn: Conn, community_id: int, person_id: uuid.UUID, *, share: bool = False) -> None:
    """PERSON_NOT_FOUND or PERSON_ERASED unless a live person; ``share`` keeps them from being
    erased until the caller's transaction ends."""
    erased = sql.person_erased(conn, community_id, person_id, share=share)
    if erased is None:
        raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
    if erased:
        raise LedgerError(ErrorCode.PERSON_ERASED, person_id=str(person_id))


def require_community(conn: Conn, community_id: int) -> int:
    """The community's region, or COMMUNITY_NOT_FOUND."""
    region = people_sql.regions_of(conn, [community_id]).get(community_id)
    if region is None:
        raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
    return region


def ensure_coin_account(
    pool: ConnectionPool[Conn], communities: Communities, community_id: int, person_id: uuid.UUID
) -> uuid.UUID:
    """The person's coin account, opened (in its own transaction) if missing. Call it only for a
    person known to exist: accounts do not refer to people by foreign key."""
    with pool.connection() as conn:
        found = sql.coin_account(conn, community_id, person_id)
    if found is not None:
        return found
    unit = Unit.COIN_MINUTES
    spec = AccountSpec(OwnerKind.PERSON, unit, member_account_flags(unit), owner_id=person_id)
    try:
        return communities.open_account(community_id, spec)
    except LedgerError as err:
        if err.code is not ErrorCode.ACCOUNT_EXISTS:
            raise
    with pool.connection() as conn:  # a concurrent caller opened it first
        found = sql.coin_account(conn, community_id, person_id)
    assert found is not None
    return found


def check_may_withdraw(
    conn: Conn,
    community_id: int,
    person_id: uuid.UUID,
    rules: TimeBankRules,
    day: date,
    birth_date: date | None,
) -> None:
    """WITHDRAWAL_AGE_NOT_REACHED unless the person may pay with coins on ``day``. The person's
    hardship flags are read FOR SHARE, so a revocation waits until the caller's write commits."""
    flags = people_sql.flags_of(conn, community_id, person_id, share=True)
    periods = [
        HardshipPeriod(
            f.valid_from, f.valid_until, None if f.revoked_at is None else china_date(f.revoked_at)
        )
        for f in flags
    ]
    check_withdrawal(rules, birth_date, day, hardship=hardship_in_force(periods, day))


def check_cross_community(conn: Conn, community_id: int, other_community_id: int) -> None:
    """Nothing to check within one community. Across two, both must be in one region whose switch
    is on, else CROSS_COMMUNITY_DISABLED; the region row is read FOR SHARE, so switching it off
    waits for the caller's write and every later write sees the switch off."""
    if community_id == other_community_id:
        return
    regions = people_sql.regions_of(conn, [community_id, other_community_id])
    for c in (community_id, other_community_id):
        if c not in regions:
            raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=c)
    region = regions[community_id]
    if regions[other_community_id] != region or not people_sql.region_switch(conn, region, lock="SHARE"):
        raise LedgerError(
            ErrorCode.CROSS_COMMUNITY_DISABLED,
            community_id=community_id,
            other_community_id=other_community_id,
        )


def coin_system_account(conn: Conn, community_id: int, code: str) -> uuid.UUID:
    found = sql.system_coin_accounts(conn, community_id).get(code)
    if found is None:
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, system_account=code, community_id=community_id)
    return found


def require_coin_account(conn: Conn, community_id: int, person_id: uuid.UUID) -> uuid.UUID:
    found = sql.coin_account(conn, community_id, person_id)
    if found is None:
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, unit=str(Unit.COIN_MINUTES), person_id=str(person_id))
    return found
