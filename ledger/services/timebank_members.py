"""The time bank's facts about people and regions, and gifts: relations (亲属/朋友), hardship flags
(困难认定), the region switch for cross-community exchange (通存通兑), gifts of coins to relatives,
and the withdrawal check on its own.

Relations and flags hold pseudonymous ids, the actor and dates only: which relatives a person has
and whether they hold a hardship flag is personal data, so neither appears in logs or errors.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import parse_uuid
from ledger.domain.timebank import Actor, Party, check_note, parties_of
from ledger.domain.timebank_rules import RelationKind, check_gift, inverse
from ledger.domain.transfers import Posting, TransferRequest, check_amount, check_idempotency_key
from ledger.domain.units import Unit
from ledger.services.communities import Communities
from ledger.services.ledger import Ledger
from ledger.services.people import People
from ledger.services.results import TransferResult
from ledger.services.timebank_support import (
    BirthDateOf,
    check_may_withdraw,
    china_date,
    ensure_coin_account,
    require_community,
    require_person,
    rules_on,
    utc_now,
)
from ledger.store import timebank_people_repo as sql
from ledger.store import timebank_repo
from ledger.store.db import Conn
from ledger.store.timebank_people_repo import HardshipRow, SwitchEvent

log = logging.getLogger("vledger.timebank")
GIFT_KIND = "timebank_gift"
MAX_CLIENT_KEY = 100


def birth_dates(people: People) -> BirthDateOf:
    """Birth dates read through the People service (decrypting the profile in memory only)."""

    def birth_date_of(community_id: int, person_id: uuid.UUID) -> date | None:
        view = people.get(community_id, person_id, full=True)
        return None if view.profile is None else view.profile.birth_date

    return birth_date_of


@dataclass(frozen=True, slots=True)
class RelationView:
    """A current relation seen from ``person_id``: ``kind`` is what ``relative_person_id`` is to them."""

    relation_id: uuid.UUID
    person_id: uuid.UUID
    relative_person_id: uuid.UUID
    kind: RelationKind
    recorded_by: uuid.UUID
    recorded_at: datetime


def _seen_from(row: sql.RelationRow, person_id: uuid.UUID) -> RelationView:
    if row.person_id == person_id:
        return RelationView(
            row.relation_id, person_id, row.relative_person_id, row.kind, row.recorded_by, row.recorded_at
        )
    return RelationView(
        row.relation_id, person_id, row.person_id, inverse(row.kind), row.recorded_by, row.recorded_at
    )


def _ordered(
    person_id: uuid.UUID, relative_id: uuid.UUID, kind: RelationKind
) -> tuple[uuid.UUID, uuid.UUID, RelationKind]:
    """The pair in id order, as stored, with the kind turned round if they were swapped."""
    return (
        (person_id, relative_id, kind) if person_id < relative_id else (relative_id, person_id, inverse(kind))
    )


def _staff_only(actor: Actor, action: str) -> None:
    if not actor.staff:
        raise LedgerError(ErrorCode.ACTOR_NOT_ALLOWED, action=action, allowed="staff")


class TimeBankMembers:
    """Relations, hardship flags, the region switch and gifts. Thread-safe; share one per process.

    Recording relations and flags and switching a region are staff's (the HTTP layer decides who is
    staff: community staff for the first two, region admins for the switch); a gift is the giver's
    own act, or staff's on their behalf.
    """

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        ledger: Ledger,
        communities: Communities,
        *,
        birth_date_of: BirthDateOf,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._ledger = ledger
        self._communities = communities
        self._birth_date_of = birth_date_of
        self._clock = clock

    def today(self) -> date:
        return china_date(self._clock())

    # -------------------------------------------------------------------------------- relations

    def record_relation(
        self,
        community_id: int,
        person_id: uuid.UUID,
        relative_person_id: uuid.UUID,
        kind: RelationKind,
        *,
        actor: Actor,
    ) -> RelationView:
        """Record that ``relative_person_id`` is ``person_id``'s ``kind`` (both of this community).

        One current relation per pair: recording the same relation again (from either side)
        returns it; another kind fails with RELATION_EXISTS (end the old one first).
        """
        _staff_only(actor, "record_relation")
        if not isinstance(kind, str) or kind not in {k.value for k in RelationKind}:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="kind")
        if person_id == relative_person_id:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="relative_person_id")
        low, high, stored = _ordered(person_id, relative_person_id, RelationKind(kind))
        with self._pool.connection() as conn:
            require_community(conn, community_id)
            for who in (person_id, relative_person_id):
                require_person(conn, community_id, who, share=True)
            current = sql.current_relation(conn, community_id, low, high, lock="SHARE")
            if current is None:
                try:
                    with conn.transaction():
                        sql.insert_relation(
                            conn, community_id, low, high, stored, actor.user_id, self._clock()
                        )
                except pg_errors.UniqueViolation:  # recorded concurrently: judge the winner's
                    pass
                current = sql.current_relation(conn, community_id, low, high)
            assert current is not None
        if current.kind is not stored:
            raise LedgerError(ErrorCode.RELATION_EXISTS, relation_id=str(current.relation_id))
        self._log("relation recorded", community_id, actor, relation_id=str(current.relation_id))
        return _seen_from(current, person_id)

    def end_relation(self, community_id: int, relation_id: uuid.UUID, *, actor: Actor) -> None:
        """End a current relation (recorded in error, or no longer so); RELATION_NOT_FOUND if there is
        no current relation with this id. Its row stays, with who ended it and when."""
        _staff_only(actor, "end_relation")
        with self._pool.connection() as conn:
            row = sql.get_relation(conn, community_id, parse_uuid(relation_id, "relation_id"), lock=True)
            if row is None or row.ended_at is not None:
                raise LedgerError(ErrorCode.RELATION_NOT_FOUND, relation_id=str(relation_id))
            sql.end_relation(conn, community_id, row.relation_id, actor.user_id, self._clock())
        self._log("relation ended", community_id, actor, relation_id=str(relation_id))

    def relations(self, community_id: int, person_id: uuid.UUID) -> list[RelationView]:
        """The person's current relations, each seen from them, oldest first."""
        with self._pool.connection() as conn:
            require_person(conn, community_id, person_id)
            return [_seen_from(r, person_id) for r in sql.relations_of(conn, community_id, person_id)]

    # --------------------------------------------------------------------------- hardship flags

    def grant_hardship(
        self,
        community_id: int,
        person_id: uuid.UUID,
        *,
        valid_from: date,
        valid_until: date | None = None,
        actor: Actor,
    ) -> HardshipRow:
        """Flag a person as in hardship from ``valid_from`` through ``valid_until`` (inclusive;
        None: until revoked). The flag opens withdrawal at the hardship age, where the settings
        give one."""
        _staff_only(actor, "grant_hardship")
        for value, field in ((valid_from, "valid_from"), (valid_until, "valid_until")):
            if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
                raise LedgerError(ErrorCode.INVALID_FIELD, field=field)
        if valid_until is not None and valid_until < valid_from:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="valid_until")
        with self._pool.connection() as conn:
            require_community(conn, community_id)
            require_person(conn, community_id, person_id, share=True)
            flag_id = sql.insert_flag(
                conn, community_id, person_id, valid_from, valid_until, actor.user_id, self._clock()
            )
            row = sql.get_flag(conn, community_id, flag_id, lock=False)
        assert row is not None
        self._log("hardship flag granted", community_id, actor, flag_id=str(flag_id))
        return row

    def revoke_hardship(self, community_id: int, flag_id: uuid.UUID, *, actor: Actor) -> HardshipRow:
        """Revoke a flag from now on (today it no longer counts). Revoking again changes nothing."""
        _staff_only(actor, "revoke_hardship")
        with self._pool.connection() as conn:
            row = sql.get_flag(conn, community_id, parse_uuid(flag_id, "flag_id"), lock=True)
            if row is None:
                raise LedgerError(ErrorCode.HARDSHIP_FLAG_NOT_FOUND, flag_id=str(flag_id))
            if row.revoked_at is None:
                sql.revoke_flag(conn, community_id, row.flag_id, actor.user_id, self._clock())
                row = sql.get_flag(conn, community_id, row.flag_id, lock=False)
        assert row is not None
        self._log("hardship flag revoked", community_id, actor, flag_id=str(flag_id))
        return row

    def hardship_flags(self, community_id: int, person_id: uuid.UUID) -> list[HardshipRow]:
        with self._pool.connection() as conn:
            require_person(conn, community_id, person_id)
            return sql.flags_of(conn, community_id, person_id)

    def check_withdrawal(self, community_id: int, person_id: uuid.UUID) -> None:
        """WITHDRAWAL_AGE_NOT_REACHED unless the person may pay for services with coins today."""
        birth_date = self._birth_date_of(community_id, person_id)
        with self._pool.connection() as conn:
            require_person(conn, community_id, person_id)
            rules = rules_on(conn, community_id, self.today())
            check_may_withdraw(conn, community_id, person_id, rules, self.today(), birth_date)

    # ------------------------------------------------------------------------------ the region

    def set_cross_community(self, region_id: int, enabled: bool, *, actor: Actor, note: str = "") -> bool:
        """Switch cross-community exchange on or off for a region (region staff). A change is kept
        with its actor and instant; setting the value it already has records nothing. Unknown
        regions are COMMUNITY_NOT_FOUND, as elsewhere."""
        _staff_only(actor, "set_cross_community")
        if not isinstance(enabled, bool):
            raise LedgerError(ErrorCode.INVALID_FIELD, field="enabled")
        text = check_note(note)
        with self._pool.connection() as conn:
            current = sql.region_switch(conn, region_id, lock="NO KEY UPDATE")
            if current is None:
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, region_id=region_id)
            if current != enabled:
                sql.set_region_switch(conn, region_id, enabled, actor.user_id, self._clock(), text)
        log.info(
            "cross-community exchange switched",
            extra={"region_id": region_id, "enabled": enabled, "actor_id": str(actor.user_id)},
        )
        return enabled

    def cross_community(self, region_id: int) -> tuple[bool, list[SwitchEvent]]:
        """The region's switch and every change of it, oldest first."""
        with self._pool.connection() as conn:
            current = sql.region_switch(conn, region_id)
            if current is None:
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, region_id=region_id)
            return current, sql.switch_history(conn, region_id)

    # ------------------------------------------------------------------------------------ gifts

    def gift(
        self,
        community_id: int,
        giver_person_id: uuid.UUID,
        recipient_person_id: uuid.UUID,
        amount_coin_minutes: int,
        *,
        actor: Actor,
        idempotency_key: str,
    ) -> TransferResult:
        """Give coins to a recorded relative within the community's gift scope (GIFT_NOT_ALLOWED
        otherwise, also to oneself). The giver, or staff for them, gives; the giver's age does not
        matter (a gift is not a withdrawal). The same key with the same gift returns the first
        result, as for any ledger transfer; held coins (an open exchange's hold) cannot be given."""
        check_amount(amount_coin_minutes, "amount_coin_minutes", positive=True)
        if not isinstance(idempotency_key, str) or len(idempotency_key) > MAX_CLIENT_KEY:
            raise LedgerError(ErrorCode.INVALID_IDEMPOTENCY_KEY, field="idempotency_key")
        key = check_idempotency_key(f"timebank-gift:{idempotency_key}")
        if (
            Party.RECIPIENT not in parties_of(actor, (community_id, giver_person_id), None)
            and not actor.staff
        ):
            raise LedgerError(ErrorCode.ACTOR_NOT_ALLOWED, action="gift", allowed="giver,staff")
        with self._pool.connection() as conn:
            require_community(conn, community_id)
            for who in (giver_person_id, recipient_person_id):
                require_person(conn, community_id, who)
        accounts = [
            ensure_coin_account(self._pool, self._communities, community_id, who)
            for who in (giver_person_id, recipient_person_id)
        ]
        request = TransferRequest(
            community_id,
            GIFT_KIND,
            (
                Posting(accounts[0], Unit.COIN_MINUTES, -amount_coin_minutes),
                Posting(accounts[1], Unit.COIN_MINUTES, amount_coin_minutes),
            ),
            key,
            actor_id=actor.user_id,
        )
        with self._pool.connection() as conn:
            # A key used before is the ledger's to answer (the first result, or the conflict),
            # whatever has become of the relation since.
            if not timebank_repo.ledger_key_used(conn, community_id, key):
                self._check_gift(conn, community_id, giver_person_id, recipient_person_id)
            # The relation and both people stay held (FOR SHARE) while the ledger writes the gift.
            result = self._ledger.transfer(request)
        self._log("time coins given", community_id, actor, transfer_id=str(result.transfer_id))
        return result

    def _check_gift(self, conn: Conn, community_id: int, giver: uuid.UUID, recipient: uuid.UUID) -> None:
        """A gift rests on a current relation within the scope of the settings in force today."""
        if giver == recipient:
            raise LedgerError(ErrorCode.GIFT_NOT_ALLOWED, scope="self")
        for who in (giver, recipient):
            require_person(conn, community_id, who, share=True)
        rules = rules_on(conn, community_id, self.today())
        low, high, _ = _ordered(giver, recipient, RelationKind.FRIEND)
        relation = sql.current_relation(conn, community_id, low, high, lock="SHARE")
        check_gift(rules.gift_scope, None if relation is None else relation.kind)

    def _log(self, message: str, community_id: int, actor: Actor, **ids: str) -> None:
        log.info(message, extra={"community_id": community_id, "actor_id": str(actor.user_id), **ids})
