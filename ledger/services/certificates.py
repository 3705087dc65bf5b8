"""Volunteer service certificates (志愿服务证明, arts 14–17): issue, read, bundle, supersede.

A certificate states a volunteer's posted service hours (all, or those of a date range), the
activities' content, the recording organisations, its number and issue date, and comes with a
**bundle** (``ledger.audit.certificate_bundle``): the audit-log leaves of every transfer behind
those hours, their RFC 9162 inclusion proofs and the signed, witnessed checkpoint they lead to,
so that anyone with the community's public key can check it offline. A certificate is issued
only against a signed checkpoint that already covers all its transfers (NOT_YET_CHECKPOINTED
otherwise: try again after the next checkpoint).

Certificates are append-only. When a correction of a covered record is accepted, the correction
inserts a supersession (``certificates_repo.supersede_covering``, in the correction's own
transaction); the certificate then reads as superseded, and by the next certificate that covers
the record again, once one is issued.

The masked identity (张*三, 3201**********1234; never a phone number) is rendered from the
encrypted profile whenever a certificate is shown, never stored, logged or put in the bundle.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.audit.certificate_bundle import (
    STATUS_SUPERSEDED,
    STATUS_VALID,
    BundleLeaf,
    CertificateBody,
    RecordEntry,
    build_bundle,
    encode_bundle,
    with_status,
)
from ledger.audit.checkpoint import parse_checkpoint_body
from ledger.audit.leaf import decode_leaf
from ledger.audit.merkle import inclusion_proof, inclusion_proof_nodes
from ledger.audit.merkle_proofs import verify_inclusion
from ledger.audit.note import parse_note
from ledger.domain.certificates import Period, new_number, parse_number
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.units import Unit
from ledger.services.certificate_views import CertificateView, CertifiedRecord, MaskedIdentity, Status
from ledger.services.people import People
from ledger.store import audit_repo
from ledger.store import certificates_repo as sql
from ledger.store import service_posting_repo as posting_sql
from ledger.store import service_records_repo as records_sql
from ledger.store.certificates_repo import CertificateRow, CoveredRow
from ledger.store.db import Conn

__all__ = ["Certificates"]

log = logging.getLogger("vledger.certificates")
MAX_LIST = 200
_NUMBER_TRIES = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


class Certificates:
    """Use cases over a pool of runtime-role connections. Thread-safe; share one per process."""

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        people: People,
        *,
        public_base_url: str = "http://127.0.0.1:8000",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._people = people
        self._base = public_base_url.rstrip("/")
        self._clock = clock

    def verify_url(self, number: str) -> str:
        """The public verification page the printed QR code leads to."""
        return f"{self._base}/verify/certificates/{number}"

    # ----------------------------------------------------------------------------------- issue

    def issue(
        self, community_id: int, person_id: uuid.UUID, *, actor_id: uuid.UUID, period: Period | None = None
    ) -> CertificateView:
        """Issue a certificate of the volunteer's posted service (in ``period``, by service date).

        Checks, in precedence order: the period (INVALID_FIELD); COMMUNITY_NOT_FOUND,
        PERSON_NOT_FOUND; PERSON_ERASED; NOT_YET_CHECKPOINTED when no signed checkpoint covers
        every transfer yet; NO_SERVICE_TO_CERTIFY when no posted record credited any minutes.
        """
        period = period or Period()
        now = self._clock()
        today = now.astimezone(CHINA_TZ).date()
        period.check_not_after(today)
        with self._pool.connection() as conn:
            found = sql.community(conn, community_id)
            if found is None:
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            erased = records_sql.person_state(conn, community_id, person_id)
            if erased is None:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
            if erased:
                raise LedgerError(ErrorCode.PERSON_ERASED, person_id=str(person_id))
            # Serialised with postings and corrections of this volunteer (see certificates_repo).
            posting_sql.lock_volunteer(conn, community_id, person_id)
            covered = [
                r
                for r in sql.covered(conn, community_id, person_id, period.start, period.end)
                if r.transfer_id
            ]
            checkpoint = sql.latest_checkpoint(conn, community_id)
            needed = 1 + max((r.leaf_index for r in covered if r.leaf_index is not None), default=-1)
            if covered and (checkpoint is None or needed > checkpoint[0]):
                signed = 0 if checkpoint is None else checkpoint[0]
                raise LedgerError(ErrorCode.NOT_YET_CHECKPOINTED, tree_size=signed, needed_size=needed)
            if not covered or checkpoint is None:
                raise LedgerError(ErrorCode.NO_SERVICE_TO_CERTIFY, person_id=str(person_id))
            account = posting_sql.person_accounts(conn, community_id, person_id)[Unit.SERVICE_MINUTES]
            leaves = self._leaves(conn, community_id, covered, checkpoint)
            records = _records(covered, leaves, str(account))
            name, origin = found
            template = CertificateBody(
                "", community_id, origin, name, today, now, period.start, period.end, str(account), records
            )
            row, data = self._insert(
                conn, template, person_id=person_id, actor_id=actor_id, checkpoint=checkpoint, leaves=leaves
            )
        log.info(
            "certificate issued",
            extra={"community_id": community_id, "number": row.number, "actor_id": str(actor_id)},
        )
        return self._view(community_id, row, data, name)

    def _leaves(
        self, conn: Conn, community_id: int, covered: list[CoveredRow], checkpoint: tuple[int, bytes]
    ) -> list[BundleLeaf]:
        """The covered transfers' leaves with inclusion proofs at the checkpoint, each checked
        against the signed root before it goes into a bundle."""
        size, note = checkpoint
        root = parse_checkpoint_body(parse_note(note)[0]).root_hash
        indices = sorted({r.leaf_index for r in covered if r.leaf_index is not None})
        assert len(indices) == len({r.transfer_id for r in covered}), "every transfer has one leaf"
        stored = sql.leaves(conn, community_id, indices)
        wanted = sorted({n for i in indices for n in inclusion_proof_nodes(i, size)})
        nodes = audit_repo.nodes(conn, community_id, wanted)
        out = []
        for index in indices:
            leaf, digest = stored[index]
            proof = inclusion_proof(index, size, lambda level, i: nodes[(level, i)])
            verify_inclusion(index, size, digest, proof, root)
            out.append(BundleLeaf(index, leaf, digest, tuple(proof)))
        return out

    def _insert(
        self,
        conn: Conn,
        template: CertificateBody,
        *,
        person_id: uuid.UUID,
        actor_id: uuid.UUID,
        checkpoint: tuple[int, bytes],
        leaves: list[BundleLeaf],
    ) -> tuple[CertificateRow, bytes]:
        """Store the certificate under a fresh number (a number already taken, one chance in 2^60 per
        certificate, is drawn again)."""
        for attempt in range(_NUMBER_TRIES):
            number = new_number(template.community_id, template.issued_on.year)
            cert = replace(template, number=number)
            data = encode_bundle(build_bundle(cert, checkpoint[1], leaves))
            row = CertificateRow(
                number=number,
                person_id=person_id,
                account_id=uuid.UUID(cert.account_id),
                period_from=cert.period_from,
                period_to=cert.period_to,
                record_ids=[uuid.UUID(r.record_id) for r in cert.records],
                transfer_ids=[uuid.UUID(t) for r in cert.records for t in r.transfer_ids],
                total_minutes=cert.total_minutes,
                issued_on=cert.issued_on,
                issued_at=cert.issued_at,
                issued_by=actor_id,
                checkpoint_size=checkpoint[0],
                bundle_sha256=hashlib.sha256(data).digest(),
            )
            try:
                with conn.transaction():  # a savepoint: a taken number is drawn again, not fatal
                    sql.insert(conn, template.community_id, row, data)
            except pg_errors.UniqueViolation:
                if attempt + 1 == _NUMBER_TRIES:
                    raise
                continue
            return row, data
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------ reads

    def get(self, community_id: int, number: str) -> CertificateView:
        with self._pool.connection() as conn:
            row, data, name = self._row(conn, community_id, number)
        return self._view(community_id, row, data, name)

    def of_person(self, community_id: int, person_id: uuid.UUID) -> builtins.list[CertificateView]:
        """The volunteer's certificates, newest first (at most MAX_LIST), without their records."""
        with self._pool.connection() as conn:
            if records_sql.person_state(conn, community_id, person_id) is None:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
            found = sql.community(conn, community_id)
            assert found is not None
            rows = sql.of_person(conn, community_id, person_id, MAX_LIST)
            statuses = [self._status(conn, community_id, r) for r in rows]
        identity = self._identity(community_id, person_id)
        return [
            self._make(community_id, r, s, identity, found[0], ())
            for r, s in zip(rows, statuses, strict=True)
        ]

    def public(self, number: str) -> CertificateView:
        """A certificate by its number alone (the public verification page): CERTIFICATE_NOT_FOUND for
        a malformed number or one that names no community, as for an unknown one."""
        parsed = parse_number(number)
        if parsed is None:
            raise LedgerError(ErrorCode.CERTIFICATE_NOT_FOUND)
        return self.get(parsed.community_id, parsed.text)

    def bundle(self, community_id: int, number: str) -> bytes:
        """The bundle as served: the bytes issued, with the current status added."""
        with self._pool.connection() as conn:
            row, data, _ = self._row(conn, community_id, number)
            status = self._status(conn, community_id, row)
        return with_status(json.loads(data), status.as_json(self._clock()))

    # --------------------------------------------------------------------------------- helpers

    def _row(self, conn: Conn, community_id: int, number: str) -> tuple[CertificateRow, bytes, str]:
        row = sql.get(conn, community_id, number)
        data = sql.bundle(conn, community_id, number)
        found = sql.community(conn, community_id)
        if row is None or data is None or found is None:
            raise LedgerError(ErrorCode.CERTIFICATE_NOT_FOUND, number=number)
        assert hashlib.sha256(data).digest() == row.bundle_sha256  # also a CHECK constraint
        return row, data, found[0]

    def _status(self, conn: Conn, community_id: int, row: CertificateRow) -> Status:
        hit = sql.supersession(conn, community_id, row.number)
        if hit is None:
            return Status(STATUS_VALID)
        replaced_by = sql.replacement(conn, community_id, row.person_id, hit.record_id, hit.superseded_at)
        return Status(STATUS_SUPERSEDED, hit.superseded_at, hit.correction_id, replaced_by)

    def _identity(self, community_id: int, person_id: uuid.UUID) -> MaskedIdentity:
        view = self._people.get(community_id, person_id, full=True)
        return MaskedIdentity.of(view.profile)

    def _view(self, community_id: int, row: CertificateRow, data: bytes, issuer: str) -> CertificateView:
        with self._pool.connection() as conn:
            status = self._status(conn, community_id, row)
        records = tuple(CertifiedRecord.of(r) for r in json.loads(data)["certificate"]["records"])
        identity = self._identity(community_id, row.person_id)
        return self._make(community_id, row, status, identity, issuer, records)

    def _make(
        self,
        community_id: int,
        row: CertificateRow,
        status: Status,
        identity: MaskedIdentity,
        issuer: str,
        records: tuple[CertifiedRecord, ...],
    ) -> CertificateView:
        return CertificateView(
            number=row.number,
            community_id=community_id,
            person_id=row.person_id,
            issuer=issuer,
            identity=identity,
            total_minutes=row.total_minutes,
            period_from=row.period_from,
            period_to=row.period_to,
            issued_on=row.issued_on,
            issued_at=row.issued_at,
            issued_by=row.issued_by,
            checkpoint_size=row.checkpoint_size,
            bundle_sha256=row.bundle_sha256.hex(),
            status=status,
            records=records,
            verify_url=self.verify_url(row.number),
        )


def _records(covered: list[CoveredRow], leaves: list[BundleLeaf], account: str) -> tuple[RecordEntry, ...]:
    """The records as certified: each one's minutes are what its transfers posted to the volunteer's
    hours account, read from the leaves (and checked against the record's current credit)."""
    posted: dict[str, int] = {}
    for entry in leaves:
        value = decode_leaf(entry.leaf)
        minutes = sum(
            amount
            for acct, unit, amount in value["postings"]  # type: ignore[attr-defined]
            if acct == account and unit == Unit.SERVICE_MINUTES.value
        )
        posted[str(value["id"])] = minutes
    by_record: dict[uuid.UUID, list[CoveredRow]] = {}
    for row in covered:
        by_record.setdefault(row.record_id, []).append(row)
    out = []
    for rows in by_record.values():
        first = rows[0]
        transfers = tuple(str(r.transfer_id) for r in rows)
        minutes = sum(posted[t] for t in transfers)
        assert minutes == first.credited_minutes, "a record's transfers add up to its credit"
        out.append(
            RecordEntry(
                str(first.record_id),
                first.service_date,
                first.activity,
                first.content,
                first.organising_unit,
                minutes,
                transfers,
            )
        )
    return tuple(out)
