"""Bulk import of a sheet of service hours (批量导入): check every row, then post the whole sheet at once.

A dry run reads the sheet (ledger/services/record_sheet.py), checks every row against the community
(ledger/services/record_import_plan.py) and reports each row's problems and what the sheet would
credit, writing nothing. A real run refuses a sheet with any problem; otherwise it opens missing
volunteer accounts and then, in ONE database transaction, holds the community's import lock,
checks again, writes the records (posted) and their events with COPY, and posts every credit
through the ledger's batch path in the same transaction (``batch.write_batch``): the records and
their transfers are written together or not at all.

Imported records follow the same rules as records posted one by one (rounding, caps, rates, coin
storage cap and overflow, deadlines) and the same ledger key, ``service-record:<record_id>``. Their
ids are derived from the row (volunteer, activity, date, times), so importing a sheet again finds
its records and posts nothing new. The sheet is the activity leader's attestation of the hours:
each record is verified by the activity's leader user, never by the importer (NO_VERIFIER
otherwise), and its events say ``source: import``.

Logs carry ids and counts only; the report names rows, columns and codes, never cell values.
"""

from __future__ import annotations

import hashlib
import logging
import time as clock
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountSpec, OwnerKind, member_account_flags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.service_credit import CHINA_TZ, CreditAccounts, CreditPlan, ServiceRules
from ledger.services import batch
from ledger.services import record_import_plan as plan
from ledger.services import record_import_rows as rows_out
from ledger.services import service_posting as posting
from ledger.services.communities import Communities
from ledger.services.ledger import wall_clock_us
from ledger.services.people import People
from ledger.services.record_sheet import RowProblem, Sheet, read_sheet
from ledger.store import record_import_repo as sql
from ledger.store import service_posting_repo as posting_sql
from ledger.store import service_records_repo as records_sql
from ledger.store.db import Conn

log = logging.getLogger("vledger.record_import")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ImportReport:
    """What a run found and did. ``committed``: the sheet's records and transfers are in the ledger
    (a sheet with nothing new is committed with zero records)."""

    dry_run: bool
    committed: bool
    sheet_sha256: str
    rows: int
    ready_rows: int  # rows posted (or, in a dry run or a refused run, that would be)
    already_imported_rows: int
    problem_rows: int
    problems: list[RowProblem]
    ignored_columns: list[str]
    transfers: int = 0
    postings: int = 0
    credited_minutes: int = 0
    credited_points: int = 0
    credited_coin_minutes: int = 0
    pool_coin_minutes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # by stage, for benchmarks


