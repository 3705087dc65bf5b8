"""Client idempotency keys as the ledger stores them: namespaced by caller, generated when absent."""

from __future__ import annotations

import uuid

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7

# The ledger allows 128 characters; the caller's namespace takes 34 of them.
MAX_CLIENT_KEY = 94


def ledger_key(user_id: uuid.UUID, client_key: str | None) -> str:
    """``u<user hex>:<key>``: two callers' keys never meet, so one cannot probe or block another's.

    Without a key the request is not replayable; it gets a fresh one.
    """
    if client_key is None:
        return f"u{user_id.hex}:auto-{uuid7().hex}"
    if not 1 <= len(client_key) <= MAX_CLIENT_KEY:
        raise LedgerError(ErrorCode.INVALID_IDEMPOTENCY_KEY, field="Idempotency-Key", max=MAX_CLIENT_KEY)
    return f"u{user_id.hex}:{client_key}"
