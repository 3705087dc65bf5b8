"""Cursor pagination: an opaque cursor names the last item of the previous page."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Generic, TypeVar

import msgspec

from ledger.domain.errors import ErrorCode, LedgerError

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError):
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="cursor") from None


def page_limit(limit: int | None) -> int:
    value = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= value <= MAX_LIMIT:
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="limit", max=MAX_LIMIT)
    return value


def next_cursor(items_ids: list[uuid.UUID], limit: int) -> str | None:
    """A cursor only when the page is full (there may be more)."""
    return encode_cursor(items_ids[-1]) if len(items_ids) == limit and items_ids else None
