"""Versioned community rule settings: publish a version, read the one in force on a date."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.rule_settings import default_params, validate_params, with_defaults
from ledger.domain.transfers import check_text
from ledger.store import settings_repo as sql
from ledger.store.db import Conn

# Every community is in mainland China (no daylight saving), so "today" is the date at UTC+8.
CHINA_TZ = timezone(timedelta(hours=8), "CST")
MAX_NOTE_CHARS = 500


@dataclass(frozen=True, slots=True)
class SettingsVersion:
    """One version of a community's parameters. Version 0 is the built-in defaults, in force from
    date.min until the first published version; it has no author and no creation time."""

    version: int
    effective_from: date
    params: dict[str, object]
    note: str
    created_by: uuid.UUID | None
    created_at: datetime | None


def _defaults_version() -> SettingsVersion:
    return SettingsVersion(0, date.min, default_params(), "", None, None)


def _view(row: sql.SettingRow) -> SettingsVersion:
    version, effective_from, params, note, created_by, created_at = row
    return SettingsVersion(version, effective_from, with_defaults(params), note, created_by, created_at)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RuleSettings:
    def __init__(self, pool: ConnectionPool[Conn], *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._pool = pool
        self._clock = clock

    def today(self) -> date:
        return self._clock().astimezone(CHINA_TZ).date()

    def current(self, community_id: int, *, on: date | None = None) -> SettingsVersion:
        """The version in force on ``on`` (default: today in China)."""
        day = self.today() if on is None else _check_date(on, "on")
        with self._pool.connection() as conn:
            row = sql.in_force(conn, community_id, day)
            if row is None:
                _require_community(conn, community_id)
                return _defaults_version()
        return _view(row)

    def versions(self, community_id: int) -> list[SettingsVersion]:
        """Every version, oldest first, starting with version 0 (the defaults)."""
        with self._pool.connection() as conn:
            rows = sql.all_versions(conn, community_id)
            if not rows:
                _require_community(conn, community_id)
        return [_defaults_version(), *(_view(r) for r in rows)]

    def publish(
        self,
        community_id: int,
        params: Mapping[str, object],
        *,
        effective_from: date,
        note: str = "",
        actor_id: uuid.UUID | None = None,
    ) -> SettingsVersion:
        """Publish the next version: ``params`` over the defaults (not over the previous version, so a
        version always reads the same on its own), in force from ``effective_from`` on.

        Versions are never changed; a later one supersedes from its date. Two concurrent publishes
        both read the same latest version and try the same number: the primary key lets exactly one
        in, and the other fails with SETTING_NOT_LATER (field ``version``) and may retry.
        """
        full = validate_params(params)
        day = _check_date(effective_from, "effective_from")
        check_text(note, "note")
        if len(note) > MAX_NOTE_CHARS:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="note")
        with self._pool.connection() as conn:
            latest = sql.latest(conn, community_id)
            version = 1 if latest is None else latest[0] + 1
            if day <= (date.min if latest is None else latest[1]):
                raise LedgerError(
                    ErrorCode.SETTING_NOT_LATER, field="effective_from", latest_version=version - 1
                )
            try:
                row = sql.insert(conn, community_id, version, day, full, note, actor_id)
            except pg_errors.ForeignKeyViolation:
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id) from None
            except pg_errors.UniqueViolation:
                raise LedgerError(ErrorCode.SETTING_NOT_LATER, field="version", version=version) from None
        return _view(row)


def _check_date(value: object, field: str) -> date:
    # datetime is a date subclass; a timestamp here would silently compare in the wrong zone.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field)
    return value


def _require_community(conn: Conn, community_id: int) -> None:
    if not sql.community_exists(conn, community_id):
        raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
