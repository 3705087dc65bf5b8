"""Service records (志愿服务记录): create, submit, verify, post, reject, override a deadline; read.

``draft → submitted → verified → posted | rejected`` (ledger/domain/service_records.py). Every
step is one transaction that locks the record row first, so two people acting on one record take
turns and the second sees the first's outcome: verifying or posting twice posts once, and two
verifiers racing on one record post it exactly once. Posting credits hours, a points lot and time
coins through the ledger (ledger/services/service_posting.py) by the rule settings in force on
the service date. Each step is also written to ``service_record_event`` with its actor.

Logs carry ids only. Who may call which step (social worker, activity leader, admin) is the API's
business; this layer enforces what holds whoever calls: the verifier is not the recorder, a late
record needs an override, a posted record changes only by a correction.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.service_credit import CHINA_TZ, star_rating
from ledger.domain.service_records import (
    ActivityFields,
    RecordAction,
    RecordState,
    check_deadline,
    check_not_recorder,
    check_place_and_content,
    check_reason,
    check_service_date,
    next_state,
    validate_service_time,
)
from ledger.domain.units import Unit
from ledger.domain.workdays import recording_deadline
from ledger.services import service_posting as posting
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.store import service_posting_repo as posting_sql
from ledger.store import service_records_repo as sql
from ledger.store.db import Conn
from ledger.store.service_records_repo import EventRow, RecordRow

log = logging.getLogger("vledger.service_records")
MAX_PAGE = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class StarView:
    """A volunteer's star rating (星级) from cumulative service minutes, by the settings of ``on``."""

    person_id: uuid.UUID
    total_minutes: int
    stars: int
    settings_version: int


