"""Activities (志愿服务活动): what a community's service records are recorded against.

An activity carries the art 7 fields its records share: name, dates, place, content, organising
unit, and its leader (活动负责人), named by user id and/or person id, never by name. Activities are
append-only: a mistaken one is left unused and a new one created.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.service_records import ActivityFields, validate_activity
from ledger.store import service_records_repo as sql
from ledger.store.db import Conn
from ledger.store.service_records_repo import ActivityRow

log = logging.getLogger("vledger.activities")
MAX_PAGE = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


class Activities:
    """Use cases over a pool of runtime-role connections. Thread-safe; share one per process."""

    def __init__(self, pool: ConnectionPool[Conn], *, clock: Callable[[], datetime] = utc_now) -> None:
        self._pool = pool
        self._clock = clock

    def create(
        self,
        community_id: int,
        fields: ActivityFields,
        *,
        leader_user_id: uuid.UUID | None = None,
        leader_person_id: uuid.UUID | None = None,
        actor_id: uuid.UUID | None = None,
    ) -> ActivityRow:
        """Create an activity. Checks, in precedence order: the fields (NON_CANONICAL_TEXT,
        INVALID_FIELD), the community, the leader's user (USER_NOT_FOUND) and person
        (PERSON_NOT_FOUND, PERSON_ERASED)."""
        fields = validate_activity(fields)
        with self._pool.connection() as conn:
            if not sql.community_exists(conn, community_id):
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id)
            if leader_user_id is not None and not sql.user_exists(conn, leader_user_id):
                raise LedgerError(ErrorCode.USER_NOT_FOUND, user_id=str(leader_user_id))
            if leader_person_id is not None:
                erased = sql.person_state(conn, community_id, leader_person_id)
                if erased is None:
                    raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(leader_person_id))
                if erased:
                    raise LedgerError(ErrorCode.PERSON_ERASED, person_id=str(leader_person_id))
            activity_id = sql.insert_activity(
                conn,
                community_id,
                fields,
                leader_user_id=leader_user_id,
                leader_person_id=leader_person_id,
                created_by=actor_id,
                created_at=self._clock(),
            )
            row = sql.get_activity(conn, community_id, activity_id)
        assert row is not None
        log.info(
            "activity created",
            extra={"community_id": community_id, "activity_id": str(activity_id), "actor_id": str(actor_id)},
        )
        return row

    def get(self, community_id: int, activity_id: uuid.UUID) -> ActivityRow:
        with self._pool.connection() as conn:
            row = sql.get_activity(conn, community_id, activity_id)
        if row is None:
            raise LedgerError(ErrorCode.ACTIVITY_NOT_FOUND, activity_id=str(activity_id))
        return row

    def list(
        self, community_id: int, *, after: uuid.UUID | None = None, limit: int = 50
    ) -> builtins.list[ActivityRow]:
        """A page of activities in id (creation) order; pass the last id seen as ``after``."""
        if not 1 <= limit <= MAX_PAGE:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="limit", max=MAX_PAGE)
        with self._pool.connection() as conn:
            return sql.list_activities(conn, community_id, after=after, limit=limit)
