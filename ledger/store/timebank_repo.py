"""SQL for time-bank exchanges and their events (tables timebank_exchange, timebank_exchange_event).

Every function takes an open connection and leaves committing to the caller (one transaction per
step). Rows name people by pseudonymous ids only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from psycopg.types.json import Jsonb

from ledger.domain.ids import uuid7
from ledger.domain.timebank import ExchangeState, Pricing, Resolution
from ledger.store.db import Conn


@dataclass(frozen=True, slots=True)
class ExchangeRow:
    """A ``timebank_exchange`` row; column order is field order."""

    community_id: int
    exchange_id: uuid.UUID
    recipient_person_id: uuid.UUID
    service: str
    pricing: Pricing
    settings_version: int
    rate_coin_minutes_per_hour: int | None
    planned_minutes: int | None
    item_price_coin_minutes: int | None
    hold_coin_minutes: int
    hold_transfer_id: uuid.UUID | None
    state: ExchangeState
    provider_community_id: int | None
    provider_person_id: uuid.UUID | None
    served_minutes: int | None
    charged_coin_minutes: int | None
    credited_coin_minutes: int | None
    pool_coin_minutes: int | None
    release_transfer_id: uuid.UUID | None
    payment_transfer_id: uuid.UUID | None
    credit_transfer_id: uuid.UUID | None
    resolution: Resolution | None
    requested_by: uuid.UUID
    requested_at: datetime
    matched_at: datetime | None
    started_at: datetime | None
    confirmed_at: datetime | None
    disputed_at: datetime | None
    resolved_at: datetime | None
    settled_at: datetime | None
    cancelled_at: datetime | None

    @property
    def cross_community(self) -> bool:
        return self.provider_community_id is not None and self.provider_community_id != self.community_id


_COLUMNS = ", ".join(f.name for f in fields(ExchangeRow))
# The f-strings below only join constants of this module (S608 is about untrusted text).
_GET = f"SELECT {_COLUMNS} FROM timebank_exchange WHERE community_id = %s AND exchange_id = %s"  # noqa: S608
_LIST = f"""
SELECT {_COLUMNS} FROM timebank_exchange WHERE community_id = %(c)s
  AND (%(p)s::uuid IS NULL OR recipient_person_id = %(p)s::uuid)
  AND (%(pc)s::bigint IS NULL
       OR (community_id = %(pc)s::bigint AND recipient_person_id = %(pp)s::uuid)
       OR (provider_community_id = %(pc)s::bigint AND provider_person_id = %(pp)s::uuid))
  AND (%(state)s::text IS NULL OR state = %(state)s::text)
  AND (%(after)s::uuid IS NULL OR exchange_id > %(after)s::uuid)
