"""Instants as the ledger stores them: integer microseconds since 1970-01-01 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_dt(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


def to_us(dt: datetime | None) -> int | None:
    """Exact (no float arithmetic); ``dt`` must carry a time zone."""
    if dt is None:
        return None
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
