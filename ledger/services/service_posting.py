"""Posting what a service record credits through the ledger (shared by records and corrections).

The record's own transaction holds the record row and the volunteer's advisory lock while the
ledger writes the transfer on its own pooled connection and commits; the record is then marked
with what was credited and its transaction commits. If that last commit is lost (a crash between
the two), the transfer is already in the ledger under the record's idempotency key: the next
attempt finds it there and adopts what its metadata says instead of planning again, so a record
is credited exactly once whatever happens in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.rule_settings import default_params, with_defaults
from ledger.domain.service_credit import (
    CHINA_TZ,
    CreditAccounts,
    CreditContext,
    CreditPlan,
    ServiceRules,
    credit_postings,
    plan_credit,
)
from ledger.domain.times import to_us
from ledger.domain.transfers import TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store import service_posting_repo as sql
from ledger.store import settings_repo
from ledger.store.db import Conn
from ledger.store.service_records_repo import Credited, RecordRow

MEMBER_UNITS = (Unit.SERVICE_MINUTES, Unit.POINTS, Unit.COIN_MINUTES)
TRANSFER_KIND = "service_credit"


def record_key(record_id: uuid.UUID) -> str:
    """The idempotency key of a record's first posting."""
    return f"service-record:{record_id}"


def rules_on(conn: Conn, community_id: int, day: date) -> ServiceRules:
    """The settings version in force on ``day`` (version 0, the defaults, before any is published)."""
    row = settings_repo.in_force(conn, community_id, day)
    if row is None:
        return ServiceRules.from_params(0, default_params())
    return ServiceRules.from_params(row[0], with_defaults(row[2]))


def rules_version(conn: Conn, community_id: int, version: int) -> ServiceRules:
    if version == 0:
        return ServiceRules.from_params(0, default_params())
    params = sql.settings_version(conn, community_id, version)
    assert params is not None, "a record names a settings version that does not exist"
    return ServiceRules.from_params(version, with_defaults(params))


def ensure_member_accounts(
    pool: ConnectionPool[Conn], communities: Communities, community_id: int, person_id: uuid.UUID
) -> None:
    """Open the volunteer's hours, points and coin accounts if they are missing (each in its own
    transaction; two callers racing both end with the same accounts)."""
    with pool.connection() as conn:
        have = sql.person_accounts(conn, community_id, person_id)
    for unit in MEMBER_UNITS:
        if unit in have:
            continue
        spec = AccountSpec(OwnerKind.PERSON, unit, member_account_flags(unit), owner_id=person_id)
        try:
            communities.open_account(community_id, spec)
        except LedgerError as err:
            if err.code is not ErrorCode.ACCOUNT_EXISTS:
                raise


def credit_accounts(conn: Conn, community_id: int, person_id: uuid.UUID) -> CreditAccounts:
    mine = sql.person_accounts(conn, community_id, person_id)
    return accounts_from(person_id, mine, sql.system_accounts(conn, community_id))


def accounts_from(
    person_id: uuid.UUID, mine: Mapping[Unit, uuid.UUID], system: Mapping[tuple[str, Unit], uuid.UUID]
) -> CreditAccounts:
    """The accounts a record's transfer touches, from the volunteer's and the community's."""
    missing = [u for u in MEMBER_UNITS if u not in mine]
    if missing:
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, unit=str(missing[0]), person_id=str(person_id))
    issuance = str(SystemAccount.ISSUANCE)
    return CreditAccounts(
        volunteer_minutes=mine[Unit.SERVICE_MINUTES],
        volunteer_points=mine[Unit.POINTS],
        volunteer_coins=mine[Unit.COIN_MINUTES],
        issuance_minutes=system[(issuance, Unit.SERVICE_MINUTES)],
        issuance_points=system[(issuance, Unit.POINTS)],
        issuance_coins=system[(issuance, Unit.COIN_MINUTES)],
        donation_pool=system[(str(SystemAccount.DONATION_POOL), Unit.COIN_MINUTES)],
    )


