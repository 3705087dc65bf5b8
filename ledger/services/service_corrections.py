"""Corrections of posted service records (arts 12–13): a volunteer files, staff accept or reject.

A posted record is never edited. Accepting a correction reverses the record's current transfer
(the ledger's ``reverse``: hours, the points lot and the coins go back exactly where they came
from) and posts a new transfer for the corrected service time, planned by the settings version the
record was posted under and the caps as they stand without the record. The record row then points
at the new transfer and shows the new amounts; the correction keeps both transfer ids.

The reversal can be refused by the ledger (INSUFFICIENT_FUNDS: the points were spent meanwhile;
the ledger never overdraws to correct). The correction then stays filed, the attempt counter moves
on so that the next attempt uses fresh idempotency keys, and the error is raised. An attempt cut
short after the reversal resumes from it: the reversal is found in the ledger, not made twice.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, time

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.service_records import (
    CorrectionState,
    RecordAction,
    check_reason,
    next_correction_state,
    next_state,
    validate_service_time,
)
from ledger.domain.transfers import ReverseRequest
from ledger.services import service_posting as posting
from ledger.services.ledger import Ledger
from ledger.store import certificates_repo as certificates_sql
from ledger.store import service_corrections_repo as sql
from ledger.store import service_posting_repo as posting_sql
from ledger.store import service_records_repo as records_sql
from ledger.store.db import Conn
from ledger.store.service_corrections_repo import CorrectionRow
from ledger.store.service_records_repo import Credited, RecordRow

log = logging.getLogger("vledger.service_corrections")
MAX_PAGE = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


class _LedgerRefusedError(Exception):
    """The ledger refused a write of an acceptance attempt (carried out of the rolled-back transaction)."""

    def __init__(self, error: LedgerError, attempt: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempt = attempt


class ServiceCorrections:
    """Use cases over a pool of runtime-role connections. Thread-safe; share one per process.

    Like ServiceRecords, an acceptance holds its connection while the ledger writes on another.
    """

    def __init__(
        self, pool: ConnectionPool[Conn], ledger: Ledger, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._pool = pool
        self._ledger = ledger
        self._clock = clock

    def file(
        self,
        community_id: int,
        record_id: uuid.UUID,
        *,
        start_time: time,
        end_time: time,
        reason: str,
        actor_id: uuid.UUID,
    ) -> CorrectionRow:
        """File a correction of a posted record's service time (same date). Checks, in precedence
        order: times and reason (INVALID_FIELD, NON_CANONICAL_TEXT), SERVICE_RECORD_NOT_FOUND, the
        record posted (INVALID_STATE_TRANSITION), no other correction undecided (CORRECTION_PENDING)."""
        served = validate_service_time(start_time, end_time)
        reason = check_reason(reason)
        with self._pool.connection() as conn:
            record = self._locked_record(conn, community_id, record_id)
            next_state(record.state, RecordAction.CORRECT)
            if sql.open_exists(conn, community_id, record_id):
                raise LedgerError(ErrorCode.CORRECTION_PENDING, record_id=str(record_id))
            now = self._clock()
            new = sql.NewCorrection(
                uuid7(), record_id, served.start, served.end, served.served_minutes, reason, actor_id, now
            )
            try:
                sql.insert(conn, community_id, new)
            except pg_errors.UniqueViolation as exc:  # the record lock makes this a backstop only
                if exc.diag.constraint_name != sql.OPEN_UNIQUE:
                    raise
                raise LedgerError(ErrorCode.CORRECTION_PENDING, record_id=str(record_id)) from None
            detail: dict[str, object] = {
                "correction_id": str(new.correction_id),
                "served_minutes": new.served_minutes,
            }
            records_sql.record_event(conn, community_id, record_id, "correction_filed", actor_id, now, detail)
            row = sql.get(conn, community_id, new.correction_id)
        assert row is not None
        self._log("correction filed", community_id, new.correction_id, actor_id)
        return row

    def accept(self, community_id: int, correction_id: uuid.UUID, *, actor_id: uuid.UUID) -> CorrectionRow:
        """Reverse the record's transfer and post the corrected one. Accepting again by the same
        actor returns the correction as it is; anything the ledger refuses leaves it filed."""
        try:
            row = self._accept(community_id, correction_id, actor_id)
        except _LedgerRefusedError as refused:
            with self._pool.connection() as conn:
                sql.next_attempt(conn, community_id, correction_id, refused.attempt)
            self._log("correction acceptance refused", community_id, correction_id, actor_id)
            raise refused.error from None
        self._log("correction accepted", community_id, correction_id, actor_id)
        return row

    def reject(
        self, community_id: int, correction_id: uuid.UUID, *, actor_id: uuid.UUID, reason: str
    ) -> CorrectionRow:
        """Decline a correction; a reason is required. The record and the ledger stay as they are."""
        reason = check_reason(reason)
        with self._pool.connection() as conn:
            corr = self._locked(conn, community_id, correction_id)
            if corr.state is CorrectionState.REJECTED and corr.decided_by == actor_id:
                return corr
            next_correction_state(corr.state, accept=False)
            now = self._clock()
            sql.set_rejected(conn, community_id, correction_id, actor=actor_id, at=now, reason=reason)
            detail: dict[str, object] = {"correction_id": str(correction_id)}
            records_sql.record_event(
                conn, community_id, corr.record_id, "correction_rejected", actor_id, now, detail
            )
            row = sql.get(conn, community_id, correction_id)
        assert row is not None
        self._log("correction rejected", community_id, correction_id, actor_id)
        return row

    def get(self, community_id: int, correction_id: uuid.UUID) -> CorrectionRow:
        with self._pool.connection() as conn:
            row = sql.get(conn, community_id, correction_id)
        if row is None:
            raise LedgerError(ErrorCode.CORRECTION_NOT_FOUND, correction_id=str(correction_id))
        return row

    def of_record(self, community_id: int, record_id: uuid.UUID) -> builtins.list[CorrectionRow]:
        """Every correction of a record, oldest first."""
        with self._pool.connection() as conn:
            if records_sql.get_record(conn, community_id, record_id) is None:
                raise LedgerError(ErrorCode.SERVICE_RECORD_NOT_FOUND, record_id=str(record_id))
            return sql.of_record(conn, community_id, record_id)

    def list(
        self,
        community_id: int,
        *,
        person_id: uuid.UUID | None = None,
        record_id: uuid.UUID | None = None,
        state: CorrectionState | None = None,
        after: uuid.UUID | None = None,
        limit: int = 50,
    ) -> builtins.list[CorrectionRow]:
        """A page of corrections in id order, optionally of one volunteer's records, one record or
        one state."""
        if not 1 <= limit <= MAX_PAGE:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="limit", max=MAX_PAGE)
        with self._pool.connection() as conn:
            return sql.list_corrections(
                conn,
                community_id,
                person_id=person_id,
                record_id=record_id,
                state=state,
                after=after,
                limit=limit,
            )

    # --------------------------------------------------------------------------------- helpers

    def _accept(self, community_id: int, correction_id: uuid.UUID, actor_id: uuid.UUID) -> CorrectionRow:
        with self._pool.connection() as conn:
            corr = self._locked(conn, community_id, correction_id)
            if corr.state is CorrectionState.ACCEPTED and corr.decided_by == actor_id:
                return corr
            next_correction_state(corr.state, accept=True)
            record = self._locked_record(conn, community_id, corr.record_id)
            assert record.settings_version is not None  # a correction is filed on a posted record
            posting_sql.lock_volunteer(conn, community_id, record.person_id)
            reversal_id = self._reverse(conn, community_id, corr, record, actor_id)
            credited = self._post_corrected(conn, community_id, corr, record, actor_id)
            now = self._clock()
            sql.set_accepted(
                conn,
                community_id,
                correction_id,
                actor=actor_id,
                at=now,
                reversal_transfer_id=reversal_id,
                new_transfer_id=credited.transfer_id,
                previous_credited_minutes=record.credited_minutes,
                credited_minutes=credited.credited_minutes,
            )
            records_sql.set_corrected(conn, community_id, record.record_id, credited)
            # Certificates that covered the record no longer state its hours: supersede them in this
            # same transaction (ledger/services/certificates.py).
            certificates_sql.supersede_covering(
                conn,
                community_id,
                person_id=record.person_id,
                record_id=record.record_id,
                correction_id=correction_id,
                at=now,
            )
            detail: dict[str, object] = {
                "correction_id": str(correction_id),
                "reversal_transfer_id": None if reversal_id is None else str(reversal_id),
                **posting.credited_detail(credited),
            }
            records_sql.record_event(
                conn, community_id, record.record_id, "correction_accepted", actor_id, now, detail
            )
            row = sql.get(conn, community_id, correction_id)
        assert row is not None
        return row

    def _reverse(
        self, conn: Conn, community_id: int, corr: CorrectionRow, record: RecordRow, actor_id: uuid.UUID
    ) -> uuid.UUID | None:
        """Reverse the record's current transfer, or find the reversal an earlier attempt made."""
        if record.transfer_id is None:  # the record credited nothing: nothing to take back
            return None
        done = posting_sql.reversal_of(conn, community_id, record.transfer_id)
        if done is not None:
            return done
        request = ReverseRequest(
            community_id,
            record.transfer_id,
            f"service-correction:{corr.correction_id}:{corr.attempt}:reverse",
            actor_id=actor_id,
            reason=f"service_correction:{corr.correction_id}",
        )
        try:
            return self._ledger.reverse(request).transfer_id
        except LedgerError as err:
            raise _LedgerRefusedError(err, corr.attempt) from err

    def _post_corrected(
        self, conn: Conn, community_id: int, corr: CorrectionRow, record: RecordRow, actor_id: uuid.UUID
    ) -> Credited:
        assert record.settings_version is not None
        key = f"service-correction:{corr.correction_id}:{corr.attempt}:post"
        earlier = posting.adopt(conn, community_id, key, actor_id)
        if earlier is not None:
            return earlier.credited
        rules = posting.rules_version(conn, community_id, record.settings_version)
        accounts = posting.credit_accounts(conn, community_id, record.person_id)
        # Planned after the reversal committed: the coin balance no longer holds the old credit.
        plan = posting.plan_for(conn, community_id, record, rules, accounts, corr.served_minutes)
        try:
            return posting.post_plan(
                self._ledger,
                community_id,
                key=key,
                record=record,
                plan=plan,
                rules=rules,
                accounts=accounts,
                actor_id=actor_id,
                overdue=record.overdue,
                start=corr.start_time,
                extra={"correction_id": str(corr.correction_id)},
            )
        except LedgerError as err:
            raise _LedgerRefusedError(err, corr.attempt) from err

    def _locked(self, conn: Conn, community_id: int, correction_id: uuid.UUID) -> CorrectionRow:
        row = sql.get(conn, community_id, correction_id, lock=True)
        if row is None:
            raise LedgerError(ErrorCode.CORRECTION_NOT_FOUND, correction_id=str(correction_id))
        return row

    def _locked_record(self, conn: Conn, community_id: int, record_id: uuid.UUID) -> RecordRow:
        row = records_sql.get_record(conn, community_id, record_id, lock=True)
        if row is None:
            raise LedgerError(ErrorCode.SERVICE_RECORD_NOT_FOUND, record_id=str(record_id))
        return row

    def _log(self, message: str, community_id: int, correction_id: uuid.UUID, actor_id: uuid.UUID) -> None:
        log.info(
            message,
            extra={
                "community_id": community_id,
                "correction_id": str(correction_id),
                "actor_id": str(actor_id),
            },
        )