class RecordImport:
    """The import use case over a pool of runtime-role connections. Thread-safe."""

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        people: People,
        communities: Communities,
        *,
        clock: Callable[[], datetime] = utc_now,
        clock_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        self._pool = pool
        self._people = people
        self._communities = communities
        self._clock = clock
        self._clock_us = clock_us

    def run(
        self,
        community_id: int,
        data: bytes,
        *,
        actor_id: uuid.UUID,
        dry_run: bool,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Check (and, unless ``dry_run``, import) a sheet. COMMUNITY_NOT_FOUND; INVALID_FIELD
        (``file``) for a file that is neither CSV nor XLSX. Row problems are in the report."""
        note = progress or (lambda _stage, _done, _total: None)
        times: dict[str, float] = {}
        started = clock.perf_counter()
        sheet = read_sheet(data)
        note("read", len(sheet.rows), len(sheet.rows))
        times["read"] = clock.perf_counter() - started
        report = ImportReport(
            dry_run=dry_run,
            committed=False,
            sheet_sha256=hashlib.sha256(data).hexdigest(),
            rows=len(sheet.rows),
            ready_rows=0,
            already_imported_rows=0,
            problem_rows=0,
            problems=[],
            ignored_columns=sheet.ignored_columns,
            seconds=times,
        )
        with self._pool.connection() as conn:
            if not records_sql.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
        mark = clock.perf_counter()
        ready = self._check(community_id, sheet, actor_id)
        with self._pool.connection() as conn:
            new, done = self._against_ledger(conn, community_id, sheet, ready)
            plans = self._plans(conn, community_id, new)[0] if new else []
        times["check"] = clock.perf_counter() - mark
        note("check", len(sheet.rows), len(sheet.rows))
        has_problems = _finish(report, sheet, new, done, plans)
        if dry_run or has_problems:
            self._log("sheet checked", community_id, actor_id, report)
            return report
        self._import(community_id, sheet, ready, actor_id, report, note)
        self._log("sheet imported" if report.committed else "sheet refused", community_id, actor_id, report)
        return report

    # ---------------------------------------------------------------------------------- checks

    def _check(self, community_id: int, sheet: Sheet, actor_id: uuid.UUID) -> list[plan.ReadyRow]:
        """Resolve and check every row; the rows without problems (records not yet compared)."""
        rows = sheet.rows
        by_id_number = self._people.find_by_id_numbers(
            community_id, [r.id_number for r in rows if r.id_number is not None]
        )
        with self._pool.connection() as conn:
            persons = list({*by_id_number.values(), *(r.person_id for r in rows if r.person_id)})
            activities = sql.activities(
                conn,
                community_id,
                list({r.activity_id for r in rows if r.activity_id}),
                list({r.activity for r in rows if r.activity}),
            )
            rules: dict[date, ServiceRules] = {}

            def rules_on(day: date) -> ServiceRules:
                if day not in rules:
                    rules[day] = posting.rules_on(conn, community_id, day)
                return rules[day]

            known = plan.Known(
                community_id=community_id,
                actor_id=actor_id,
                today=self._clock().astimezone(CHINA_TZ).date(),
                by_id_number=by_id_number,
                person_erased=sql.person_states(conn, community_id, persons),
                activities=activities,
                rules_on=rules_on,
            )
            ready = plan.resolve(rows, sheet.headers, known)
        plan.clashes_in_sheet(ready, sheet.headers)
        return [r for r in ready if not r.sheet.problems]

    def _against_ledger(
        self, conn: Conn, community_id: int, sheet: Sheet, ready: list[plan.ReadyRow]
    ) -> tuple[list[plan.ReadyRow], list[plan.ReadyRow]]:
        """The rows not imported before, and those that were; overlaps with other records are
        problems of their rows."""
        if not ready:
            return [], []
        persons = list({r.person_id for r in ready})
        days = [r.service_date for r in ready]
        existing = sql.records_on(conn, community_id, persons, min(days), max(days))
        return plan.against_records(ready, existing, sheet.headers)

    def _plans(
        self, conn: Conn, community_id: int, rows: list[plan.ReadyRow]
    ) -> tuple[list[CreditPlan], dict[uuid.UUID, CreditAccounts]]:
        """Each row's credit, given what is posted now; and the accounts (of those that exist)."""
        persons = list({r.person_id for r in rows})
        totals = sql.posted_totals(
            conn,
            community_id,
            persons,
            list({r.activity.activity_id for r in rows}),
            list({r.service_date for r in rows}),
        )
        mine = sql.member_accounts(conn, community_id, persons)
        system = posting_sql.system_accounts(conn, community_id)
        accounts = {
            p: posting.accounts_from(p, units, system)
            for p, units in mine.items()
            if all(u in units for u in posting.MEMBER_UNITS)
        }
        coin_accounts = {a.volunteer_coins: p for p, a in accounts.items()}
        coins = sql.balances(conn, community_id, list(coin_accounts))
        balances = {coin_accounts[a]: amount for a, amount in coins.items()}
        return plan.plan_rows(rows, totals, balances), accounts

    # ---------------------------------------------------------------------------------- import

    def _import(
        self,
        community_id: int,
        sheet: Sheet,
        ready: list[plan.ReadyRow],
        actor_id: uuid.UUID,
        report: ImportReport,
        note: Progress,
    ) -> None:
        mark = clock.perf_counter()
        self._ensure_accounts(community_id, list({r.person_id for r in ready}))
        report.seconds["accounts"] = clock.perf_counter() - mark
        with self._pool.connection() as conn:
            try:
                posting_sql.lock_community_for_import(conn, community_id)
                # Checked again under the lock: records posted one by one meanwhile count.
                new, done = self._against_ledger(conn, community_id, sheet, ready)
                plans, accounts = self._plans(conn, community_id, new) if new else ([], {})
                if _finish(report, sheet, new, done, plans) or not new:
                    conn.rollback()
                    report.committed = not report.problems
                    return
                note("post", 0, len(new))
                self._write(conn, community_id, new, plans, accounts, actor_id, report)
            except BaseException:
                conn.rollback()
                raise
        report.committed = True
        note("post", len(new), len(new))

    def _write(
        self,
        conn: Conn,
        community_id: int,
        rows: list[plan.ReadyRow],
        plans: list[CreditPlan],
        accounts: dict[uuid.UUID, CreditAccounts],
        actor_id: uuid.UUID,
        report: ImportReport,
    ) -> None:
        mark = clock.perf_counter()
        keys = [posting.record_key(r.record_id) for r in rows]
        used = sql.used_keys(conn, community_id, keys)
        assert not used, "an import key was used without its record (keys derive from new record ids)"
        built = rows_out.build(community_id, rows, plans, accounts, actor_id, self._clock())
        records, events, requests = built.records, built.events, built.requests
        sql.copy_records(conn, records)
        sql.copy_events(conn, events)
        report.seconds["records"] = clock.perf_counter() - mark
        mark = clock.perf_counter()
        report.transfers = len(requests)
        report.postings = sum(len(q.postings) for q in requests)
        if requests:  # in this transaction: the records and their transfers commit together
            result = batch.write_batch(conn, requests, clock=self._clock_us)
            assert result.skipped == 0 and result.posted == len(requests)
        conn.commit()
        report.seconds["batch"] = clock.perf_counter() - mark

    def _ensure_accounts(self, community_id: int, persons: list[uuid.UUID]) -> None:
        """Open the volunteers' missing hours, points and coin accounts (in one transaction; one by
        one if someone opened some meanwhile). Empty accounts: harmless if the import is refused."""
        with self._pool.connection() as conn:
            have = sql.member_accounts(conn, community_id, persons)
        specs = [
            AccountSpec(OwnerKind.PERSON, unit, member_account_flags(unit), owner_id=p)
            for p in persons
            for unit in posting.MEMBER_UNITS
            if unit not in have.get(p, {})
        ]
        if not specs:
            return
        try:
            self._communities.open_accounts(community_id, specs)
        except LedgerError as err:
            if err.code is not ErrorCode.ACCOUNT_EXISTS:
                raise
            for p in persons:
                posting.ensure_member_accounts(self._pool, self._communities, community_id, p)

    def _log(self, message: str, community_id: int, actor_id: uuid.UUID, report: ImportReport) -> None:
        log.info(
            message,
            extra={
                "community_id": community_id,
                "actor_id": str(actor_id),
                "dry_run": report.dry_run,
                "rows": report.rows,
                "ready_rows": report.ready_rows,
                "problem_rows": report.problem_rows,
                "transfers": report.transfers,
            },
        )


def _finish(
    report: ImportReport,
    sheet: Sheet,
    new: list[plan.ReadyRow],
    done: list[plan.ReadyRow],
    plans: list[CreditPlan],
) -> bool:
    """Fill in the report's findings; True if the sheet has problems."""
    problems = sheet.problems + [p for r in sheet.rows for p in r.problems]
    report.problems = sorted(problems, key=lambda p: (p.row, p.column or "", p.code))
    report.problem_rows = len({p.row for r in sheet.rows for p in r.problems})
    report.ready_rows = len(new)
    report.already_imported_rows = len(done)
    report.credited_minutes = sum(p.credited_minutes for p in plans)
    report.credited_points = sum(p.credited_points for p in plans)
    report.credited_coin_minutes = sum(p.credited_coin_minutes for p in plans)
    report.pool_coin_minutes = sum(p.pool_coin_minutes for p in plans)
    return bool(report.problems)