def plan_for(
    conn: Conn,
    community_id: int,
    record: RecordRow,
    rules: ServiceRules,
    accounts: CreditAccounts,
    served_minutes: int,
) -> CreditPlan:
    """Plan the credit of ``served_minutes`` for ``record``, given the volunteer's other posted
    records and coin balance (read in one statement, under the volunteer's lock)."""
    totals = sql.totals(
        conn,
        community_id,
        person_id=record.person_id,
        record_id=record.record_id,
        activity_id=record.activity_id,
        service_date=record.service_date,
        coin_account=accounts.volunteer_coins,
    )
    ctx = CreditContext(
        activity_minutes=totals.activity_minutes,
        day_minutes=totals.day_minutes,
        day_coin_minutes=totals.day_coin_minutes,
        stored_coin_minutes=totals.stored_coin_minutes,
    )
    return plan_credit(served_minutes, rules, ctx, record.service_date)


def service_instant_us(day: date, start: time) -> int:
    """When the service began (China time), as ledger microseconds: the transfer's effective time and
    the earning time of its points lot."""
    us = to_us(datetime.combine(day, start, tzinfo=CHINA_TZ))
    assert us is not None
    return us


@dataclass(frozen=True, slots=True)
class Posted:
    credited: Credited
    overdue: bool
    actor_id: uuid.UUID


def post_plan(
    ledger: Ledger,
    community_id: int,
    *,
    key: str,
    record: RecordRow,
    plan: CreditPlan,
    rules: ServiceRules,
    accounts: CreditAccounts,
    actor_id: uuid.UUID,
    overdue: bool,
    start: time,
    extra: Mapping[str, str] | None = None,
) -> Credited:
    """Post the plan as one transfer (nothing, if it credits nothing) and say what was credited."""
    postings = credit_postings(plan, accounts)
    transfer_id = None
    if postings:
        metadata: dict[str, object] = {
            "service_record_id": str(record.record_id),
            "settings_version": rules.version,
            "served_minutes": plan.served_minutes,
            "credited_minutes": plan.credited_minutes,
            "credited_points": plan.credited_points,
            "earned_coin_minutes": plan.earned_coin_minutes,
            "credited_coin_minutes": plan.credited_coin_minutes,
            "pool_coin_minutes": plan.pool_coin_minutes,
            "overdue": overdue,
            **(extra or {}),
        }
        request = TransferRequest(
            community_id,
            TRANSFER_KIND,
            postings,
            key,
            effective_us=service_instant_us(record.service_date, start),
            actor_id=actor_id,
            metadata=metadata,
        )
        transfer_id = ledger.transfer(request).transfer_id
    return Credited(
        settings_version=rules.version,
        transfer_id=transfer_id,
        credited_minutes=plan.credited_minutes,
        credited_points=plan.credited_points,
        earned_coin_minutes=plan.earned_coin_minutes,
        credited_coin_minutes=plan.credited_coin_minutes,
        pool_coin_minutes=plan.pool_coin_minutes,
    )


def adopt(conn: Conn, community_id: int, key: str, fallback_actor: uuid.UUID) -> Posted | None:
    """What an earlier, interrupted attempt posted under ``key``, from its transfer's metadata."""
    transfer_id = sql.keyed_transfer(conn, community_id, key)
    if transfer_id is None:
        return None
    meta, actor_id = sql.transfer_metadata(conn, community_id, transfer_id)

    def number(name: str) -> int:
        value = meta[name]
        assert isinstance(value, int) and not isinstance(value, bool)
        return value

    credited = Credited(
        settings_version=number("settings_version"),
        transfer_id=transfer_id,
        credited_minutes=number("credited_minutes"),
        credited_points=number("credited_points"),
        earned_coin_minutes=number("earned_coin_minutes"),
        credited_coin_minutes=number("credited_coin_minutes"),
        pool_coin_minutes=number("pool_coin_minutes"),
    )
    return Posted(credited, bool(meta["overdue"]), actor_id or fallback_actor)


def credited_detail(credited: Credited) -> dict[str, object]:
    """An event's detail: ids and numbers only."""
    return {
        "transfer_id": None if credited.transfer_id is None else str(credited.transfer_id),
        "settings_version": credited.settings_version,
        "credited_minutes": credited.credited_minutes,
        "credited_points": credited.credited_points,
        "credited_coin_minutes": credited.credited_coin_minutes,
        "pool_coin_minutes": credited.pool_coin_minutes,
    }
