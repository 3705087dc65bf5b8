"""Time-bank exchanges (时间银行): request, match, start, confirm, settle, cancel, dispute, resolve.

The state machine and who may take each step are in ``ledger/domain/timebank.py``; how coins
are held and paid in ``timebank_settlement`` and ``timebank_steps``. Every step is one database
transaction that locks the exchange row first, so steps on one exchange take turns and each sees
the one before: a repeated step (the same request twice, two settlements racing) finds the step
done and returns the exchange as it is, changing nothing. The transfers a step makes are written
in that same transaction (``linked_transfers``), so the exchange's state and the ledger never
disagree.

Checks of a step, in order: its arguments (INVALID_FIELD, MALFORMED_ID), EXCHANGE_NOT_FOUND,
ACTOR_NOT_ALLOWED, then "already done" (the exchange is returned unchanged), then
INVALID_STATE_TRANSITION, then the step's own rules, then the ledger's (INSUFFICIENT_FUNDS).
Logs carry ids only.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable
from datetime import date, datetime

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import parse_uuid, uuid7
from ledger.domain.timebank import (
    Action,
    Actor,
    ExchangeState,
    Party,
    Resolution,
    Terms,
    acting_party,
    charge_for,
    check_note,
    check_service,
    next_state,
    parties_of,
    plan_terms,
    validate_minutes,
)
from ledger.services import timebank_settlement as pay
from ledger.services import timebank_steps as steps
from ledger.services.communities import Communities
from ledger.services.ledger import wall_clock_us
from ledger.services.linked_transfers import Linked, write_linked
from ledger.services.timebank_steps import Step
from ledger.services.timebank_support import (
    BirthDateOf,
    check_cross_community,
    check_may_withdraw,
    china_date,
    coin_system_account,
    ensure_coin_account,
    require_community,
    require_person,
    rules_on,
    utc_now,
)
from ledger.store import timebank_repo as sql
from ledger.store.db import Conn
from ledger.store.timebank_repo import EventRow, ExchangeRow

log = logging.getLogger("vledger.timebank")
MAX_PAGE = 500


class TimeBank:
    """Exchanges over a pool of runtime-role connections. Thread-safe; share one per process.

    ``birth_date_of`` reads a recipient's birth date for the withdrawal age rule (in production
    ``timebank_members.birth_dates(people)``, which decrypts the profile; never logged).
    """

    def __init__(
        self,
        pool: ConnectionPool[Conn],
        communities: Communities,
        *,
        birth_date_of: BirthDateOf,
        clock: Callable[[], datetime] = utc_now,
        clock_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        self._pool = pool
        self._communities = communities
        self._birth_date_of = birth_date_of
        self._clock = clock
        self._clock_us = clock_us

    def today(self) -> date:
        return china_date(self._clock())

    # ----------------------------------------------------------------------------------- request

    def request(
        self,
        community_id: int,
        recipient_person_id: uuid.UUID,
        *,
        service: str,
        actor: Actor,
        planned_minutes: int | None = None,
        item_price_coin_minutes: int | None = None,
        exchange_id: uuid.UUID | None = None,
    ) -> ExchangeRow:
        """Ask for a service, paid by the recipient, and hold the most it can cost.

        Per-hour pricing needs ``planned_minutes`` (the hold is their price); per-item pricing an
        ``item_price_coin_minutes``. The terms are those of the settings in force today and stay
        fixed. ``exchange_id`` (optional) makes the request idempotent: the same id with the same
        request returns the exchange, with another request IDEMPOTENCY_CONFLICT.

        Checks, in order: INVALID_FIELD / NON_CANONICAL_TEXT (service), ACTOR_NOT_ALLOWED (the
        recipient or staff), COMMUNITY_NOT_FOUND, PERSON_NOT_FOUND, PERSON_ERASED, INVALID_FIELD
        (minutes, price), WITHDRAWAL_AGE_NOT_REACHED, INSUFFICIENT_FUNDS.
        """
        service = check_service(service)
        xid = uuid7() if exchange_id is None else parse_uuid(exchange_id, "exchange_id")
        party = acting_party(Action.REQUEST, parties_of(actor, (community_id, recipient_person_id), None))
        asked = (recipient_person_id, service, planned_minutes, item_price_coin_minutes)
        with self._pool.connection() as conn:
            require_community(conn, community_id)
            found = sql.get_exchange(conn, community_id, xid)
            if found is None:
                require_person(conn, community_id, recipient_person_id)
        if found is not None:
            return steps.same_request(found, *asked)
        account = ensure_coin_account(self._pool, self._communities, community_id, recipient_person_id)
        birth_date = self._birth_date_of(community_id, recipient_person_id)
        today = self.today()
        try:
            with self._pool.connection() as conn:
                require_person(conn, community_id, recipient_person_id, share=True)
                rules = rules_on(conn, community_id, today)
                terms = plan_terms(
                    rules.pricing,
                    rules.coin_minutes_per_service_hour,
                    planned_minutes,
                    item_price_coin_minutes,
                )
                check_may_withdraw(conn, community_id, recipient_person_id, rules, today, birth_date)
                self._open(conn, community_id, xid, asked, terms, rules.version, account, actor, party)
                row = self._reread(conn, community_id, xid)
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name != "timebank_exchange_pkey":
                raise
            # The same exchange id requested concurrently: the other request's row decides.
            return steps.same_request(self.get(community_id, xid), *asked)
        self._log("time-bank exchange requested", community_id, xid, actor)
        return row

    # ----------------------------------------------------------------------------- simple steps

    def match(
        self,
        community_id: int,
        exchange_id: uuid.UUID,
        *,
        provider_community_id: int,
        provider_person_id: uuid.UUID,
        actor: Actor,
    ) -> ExchangeRow:
        """requested → matched (staff): name the provider, who may belong to another community of
        the same region if the region has switched cross-community exchange on
        (CROSS_COMMUNITY_DISABLED otherwise). The provider is not the recipient (INVALID_FIELD).
        Matching again with the same provider returns the exchange."""
        provider = (provider_community_id, provider_person_id)
        with self._pool.connection() as conn:
            require_community(conn, provider_community_id)
            require_person(conn, provider_community_id, provider_person_id)
        ensure_coin_account(self._pool, self._communities, provider_community_id, provider_person_id)
        with self._pool.connection() as conn:
            step = self._step(conn, self._locked(conn, community_id, exchange_id), actor, Action.MATCH)
            row = step.row
            if row.matched_at is not None and steps.provider_of(row) == provider:
                return row
            after = next_state(row.state, Action.MATCH)
            if provider == (community_id, row.recipient_person_id):
                raise LedgerError(ErrorCode.INVALID_FIELD, field="provider_person_id")
            require_person(conn, provider_community_id, provider_person_id, share=True)
            check_cross_community(conn, community_id, provider_community_id)
            step.update(
                after,
                provider_community_id=provider_community_id,
                provider_person_id=provider_person_id,
                matched_at=step.now,
            )
            step.record("matched", after, detail={"provider_community_id": provider_community_id})
            row = self._reread(conn, community_id, row.exchange_id)
        self._log("time-bank exchange matched", community_id, row.exchange_id, actor)
        return row

    def start(self, community_id: int, exchange_id: uuid.UUID, *, actor: Actor) -> ExchangeRow:
        """matched → in_service (the provider, or staff)."""
        with self._pool.connection() as conn:
            step = self._step(conn, self._locked(conn, community_id, exchange_id), actor, Action.START)
            if step.row.started_at is not None:
                return step.row
            after = next_state(step.row.state, Action.START)
            step.update(after, started_at=step.now)
            step.record("started", after)
            row = self._reread(conn, community_id, step.row.exchange_id)
        self._log("time-bank exchange started", community_id, row.exchange_id, actor)
        return row

    def confirm(
        self, community_id: int, exchange_id: uuid.UUID, *, actor: Actor, served_minutes: int | None = None
    ) -> ExchangeRow:
        """in_service → confirmed (the recipient only), with the minutes served (required per
        hour, at most the planned minutes; optional per item). Confirming again with the same
        minutes returns the exchange; with other minutes INVALID_STATE_TRANSITION."""
        served = None if served_minutes is None else validate_minutes(served_minutes, "served_minutes")
        with self._pool.connection() as conn:
            step = self._step(conn, self._locked(conn, community_id, exchange_id), actor, Action.CONFIRM)
            if step.row.confirmed_at is not None and step.row.served_minutes == served:
                return step.row
            after = next_state(step.row.state, Action.CONFIRM)
            charge = charge_for(steps.terms_of(step.row), served)
            step.update(after, confirmed_at=step.now, served_minutes=served)
            step.record("confirmed", after, detail={"served_minutes": served, "charge_coin_minutes": charge})
            row = self._reread(conn, community_id, step.row.exchange_id)
        self._log("time-bank exchange confirmed", community_id, row.exchange_id, actor)
        return row

    def dispute(self, community_id: int, exchange_id: uuid.UUID, *, actor: Actor, reason: str) -> ExchangeRow:
        """in_service or confirmed → disputed (either party, or staff), with a reason. The hold
        stays until staff resolve the dispute."""
        note = check_note(reason, "reason", required=True)
        with self._pool.connection() as conn:
            step = self._step(conn, self._locked(conn, community_id, exchange_id), actor, Action.DISPUTE)
            if step.row.disputed_at is not None:
                return step.row
            after = next_state(step.row.state, Action.DISPUTE)
            step.update(after, disputed_at=step.now)
            step.record("disputed", after, note=note)
            row = self._reread(conn, community_id, step.row.exchange_id)
        self._log("time-bank exchange disputed", community_id, row.exchange_id, actor)
        return row

    # ---------------------------------------------------------------------- steps that move coins

    def settle(self, community_id: int, exchange_id: uuid.UUID, *, actor: Actor) -> ExchangeRow:
        """confirmed → settled (either party, or staff): release the hold and pay the provider what
        the confirmation charges, in one transaction. Settling a settled exchange returns it."""
        with self._pool.connection() as conn:
            step = self._step(conn, self._locked(conn, community_id, exchange_id), actor, Action.SETTLE)
            if step.row.state is ExchangeState.SETTLED:
                return step.row
            next_state(step.row.state, Action.SETTLE)
            steps.settle(step, step.row.served_minutes, "settled", None, None)
            row = self._reread(conn, community_id, step.row.exchange_id)
        self._log("time-bank exchange settled", community_id, row.exchange_id, actor)
        return row

    def cancel(
        self, community_id: int, exchange_id: uuid.UUID, *, actor: Actor, reason: str = ""
    ) -> ExchangeRow:
        """requested or matched → cancelled (the recipient, the matched provider, or staff); the
        hold is released. Once the service has started, a party disputes instead."""
        note = check_note(reason, "reason") or None
        with self._pool.connection() as conn:
            step = self._step(conn, self._locked(conn, community_id, exchange_id), actor, Action.CANCEL)
            if step.row.state is ExchangeState.CANCELLED:
                return step.row
            next_state(step.row.state, Action.CANCEL)
            steps.cancel(step, "cancelled", note, None)
            row = self._reread(conn, community_id, step.row.exchange_id)
        self._log("time-bank exchange cancelled", community_id, row.exchange_id, actor)
        return row

    def resolve(
        self,
        community_id: int,
        exchange_id: uuid.UUID,
        *,
        actor: Actor,
        resolution: Resolution,
        served_minutes: int | None = None,
        note: str = "",
    ) -> ExchangeRow:
        """disputed → settled or cancelled, by staff who are not a party. Settling pays for
        ``served_minutes`` as staff decide (per hour; default: the minutes confirmed, if any).
        Resolving again the same way returns the exchange; another way INVALID_STATE_TRANSITION."""
        if not isinstance(resolution, str) or resolution not in {r.value for r in Resolution}:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="resolution")
        chosen = Resolution(resolution)
        served = None if served_minutes is None else validate_minutes(served_minutes, "served_minutes")
        text = check_note(note) or None
        with self._pool.connection() as conn:
            step = self._step(conn, self._locked(conn, community_id, exchange_id), actor, Action.RESOLVE)
            row = step.row
            if row.resolution is chosen and (served is None or served == row.served_minutes):
                return row
            next_state(row.state, Action.RESOLVE, chosen)
            if chosen is Resolution.SETTLE:
                steps.settle(step, row.served_minutes if served is None else served, "resolved", text, chosen)
            else:
                steps.cancel(step, "resolved", text, chosen)
            row = self._reread(conn, community_id, row.exchange_id)
        self._log("time-bank dispute resolved", community_id, row.exchange_id, actor)
        return row

    # ------------------------------------------------------------------------------------ reads

    def get(self, community_id: int, exchange_id: uuid.UUID) -> ExchangeRow:
        with self._pool.connection() as conn:
            row = sql.get_exchange(conn, community_id, exchange_id)
        if row is None:
            raise LedgerError(ErrorCode.EXCHANGE_NOT_FOUND, exchange_id=str(exchange_id))
        return row

    def list(
        self,
        community_id: int,
        *,
        recipient_person_id: uuid.UUID | None = None,
        party: tuple[int, uuid.UUID] | None = None,
        state: ExchangeState | None = None,
        after: uuid.UUID | None = None,
        limit: int = 50,
    ) -> builtins.list[ExchangeRow]:
        """A page of exchanges in id (request) order, optionally of one recipient, of one party
        (``(community_id, person_id)``, recipient or provider, possibly of another community), in
        one state."""
        if not 1 <= limit <= MAX_PAGE:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="limit", max=MAX_PAGE)
        with self._pool.connection() as conn:
            return sql.list_exchanges(
                conn, community_id, recipient_person_id=recipient_person_id, party=party, state=state,
                after=after, limit=limit,
            )  # fmt: skip

    def history(self, community_id: int, exchange_id: uuid.UUID) -> builtins.list[EventRow]:
        """Every step with its actor and the party they acted as, oldest first."""
        with self._pool.connection() as conn:
            if sql.get_exchange(conn, community_id, exchange_id) is None:
                raise LedgerError(ErrorCode.EXCHANGE_NOT_FOUND, exchange_id=str(exchange_id))
            return sql.events(conn, community_id, exchange_id)

    # --------------------------------------------------------------------------------- helpers

    def _open(
        self,
        conn: Conn,
        community_id: int,
        xid: uuid.UUID,
        asked: tuple[uuid.UUID, str, int | None, int | None],
        terms: Terms,
        settings_version: int,
        account: uuid.UUID,
        actor: Actor,
        party: Party,
    ) -> None:
        """Insert the requested exchange, place its hold and record the step (one transaction)."""
        held: Linked | None = None
        if terms.hold:
            escrow = coin_system_account(conn, community_id, pay.ESCROW)
            held = pay.hold(
                community_id, xid, terms.hold, recipient_account=account, escrow_account=escrow,
                actor_id=actor.user_id,
            )  # fmt: skip
        now = self._clock()
        new = sql.NewExchange(
            xid, asked[0], asked[1], terms.pricing, settings_version, terms.rate, terms.planned_minutes,
            terms.item_price, terms.hold, None if held is None else held.transfer_id, actor.user_id, now,
        )  # fmt: skip
        sql.insert_exchange(conn, community_id, new)  # first: a twin request waits here, then fails
        if held is not None:
            write_linked(conn, [held], clock_us=self._clock_us)
        sql.record_event(
            conn, community_id, xid, kind="requested", from_state=None, to_state=ExchangeState.REQUESTED,
            actor_id=actor.user_id, party=str(party), at=now,
            detail={"hold_coin_minutes": terms.hold, "settings_version": settings_version},
        )  # fmt: skip

    def _step(self, conn: Conn, row: ExchangeRow, actor: Actor, action: Action) -> Step:
        party = acting_party(action, steps.parties(actor, row))
        return Step(conn, row, actor, party, self._clock(), self.today(), self._clock_us)

    def _locked(self, conn: Conn, community_id: int, exchange_id: uuid.UUID) -> ExchangeRow:
        row = sql.get_exchange(conn, community_id, parse_uuid(exchange_id, "exchange_id"), lock=True)
        if row is None:
            raise LedgerError(ErrorCode.EXCHANGE_NOT_FOUND, exchange_id=str(exchange_id))
        return row

    def _reread(self, conn: Conn, community_id: int, exchange_id: uuid.UUID) -> ExchangeRow:
        row = sql.get_exchange(conn, community_id, exchange_id)
        assert row is not None
        return row

    def _log(self, message: str, community_id: int, exchange_id: uuid.UUID, actor: Actor) -> None:
        log.info(
            message,
            extra={
                "community_id": community_id,
                "exchange_id": str(exchange_id),
                "actor_id": str(actor.user_id),
            },
        )
