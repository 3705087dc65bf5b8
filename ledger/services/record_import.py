"""Bulk import of a sheet of service hours (批量导入): check every row, then post the whole sheet at once.

A dry run reads the sheet (ledger/services/record_sheet.py), checks every row against the community
(ledger/services/record_import_plan.py) and reports each row's problems and what the sheet would
credit, writing nothing. A real run refuses a sheet with any problem; otherwise, in ONE database
transaction, it holds the community's import lock, checks again against the ledger (what the
first check found stands where the ledger reads as it did then), opens the volunteers' missing
accounts, writes the records (posted) and their events with COPY, and posts every credit through
the ledger's batch path (``batch.write_batch``): accounts, records and transfers are written
together or not at all. Where the server is the slower side, Python builds the next rows while it
inserts the last ones (pipelined account inserts, COPY text sent chunk by chunk).

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
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountSpec, OwnerKind, member_account_flags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7_series_prefix
from ledger.domain.service_credit import CHINA_TZ, CreditAccounts, CreditPlan
from ledger.services import batch
from ledger.services import record_import_plan as plan
from ledger.services import record_import_rows as rows_out
from ledger.services import service_posting as posting
from ledger.services.collector import collector_paused
from ledger.services.communities import Communities
from ledger.services.ledger import wall_clock_us
from ledger.services.people import People
from ledger.services.record_sheet import RowProblem, Sheet, read_sheet
from ledger.store import record_import_repo as sql
from ledger.store import service_posting_repo as posting_sql
from ledger.store import service_records_repo as records_sql
from ledger.store.db import Conn
from ledger.store.ledger_repo import Cur

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
        with collector_paused():
            return self._run(community_id, data, actor_id, dry_run, progress or _no_progress)

    def _run(
        self, community_id: int, data: bytes, actor_id: uuid.UUID, dry_run: bool, note: Progress
    ) -> ImportReport:
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
        mark = clock.perf_counter()
        # Before taking a connection of our own: the people service takes one too.
        by_id_number = self._people.find_by_id_numbers(
            community_id, [r.id_number for r in sheet.rows if r.id_number is not None]
        )
        with self._pool.connection() as conn:
            if not records_sql.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            if dry_run:
                checked = self._check(conn, community_id, sheet, by_id_number, actor_id, importing=False)
                times["check"] = clock.perf_counter() - mark
                note("check", len(sheet.rows), len(sheet.rows))
                _finish(report, sheet, checked)
            else:
                try:
                    self._import(conn, community_id, sheet, by_id_number, actor_id, report, note, mark)
                except BaseException:
                    conn.rollback()
                    raise
        if dry_run or report.problems:
            self._log("sheet checked" if dry_run else "sheet refused", community_id, actor_id, report)
        else:
            self._log("sheet imported", community_id, actor_id, report)
        return report

    # ---------------------------------------------------------------------------------- checks

    def _check(
        self,
        conn: Conn,
        community_id: int,
        sheet: Sheet,
        by_id_number: dict[str, uuid.UUID],
        actor_id: uuid.UUID,
        *,
        importing: bool,
    ) -> _Checked:
        """Resolve and check every row against the community and the ledger: the rows without
        problems, split into those not imported before (with the credit each would get) and those
        that were; overlaps with other records are problems of their rows.

        Everything is read first, for every volunteer, activity and date the sheet names (a
        superset of those its good rows need), and the rows are then checked in Python. When
        ``importing`` (in the import's transaction, under its lock), the server opens the
        volunteers' missing accounts meanwhile: a sheet with problems is rolled back with them,
        and in a sheet without any, the volunteers named are exactly those of its rows."""
        rows = sheet.rows
        persons = list({*by_id_number.values(), *(r.person_id for r in rows if r.person_id)})
        activities = sql.activities(
            conn,
            community_id,
            list({r.activity_id for r in rows if r.activity_id}),
            list({r.activity for r in rows if r.activity}),
        )
        person_erased = sql.person_states(conn, community_id, persons)
        days = {r.service_date for r in rows if r.service_date is not None}
        rules = {day: posting.rules_on(conn, community_id, day) for day in days}
        known = plan.Known(
            community_id=community_id,
            actor_id=actor_id,
            today=self._clock().astimezone(CHINA_TZ).date(),
            by_id_number=by_id_number,
            person_erased=person_erased,
            activities=activities,
            rules_on=rules.__getitem__,
        )
        existing: list[sql.ExistingRecord] = []
        totals = sql.PostedTotals({}, {}, {})
        coins: dict[uuid.UUID, int] = {}
        # A row dated outside every activity it could name has a problem whatever the ledger holds.
        dated = [d for d in days if any(a.start_date <= d <= a.end_date for a in activities)]
        if persons and dated:
            existing = sql.records_on(conn, community_id, persons, min(dated), max(dated))
            activity_ids = [a.activity_id for a in activities]
            totals = sql.posted_totals(conn, community_id, persons, activity_ids, dated)
            coins = sql.coin_balances(conn, community_id, persons)
        with conn.pipeline():
            if importing:
                live = [p for p, erased in person_erased.items() if not erased]
                self._open_accounts(conn, community_id, live)
            ready = plan.resolve(rows, sheet.headers, known)
            plan.clashes_in_sheet(ready, sheet.headers)
            good = [r for r in ready if not r.sheet.problems]
            new, done = plan.against_records(good, existing, sheet.headers)
            return _Checked(new, done, plan.plan_rows(new, totals, coins))

    # ---------------------------------------------------------------------------------- import

    def _import(
        self,
        conn: Conn,
        community_id: int,
        sheet: Sheet,
        by_id_number: dict[str, uuid.UUID],
        actor_id: uuid.UUID,
        report: ImportReport,
        note: Progress,
        mark: float,
    ) -> None:
        """Check and write the sheet in one transaction on ``conn``, under the community's import
        lock: nothing posted meanwhile can make the check stale."""
        posting_sql.lock_community_for_import(conn, community_id)
        checked = self._check(conn, community_id, sheet, by_id_number, actor_id, importing=True)
        report.seconds["check"] = clock.perf_counter() - mark
        note("check", len(sheet.rows), len(sheet.rows))
        if _finish(report, sheet, checked) or not checked.new:
            conn.rollback()
            report.committed = not report.problems
            return
        note("post", 0, len(checked.new))
        self._write(conn, community_id, checked, actor_id, report)
        report.committed = True
        note("post", len(checked.new), len(checked.new))

    def _open_accounts(self, conn: Conn, community_id: int, persons: list[uuid.UUID]) -> None:
        """Queue the opening of these volunteers' missing hours, points and coin accounts."""
        have = sql.member_accounts(conn, community_id, persons)
        missing = [
            AccountSpec(OwnerKind.PERSON, unit, member_account_flags(unit), owner_id=p)
            for p in persons
            for unit in posting.MEMBER_UNITS
            if unit not in have.get(p, {})
        ]
        self._communities.open_missing(conn, community_id, missing)

    def _write(
        self, conn: Conn, community_id: int, checked: _Checked, actor_id: uuid.UUID, report: ImportReport
    ) -> None:
        mark = clock.perf_counter()
        rows = checked.new
        used = sql.used_keys(conn, community_id, [posting.record_key(r.record_id) for r in rows])
        assert not used, "an import key was used without its record (keys derive from new record ids)"
        out = rows_out.Output(community_id, rows, checked.plans, actor_id, self._clock())
        # Each chunk is built while the server inserts the one sent before it.
        sql.copy_records(conn, (out.records(start) for start in out.chunks))
        report.seconds["records"] = clock.perf_counter() - mark
        mark = clock.perf_counter()
        requests = rows_out.Requests(out, self._accounts(conn, community_id, rows))
        events: list[Cur] = []

        def insert_events(conn: Conn) -> None:
            prefix = uuid7_series_prefix()
            events.append(
                sql.insert_events(
                    conn, community_id, prefix, [r.record_id for r in rows], [r.sheet.row for r in rows]
                )
            )

        # In this transaction: the records, their events and their transfers commit together. The
        # server derives the events while the batch checks the transfers.
        if requests:
            result = batch.write_batch(conn, requests, clock=self._clock_us, before=insert_events)
            assert result.skipped == 0 and result.posted == len(requests)
        else:
            insert_events(conn)
        assert events[0].rowcount == sql.EVENTS_PER_RECORD * len(rows)
        conn.commit()
        report.transfers = len(requests)
        report.postings = sum(len(q.postings) for q in requests)
        report.seconds["batch"] = clock.perf_counter() - mark

    def _accounts(
        self, conn: Conn, community_id: int, rows: list[plan.ReadyRow]
    ) -> dict[uuid.UUID, CreditAccounts]:
        """The accounts the rows' transfers touch, by volunteer (all open by now)."""
        persons = list({r.person_id for r in rows})
        mine = sql.member_accounts(conn, community_id, persons)
        system = posting_sql.system_accounts(conn, community_id)
        return {p: posting.accounts_from(p, mine.get(p, {}), system) for p in persons}

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


@dataclass(frozen=True, slots=True)
class _Checked:
    """The rows without problems, checked against the ledger."""

    new: list[plan.ReadyRow]  # rows not imported before
    done: list[plan.ReadyRow]  # rows whose record exists
    plans: list[CreditPlan]  # the credit of each new row


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    pass


def _finish(report: ImportReport, sheet: Sheet, checked: _Checked) -> bool:
    """Fill in the report's findings; True if the sheet has problems."""
    problems = sheet.problems + [p for r in sheet.rows for p in r.problems]
    report.problems = sorted(problems, key=lambda p: (p.row, p.column or "", p.code))
    report.problem_rows = len({p.row for r in sheet.rows for p in r.problems})
    report.ready_rows = len(checked.new)
    report.already_imported_rows = len(checked.done)
    plans = checked.plans
    report.credited_minutes = sum(p.credited_minutes for p in plans)
    report.credited_points = sum(p.credited_points for p in plans)
    report.credited_coin_minutes = sum(p.credited_coin_minutes for p in plans)
    report.pool_coin_minutes = sum(p.pool_coin_minutes for p in plans)
    return bool(report.problems)