class ServiceRecords:
    """Use cases over a pool of runtime-role connections. Thread-safe; share one per process.

    A posting holds its record's connection while the ledger writes on another one from its own
    pool: give the ledger a pool of its own, or size a shared pool for two connections per
    concurrent posting.
    """

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        ledger: Ledger,
        communities: Communities,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._ledger = ledger
        self._communities = communities
        self._clock = clock

    def today(self) -> date:
        return self._clock().astimezone(CHINA_TZ).date()

    # ----------------------------------------------------------------------------------- writes

    def create(
        self,
        community_id: int,
        *,
        activity_id: uuid.UUID,
        person_id: uuid.UUID,
        service_date: date,
        start_time: time,
        end_time: time,
        actor_id: uuid.UUID,
        place: str | None = None,
        content: str | None = None,
    ) -> RecordRow:
        """Record one volunteer's service on one date of an activity, as a draft.

        Place and content default to the activity's. The recording deadline is fixed now: the
        settings in force on the service date say how many working days after the activity's end,
        on which calendar. Checks, in precedence order: the times, place and content
        (INVALID_FIELD, NON_CANONICAL_TEXT); COMMUNITY_NOT_FOUND, PERSON_NOT_FOUND,
        ACTIVITY_NOT_FOUND; the service date within the activity and not after today
        (INVALID_FIELD); PERSON_ERASED;
        CALENDAR_NOT_COVERED when the deadline falls outside the official calendar's years.
        """
        served = validate_service_time(start_time, end_time)
        check_place_and_content(place, content)
        with self._pool.connection() as conn:
            if not sql.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            erased = sql.person_state(conn, community_id, person_id)
            if erased is None:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
            activity = sql.get_activity(conn, community_id, activity_id)
            if activity is None:
                raise LedgerError(ErrorCode.ACTIVITY_NOT_FOUND, activity_id=str(activity_id))
            fields = ActivityFields(
                activity.name,
                activity.start_date,
                activity.end_date,
                activity.place,
                activity.content,
                activity.organising_unit,
            )
            day = check_service_date(service_date, fields, self.today())
            if erased:
                raise LedgerError(ErrorCode.PERSON_ERASED, person_id=str(person_id))
            rules = posting.rules_on(conn, community_id, day)
            deadline = recording_deadline(
                activity.end_date, rules.recording_deadline_working_days, rules.working_day_calendar
            )
            now = self._clock()
            new = sql.NewRecord(
                record_id=uuid7(),
                activity_id=activity_id,
                person_id=person_id,
                service_date=day,
                start_time=served.start,
                end_time=served.end,
                place=activity.place if place is None else place,
                content=activity.content if content is None else content,
                served_minutes=served.served_minutes,
                deadline=deadline,
                created_by=actor_id,
                created_at=now,
            )
            sql.insert_record(conn, community_id, new)
            sql.record_event(conn, community_id, new.record_id, "created", actor_id, now)
            row = sql.get_record(conn, community_id, new.record_id)
        assert row is not None
        self._log("service record created", community_id, row.record_id, actor_id)
        return row

    def submit(self, community_id: int, record_id: uuid.UUID, *, actor_id: uuid.UUID) -> RecordRow:
        """draft → submitted. Submitting again by the same actor returns the record unchanged."""
        with self._pool.connection() as conn:
            row = self._locked(conn, community_id, record_id)
            if row.state is not RecordState.DRAFT and row.submitted_by == actor_id:
                return row
            next_state(row.state, RecordAction.SUBMIT)
            now = self._clock()
            sql.set_submitted(conn, community_id, record_id, actor_id, now)
            sql.record_event(conn, community_id, record_id, "submitted", actor_id, now)
            row = self._reread(conn, community_id, record_id)
        self._log("service record submitted", community_id, record_id, actor_id)
        return row

    def verify(
        self, community_id: int, record_id: uuid.UUID, *, verifier_id: uuid.UUID, post: bool = True
    ) -> RecordRow:
        """submitted → verified, and (``post``) → posted in the same transaction.

        The verifier must be neither the record's creator nor its submitter (VERIFIER_IS_RECORDER).
        With ``post``, a record past its deadline without an override fails with RECORDING_OVERDUE
        and nothing changes. The same verifier verifying again gets the record as it is (posted
        once); another verifier of a verified or posted record gets INVALID_STATE_TRANSITION.
        """
        self._ensure_accounts(community_id, record_id)
        with self._pool.connection() as conn:
            row = self._locked(conn, community_id, record_id)
            done = row.state in (RecordState.VERIFIED, RecordState.POSTED)
            replay = done and row.verified_by == verifier_id
            if replay and (row.state is RecordState.POSTED or not post):
                return row
            if not replay:
                next_state(row.state, RecordAction.VERIFY)
                check_not_recorder(verifier_id, (row.created_by, row.submitted_by))
                if post:
                    # Refuse before verifying, so that an overdue record is left as it was.
                    check_deadline(self.today(), row.deadline, overridden=row.override_at is not None)
                now = self._clock()
                sql.set_verified(conn, community_id, record_id, verifier_id, now)
                sql.record_event(conn, community_id, record_id, "verified", verifier_id, now)
            if post:
                self._post_locked(conn, community_id, row, verifier_id)
            row = self._reread(conn, community_id, record_id)
        self._log("service record verified", community_id, record_id, verifier_id)
        return row

    def post(self, community_id: int, record_id: uuid.UUID, *, actor_id: uuid.UUID) -> RecordRow:
        """verified → posted (for records verified with ``post=False``). Posting a posted record
        returns it unchanged; it is credited once."""
        self._ensure_accounts(community_id, record_id)
        with self._pool.connection() as conn:
            row = self._locked(conn, community_id, record_id)
            if row.state is RecordState.POSTED:
                return row
            next_state(row.state, RecordAction.POST)
            self._post_locked(conn, community_id, row, actor_id)
            row = self._reread(conn, community_id, record_id)
        self._log("service record posted", community_id, record_id, actor_id)
        return row

    def reject(
        self, community_id: int, record_id: uuid.UUID, *, actor_id: uuid.UUID, reason: str
    ) -> RecordRow:
        """submitted → rejected, with a reason; a rejected record never posts. Whoever rejects must
        not be the recorder (VERIFIER_IS_RECORDER). Rejecting again by the same actor is a no-op."""
        reason = check_reason(reason)
        with self._pool.connection() as conn:
            row = self._locked(conn, community_id, record_id)
            if row.state is RecordState.REJECTED and row.rejected_by == actor_id:
                return row
            next_state(row.state, RecordAction.REJECT)
            check_not_recorder(actor_id, (row.created_by, row.submitted_by))
            now = self._clock()
            sql.set_rejected(conn, community_id, record_id, actor_id, now, reason)
            sql.record_event(conn, community_id, record_id, "rejected", actor_id, now)
            row = self._reread(conn, community_id, record_id)
        self._log("service record rejected", community_id, record_id, actor_id)
        return row

    def override_deadline(
        self, community_id: int, record_id: uuid.UUID, *, actor_id: uuid.UUID, reason: str
    ) -> RecordRow:
        """An admin's override (art 11): the record may post after its deadline, and will be flagged
        OVERDUE if it does. Granted once, before posting; granting it again changes nothing."""
        reason = check_reason(reason)
        with self._pool.connection() as conn:
            row = self._locked(conn, community_id, record_id)
            next_state(row.state, RecordAction.OVERRIDE_DEADLINE)
            if row.override_at is not None:
                return row
            now = self._clock()
            sql.set_override(conn, community_id, record_id, actor_id, now, reason)
            detail: dict[str, object] = {"deadline": row.deadline.isoformat()}
            sql.record_event(conn, community_id, record_id, "deadline_overridden", actor_id, now, detail)
            row = self._reread(conn, community_id, record_id)
        self._log("service record deadline overridden", community_id, record_id, actor_id)
        return row

    # ------------------------------------------------------------------------------------ reads

    def get(self, community_id: int, record_id: uuid.UUID) -> RecordRow:
        with self._pool.connection() as conn:
            row = sql.get_record(conn, community_id, record_id)
        if row is None:
            raise LedgerError(ErrorCode.SERVICE_RECORD_NOT_FOUND, record_id=str(record_id))
        return row

    def list(
        self,
        community_id: int,
        *,
        person_id: uuid.UUID | None = None,
        activity_id: uuid.UUID | None = None,
        state: RecordState | None = None,
        after: uuid.UUID | None = None,
        limit: int = 50,
    ) -> builtins.list[RecordRow]:
        """A page of records in id order, optionally of one volunteer, one activity, one state."""
        if not 1 <= limit <= MAX_PAGE:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="limit", max=MAX_PAGE)
        with self._pool.connection() as conn:
            return sql.list_records(
                conn,
                community_id,
                person_id=person_id,
                activity_id=activity_id,
                state=state,
                after=after,
                limit=limit,
            )

    def history(self, community_id: int, record_id: uuid.UUID) -> builtins.list[EventRow]:
        """Every step of the record with its actor, oldest first."""
        with self._pool.connection() as conn:
            if sql.get_record(conn, community_id, record_id) is None:
                raise LedgerError(ErrorCode.SERVICE_RECORD_NOT_FOUND, record_id=str(record_id))
            return sql.events(conn, community_id, record_id)

    def stars(self, community_id: int, person_id: uuid.UUID, *, on: date | None = None) -> StarView:
        """Stars from the volunteer's service-hours balance (posted minutes, corrections included),
        by the thresholds in force on ``on`` (default: today)."""
        if on is not None and (not isinstance(on, date) or isinstance(on, datetime)):
            raise LedgerError(ErrorCode.INVALID_FIELD, field="on")
        day = self.today() if on is None else on
        with self._pool.connection() as conn:
            if sql.person_state(conn, community_id, person_id) is None:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
            rules = posting.rules_on(conn, community_id, day)
            account = posting_sql.person_accounts(conn, community_id, person_id).get(Unit.SERVICE_MINUTES)
            total = 0 if account is None else posting_sql.account_balance(conn, community_id, account)
        return StarView(person_id, total, star_rating(total, rules.star_thresholds_hours), rules.version)

    # --------------------------------------------------------------------------------- helpers

    def _post_locked(self, conn: Conn, community_id: int, row: RecordRow, actor_id: uuid.UUID) -> None:
        """Credit a locked, verified record through the ledger and mark it posted (same transaction)."""
        overdue = check_deadline(self.today(), row.deadline, overridden=row.override_at is not None)
        posting_sql.lock_volunteer(conn, community_id, row.person_id)
        key = posting.record_key(row.record_id)
        earlier = posting.adopt(conn, community_id, key, actor_id)
        if earlier is not None:
            credited, overdue, actor_id = earlier.credited, earlier.overdue, earlier.actor_id
        else:
            rules = posting.rules_on(conn, community_id, row.service_date)
            accounts = posting.credit_accounts(conn, community_id, row.person_id)
            plan = posting.plan_for(conn, community_id, row, rules, accounts, row.served_minutes)
            credited = posting.post_plan(
                self._ledger,
                community_id,
                key=key,
                record=row,
                plan=plan,
                rules=rules,
                accounts=accounts,
                actor_id=actor_id,
                overdue=overdue,
                start=row.start_time,
            )
        now = self._clock()
        sql.set_posted(
            conn, community_id, row.record_id, actor=actor_id, at=now, overdue=overdue, credited=credited
        )
        detail = {**posting.credited_detail(credited), "overdue": overdue}
        sql.record_event(conn, community_id, row.record_id, "posted", actor_id, now, detail)

    def _ensure_accounts(self, community_id: int, record_id: uuid.UUID) -> None:
        """Open the volunteer's accounts before the record's transaction, if it may post (a record
        that cannot post fails on its state under the lock instead)."""
        row = self.get(community_id, record_id)
        if row.state in (RecordState.SUBMITTED, RecordState.VERIFIED):
            posting.ensure_member_accounts(self._pool, self._communities, community_id, row.person_id)

    def _locked(self, conn: Conn, community_id: int, record_id: uuid.UUID) -> RecordRow:
        row = sql.get_record(conn, community_id, record_id, lock=True)
        if row is None:
            raise LedgerError(ErrorCode.SERVICE_RECORD_NOT_FOUND, record_id=str(record_id))
        return row

    def _reread(self, conn: Conn, community_id: int, record_id: uuid.UUID) -> RecordRow:
        row = sql.get_record(conn, community_id, record_id)
        assert row is not None
        return row

    def _log(self, message: str, community_id: int, record_id: uuid.UUID, actor_id: uuid.UUID) -> None:
        log.info(
            message,
            extra={"community_id": community_id, "record_id": str(record_id), "actor_id": str(actor_id)},
        )