ORDER BY exchange_id LIMIT %(limit)s
"""  # noqa: S608


def _exchange(row: tuple[Any, ...]) -> ExchangeRow:
    values = list(row)
    values[4] = Pricing(values[4])
    values[11] = ExchangeState(values[11])
    values[21] = None if values[21] is None else Resolution(values[21])
    return ExchangeRow(*values)


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: uuid.UUID
    kind: str
    from_state: str | None
    to_state: str
    actor_id: uuid.UUID
    party: str
    at: datetime
    note: str | None
    detail: dict[str, Any]


def get_exchange(
    conn: Conn, community_id: int, exchange_id: uuid.UUID, *, lock: bool = False
) -> ExchangeRow | None:
    """One exchange; ``lock`` takes its row lock, which every step holds to its end."""
    row = conn.execute(_GET + (" FOR UPDATE" if lock else ""), (community_id, exchange_id)).fetchone()
    return None if row is None else _exchange(row)


def list_exchanges(
    conn: Conn,
    community_id: int,
    *,
    recipient_person_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
    party: tuple[int, uuid.UUID] | None = None,
    state: ExchangeState | None = None,
) -> list[ExchangeRow]:
    """A page in id order; ``party``: only exchanges that person (of any community) is the
    recipient or the provider of; ``state``: only exchanges in that state."""
    pc, pp = (None, None) if party is None else party
    params = {
        "c": community_id,
        "p": recipient_person_id,
        "pc": pc,
        "pp": pp,
        "state": None if state is None else str(state),
        "after": after,
        "limit": limit,
    }
    rows = conn.execute(_LIST, params).fetchall()
    return [_exchange(r) for r in rows]


@dataclass(frozen=True, slots=True)
class NewExchange:
    exchange_id: uuid.UUID
    recipient_person_id: uuid.UUID
    service: str
    pricing: Pricing
    settings_version: int
    rate_coin_minutes_per_hour: int | None
    planned_minutes: int | None
    item_price_coin_minutes: int | None
    hold_coin_minutes: int
    hold_transfer_id: uuid.UUID | None
    requested_by: uuid.UUID
    requested_at: datetime


def insert_exchange(conn: Conn, community_id: int, new: NewExchange) -> None:
    conn.execute(
        "INSERT INTO timebank_exchange (community_id, exchange_id, recipient_person_id, service, pricing,"
        " settings_version, rate_coin_minutes_per_hour, planned_minutes, item_price_coin_minutes,"
        " hold_coin_minutes, hold_transfer_id, requested_by, requested_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            community_id,
            new.exchange_id,
            new.recipient_person_id,
            new.service,
            str(new.pricing),
            new.settings_version,
            new.rate_coin_minutes_per_hour,
            new.planned_minutes,
            new.item_price_coin_minutes,
            new.hold_coin_minutes,
            new.hold_transfer_id,
            new.requested_by,
            new.requested_at,
        ),
    )


# Columns a step may set (the grant of migration 0010 allows exactly these and state).
_STEP_COLUMNS = frozenset(
    {
        "provider_community_id",
        "provider_person_id",
        "served_minutes",
        "charged_coin_minutes",
        "credited_coin_minutes",
        "pool_coin_minutes",
        "release_transfer_id",
        "payment_transfer_id",
        "credit_transfer_id",
        "resolution",
        "matched_at",
        "started_at",
        "confirmed_at",
        "disputed_at",
        "resolved_at",
        "settled_at",
        "cancelled_at",
    }
)


def update_step(
    conn: Conn, community_id: int, exchange_id: uuid.UUID, state: ExchangeState, **changes: object
) -> None:
    """Move the exchange to ``state`` and set ``changes`` (names from the fixed list above only)."""
    assert set(changes) <= _STEP_COLUMNS, set(changes) - _STEP_COLUMNS
    names = ["state", *sorted(changes)]
    values = [str(state), *(str(v) if isinstance(v, Resolution) else v for _, v in sorted(changes.items()))]
    assignments = ", ".join(f"{n} = %s" for n in names)
    # The column names come from the fixed list above, never from a caller's text.
    query = f"UPDATE timebank_exchange SET {assignments} WHERE community_id = %s AND exchange_id = %s"  # noqa: S608
    updated = conn.execute(query, (*values, community_id, exchange_id))
    assert updated.rowcount == 1


def record_event(
    conn: Conn,
    community_id: int,
    exchange_id: uuid.UUID,
    *,
    kind: str,
    from_state: ExchangeState | None,
    to_state: ExchangeState,
    actor_id: uuid.UUID,
    party: str,
    at: datetime,
    note: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO timebank_exchange_event (community_id, event_id, exchange_id, kind, from_state,"
        " to_state, actor_id, party, at, note, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            community_id,
            uuid7(),
            exchange_id,
            kind,
            None if from_state is None else str(from_state),
            str(to_state),
            actor_id,
            party,
            at,
            note,
            Jsonb(detail or {}),
        ),
    )


def events(conn: Conn, community_id: int, exchange_id: uuid.UUID) -> list[EventRow]:
    rows = conn.execute(
        "SELECT event_id, kind, from_state, to_state, actor_id, party, at, note, detail"
        " FROM timebank_exchange_event WHERE community_id = %s AND exchange_id = %s ORDER BY at, event_id",
        (community_id, exchange_id),
    ).fetchall()
    return [EventRow(*r) for r in rows]


# ------------------------------------------------------------------------------- what steps read


def settings_in_force(conn: Conn, community_id: int, day: date) -> tuple[int, dict[str, Any]] | None:
    """(version, stored params) of the settings version in force on ``day``; None before any."""
    row = conn.execute(
        "SELECT version, params FROM community_setting WHERE community_id = %s AND effective_from <= %s"
        " ORDER BY version DESC LIMIT 1",
        (community_id, day),
    ).fetchone()
    return None if row is None else (int(row[0]), dict(row[1]))


def person_erased(conn: Conn, community_id: int, person_id: uuid.UUID, *, share: bool = False) -> bool | None:
    """Whether the person is erased; None if there is no such person. ``share`` locks the row
    FOR SHARE (an erasure waits until the caller's transaction ends)."""
    query = "SELECT erased_at IS NOT NULL FROM person WHERE community_id = %s AND person_id = %s"
    row = conn.execute(query + (" FOR SHARE" if share else ""), (community_id, person_id)).fetchone()
    return None if row is None else bool(row[0])


def coin_account(conn: Conn, community_id: int, person_id: uuid.UUID) -> uuid.UUID | None:
    row = conn.execute(
        "SELECT account_id FROM account WHERE community_id = %s AND owner_kind = 'person'"
        " AND owner_id = %s AND unit = 'coin_minutes'",
        (community_id, person_id),
    ).fetchone()
    return None if row is None else row[0]


def system_coin_accounts(conn: Conn, community_id: int) -> dict[str, uuid.UUID]:
    """The community's coin system accounts by code (escrow, clearing, donation_pool, issuance)."""
    rows = conn.execute(
        "SELECT code, account_id FROM account WHERE community_id = %s AND owner_id IS NULL"
        " AND unit = 'coin_minutes'",
        (community_id,),
    ).fetchall()
    return {str(code): account_id for code, account_id in rows}


def posted_balance(conn: Conn, community_id: int, account_id: uuid.UUID) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(posted), 0) FROM balance WHERE community_id = %s AND account_id = %s",
        (community_id, account_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def ledger_key_used(conn: Conn, community_id: int, key: str) -> bool:
    """Whether the ledger has seen an idempotency key in the community (succeeded or failed)."""
    row = conn.execute(
        "SELECT 1 FROM idempotency WHERE community_id = %s AND key = %s", (community_id, key)
    ).fetchone()
    return row is not None
