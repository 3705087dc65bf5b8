"""People: register, read (masked or full), find, update, erase (crypto-shredding) and rotate keys.

Personal fields exist in plaintext only in this process's memory: rows hold a ciphertext under the
person's own data key and keyed blind indexes. Logs and errors carry ids, never personal data.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import NoReturn

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.people import PersonProfile, is_minor, profile_from_json, profile_to_json, validate_profile
from ledger.privacy import (
    DecryptionError,
    Keyring,
    decrypt_profile,
    encrypt_profile,
    id_number_index,
    mask_profile,
    phone_index,
    rewrap_all,
    seal_new_profile,
    unwrap_data_key,
)
from ledger.store import people_repo as sql
from ledger.store.db import Conn

log = logging.getLogger("vledger.people")

# Ages are counted on the calendar of the people concerned (China has no daylight saving time).
CHINA_TZ = timezone(timedelta(hours=8), "CST")
MAX_PAGE = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PersonView:
    """A person as a reader sees it. ``profile`` is None once erased; masked unless read in full."""

    community_id: int
    person_id: uuid.UUID
    profile: PersonProfile | None
    masked: bool
    erased: bool
    consent_entry: bool
    consent_publish: bool
    minor: bool
    guardian_person_id: uuid.UUID | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None


class People:
    """Use cases over a pool of runtime-role connections. Thread-safe; share one per process."""

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        keyring: Keyring,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._keyring = keyring
        self._clock = clock

    # ----------------------------------------------------------------------------------- writes

    def create(
        self,
        community_id: int,
        profile: PersonProfile,
        *,
        consent_entry: bool,
        consent_publish: bool,
        entered_by_self: bool,
        guardian_person_id: uuid.UUID | None = None,
        actor_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Register a person; returns the new pseudonymous person id.

        Checks, in precedence order: the profile (NON_CANONICAL_TEXT, INVALID_FIELD); consent
        (CONSENT_REQUIRED: an organisation needs the person's consent to enter their data); a minor
        without a guardian (GUARDIAN_REQUIRED); the community (COMMUNITY_NOT_FOUND); the guardian,
        who must be a registered adult of the same community (GUARDIAN_REQUIRED); the ID number
        (DUPLICATE_PERSON).
        """
        now = self._clock()
        today = _today(now)
        profile = validate_profile(profile, today=today)
        if not entered_by_self and not consent_entry:
            raise LedgerError(ErrorCode.CONSENT_REQUIRED, field="consent_entry")
        minor = is_minor(profile.birth_date, today)
        if minor and guardian_person_id is None:
            raise LedgerError(ErrorCode.GUARDIAN_REQUIRED, field="guardian_person_id")
        person_id = uuid7()
        sealed = seal_new_profile(self._keyring, community_id, person_id, profile_to_json(profile))
        id_bidx, phone_bidx = self._indexes(profile)
        row = sql.PersonRow(
            community_id=community_id,
            person_id=person_id,
            profile_enc=sealed.profile_enc,
            # Data the person typed in themselves is entered with their consent by definition.
            consent_entry=consent_entry or entered_by_self,
            consent_publish=consent_publish,
            minor=minor,
            guardian_person_id=guardian_person_id,
            created_by=actor_id,
            created_at=now,
            updated_at=now,
            erased_at=None,
            key_id=sealed.key_id,
            wrapped_key=sealed.wrapped_key,
        )
        with self._pool.connection() as conn:
            if not sql.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            if guardian_person_id is not None:
                self._check_guardian(conn, community_id, guardian_person_id, today)
            if id_bidx is not None and sql.find_by_id_number_bidx(conn, community_id, id_bidx) is not None:
                raise LedgerError(ErrorCode.DUPLICATE_PERSON, field="id_number")
            try:
                sql.insert_person(conn, row, id_number_bidx=id_bidx, phone_bidx=phone_bidx)
            except pg_errors.UniqueViolation as exc:
                _raise_duplicate(exc)
            sql.record_event(conn, community_id, person_id, "created", actor_id, now)
        log.info("person created", extra=_ids(community_id, person_id, actor_id))
        return person_id

    def update_profile(
        self,
        community_id: int,
        person_id: uuid.UUID,
        profile: PersonProfile,
        *,
        actor_id: uuid.UUID | None,
    ) -> None:
        """Replace the personal fields: re-encrypted under the person's data key, indexes recomputed."""
        now = self._clock()
        today = _today(now)
        profile = validate_profile(profile, today=today)
        id_bidx, phone_bidx = self._indexes(profile)
        with self._pool.connection() as conn:
            row = self._live_row(conn, community_id, person_id, lock="UPDATE")
            minor = is_minor(profile.birth_date, today)
            if minor and row.guardian_person_id is None:
                raise LedgerError(ErrorCode.GUARDIAN_REQUIRED, field="guardian_person_id")
            if id_bidx is not None:
                other = sql.find_by_id_number_bidx(conn, community_id, id_bidx)
                if other is not None and other != person_id:
                    raise LedgerError(ErrorCode.DUPLICATE_PERSON, field="id_number")
            dek = self._data_key(row)
            try:
                sql.update_profile(
                    conn,
                    community_id,
                    person_id,
                    profile_enc=encrypt_profile(dek, community_id, person_id, profile_to_json(profile)),
                    id_number_bidx=id_bidx,
                    phone_bidx=phone_bidx,
                    minor=minor,
                    updated_at=now,
                )
            except pg_errors.UniqueViolation as exc:
                _raise_duplicate(exc)
            sql.record_event(conn, community_id, person_id, "profile_updated", actor_id, now)
        log.info("person updated", extra=_ids(community_id, person_id, actor_id))

    def update_consent(
        self,
        community_id: int,
        person_id: uuid.UUID,
        *,
        consent_entry: bool | None = None,
        consent_publish: bool | None = None,
        actor_id: uuid.UUID | None,
    ) -> None:
        """Record a consent given or withdrawn; None leaves that consent as it is."""
        now = self._clock()
        with self._pool.connection() as conn:
            row = self._live_row(conn, community_id, person_id, lock="UPDATE")
            sql.update_consent(
                conn,
                community_id,
                person_id,
                consent_entry=row.consent_entry if consent_entry is None else consent_entry,
                consent_publish=row.consent_publish if consent_publish is None else consent_publish,
                updated_at=now,
            )
            sql.record_event(conn, community_id, person_id, "consent_updated", actor_id, now)
        log.info("person consent updated", extra=_ids(community_id, person_id, actor_id))

    def erase(self, community_id: int, person_id: uuid.UUID, *, actor_id: uuid.UUID | None) -> None:
        """Crypto-shred a person: the data key is deleted, so no copy of the ciphertext can be read.

        The row stays (ledger entries and households refer to its pseudonymous id) with erased_at
        set. Erasing an erased person does nothing.
        """
        with self._pool.connection() as conn:
            row = sql.get_person(conn, community_id, person_id, lock="UPDATE")
            if row is None:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
            if row.erased_at is not None:
                return
            now = self._clock()
            sql.erase_person(conn, community_id, person_id, erased_at=now)
            sql.record_event(conn, community_id, person_id, "erased", actor_id, now)
        log.info("person erased", extra=_ids(community_id, person_id, actor_id))

    def history(
        self, community_id: int, person_id: uuid.UUID
    ) -> list[tuple[str, uuid.UUID | None, datetime]]:
        """Who wrote the record and when: (kind, actor_id, at), oldest first. No personal data."""
        with self._pool.connection() as conn:
            found = sql.get_person(conn, community_id, person_id)
            if found is None:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
            return sql.events(conn, community_id, person_id)

    def rewrap_keys(self, *, community_id: int | None = None) -> int:
        """Re-wrap data keys under the keyring's active master key (all communities by default)."""
        count = rewrap_all(self._pool, self._keyring, community_id=community_id)
        log.info("data keys re-wrapped", extra={"count": count, "key_id": self._keyring.active_key_id})
        return count

    # ------------------------------------------------------------------------------------ reads

    def get(self, community_id: int, person_id: uuid.UUID, *, full: bool) -> PersonView:
        """One person, masked (name, ID and phone numbers) unless ``full``. PERSON_NOT_FOUND if absent."""
        with self._pool.connection() as conn:
            row = sql.get_person(conn, community_id, person_id)
        if row is None:
            raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
        return self._view(row, full=full)

    def find_by_id_number(self, community_id: int, id_number: str) -> uuid.UUID | None:
        """The person with this ID number (any spelling that normalises equal), without decrypting."""
        with self._pool.connection() as conn:
            return sql.find_by_id_number_bidx(conn, community_id, id_number_index(self._keyring, id_number))

    def find_by_id_numbers(self, community_id: int, id_numbers: Iterable[str]) -> dict[str, uuid.UUID]:
        """Many ID numbers at once (a bulk import): each one found, as given, with its person."""
        wanted = {n: id_number_index(self._keyring, n) for n in set(id_numbers)}
        if not wanted:
            return {}
        with self._pool.connection() as conn:
            found = sql.find_by_id_number_bidxs(conn, community_id, list(set(wanted.values())))
        return {n: found[bidx] for n, bidx in wanted.items() if bidx in found}

    def find_by_phone(self, community_id: int, phone: str) -> builtins.list[uuid.UUID]:
        """People with this phone number (family members may share one), in person_id order."""
        with self._pool.connection() as conn:
            return sql.find_by_phone_bidx(conn, community_id, phone_index(self._keyring, phone))

    def list(
        self,
        community_id: int,
        *,
        after: uuid.UUID | None = None,
        limit: int = 50,
        full: bool = False,
    ) -> builtins.list[PersonView]:
        """A page of people in person_id order; pass the last id seen as ``after`` for the next page."""
        if not 1 <= limit <= MAX_PAGE:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="limit")
        with self._pool.connection() as conn:
            rows = sql.list_persons(conn, community_id, after=after, limit=limit)
        return [self._view(r, full=full) for r in rows]

    # --------------------------------------------------------------------------------- helpers

    def _indexes(self, profile: PersonProfile) -> tuple[bytes | None, bytes | None]:
        id_bidx = None if profile.id_number is None else id_number_index(self._keyring, profile.id_number)
        phone_bidx = None if profile.phone is None else phone_index(self._keyring, profile.phone)
        return id_bidx, phone_bidx

    def _live_row(self, conn: Conn, community_id: int, person_id: uuid.UUID, *, lock: str) -> sql.PersonRow:
        row = sql.get_person(conn, community_id, person_id, lock=lock)
        if row is None:
            raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
        if row.erased_at is not None:
            raise LedgerError(ErrorCode.PERSON_ERASED, person_id=str(person_id))
        return row

    def _check_guardian(self, conn: Conn, community_id: int, guardian_id: uuid.UUID, today: date) -> None:
        # FOR SHARE: the guardian cannot be erased while the ward is being registered under them.
        row = sql.get_person(conn, community_id, guardian_id, lock="SHARE")
        # Age is decided on today's date, not the stored flag, which was set when they registered.
        if row is None or row.erased_at is not None or is_minor(self._profile(row).birth_date, today):
            raise LedgerError(ErrorCode.GUARDIAN_REQUIRED, field="guardian_person_id")

    def _data_key(self, row: sql.PersonRow) -> bytes:
        if row.key_id is None or row.wrapped_key is None:
            raise DecryptionError(f"person {row.person_id} in community {row.community_id} has no data key")
        return unwrap_data_key(self._keyring, row.community_id, row.person_id, row.key_id, row.wrapped_key)

    def _profile(self, row: sql.PersonRow) -> PersonProfile:
        if row.profile_enc is None:
            raise DecryptionError(f"person {row.person_id} in community {row.community_id} has no profile")
        plaintext = decrypt_profile(self._data_key(row), row.community_id, row.person_id, row.profile_enc)
        return profile_from_json(plaintext)

    def _view(self, row: sql.PersonRow, *, full: bool) -> PersonView:
        erased = row.erased_at is not None
        profile = None
        if not erased:
            profile = self._profile(row)
            if not full:
                profile = mask_profile(profile)
        return PersonView(
            community_id=row.community_id,
            person_id=row.person_id,
            profile=profile,
            masked=not full and not erased,
            erased=erased,
            consent_entry=row.consent_entry,
            consent_publish=row.consent_publish,
            minor=row.minor,
            guardian_person_id=row.guardian_person_id,
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            erased_at=row.erased_at,
        )


def _today(now: datetime) -> date:
    return now.astimezone(CHINA_TZ).date()


def _ids(community_id: int, person_id: uuid.UUID, actor_id: uuid.UUID | None) -> dict[str, object]:
    return {"community_id": community_id, "person_id": str(person_id), "actor_id": str(actor_id)}


def _raise_duplicate(exc: pg_errors.UniqueViolation) -> NoReturn:
    """Two registrations of one ID number raced past the blind-index check: same answer as the check."""
    if exc.diag.constraint_name == sql.ID_NUMBER_UNIQUE:
        raise LedgerError(ErrorCode.DUPLICATE_PERSON, field="id_number") from None
    raise exc
