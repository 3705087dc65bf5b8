"""Idempotency-Key for POSTs that are not ledger transfers: replay the first answer, refuse another
request under the same key.

The ledger keeps its own keys for transfers (``Ledger.transfer``). Everything else a client POSTs
(people, households, users, settings) goes through ``IdempotentRequests``: ``begin`` claims the
key before the work, ``finish`` stores the response, ``release`` frees the key when the work failed
unexpectedly, so that the client may retry.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import check_idempotency_key
from ledger.store import requests_repo as sql
from ledger.store.db import Conn


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: object


def request_hash(route: str, payload: object) -> bytes:
    """SHA-256 of the route and the canonical JSON of the request body (keys sorted)."""
    text = json.dumps(
        [route, payload], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode()).digest()


class IdempotentRequests:
    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        self._pool = pool

    def begin(self, user_id: uuid.UUID, key: str, route: str, digest: bytes) -> StoredResponse | None:
        """Claim ``key`` for this request; return the stored response if it ran before.

        Raises IDEMPOTENCY_CONFLICT for another request under the key, or for the same request
        while its first run has not finished yet.
        """
        check_idempotency_key(key)
        with self._pool.connection() as conn:
            if conn.execute(sql.CLAIM, (user_id, key, route, digest)).fetchone() is not None:
                conn.commit()
                return None
            row = conn.execute(sql.READ, (user_id, key)).fetchone()
            conn.rollback()
        if row is None:  # released between our claim and read: let the client retry
            raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="Idempotency-Key")
        stored_route, stored_hash, status_code, response = row
        if stored_route != route or bytes(stored_hash) != digest or status_code is None:
            raise LedgerError(ErrorCode.IDEMPOTENCY_CONFLICT, field="Idempotency-Key")
        return StoredResponse(int(status_code), response)

    def finish(self, user_id: uuid.UUID, key: str, status_code: int, body: object) -> None:
        with self._pool.connection() as conn:
            conn.execute(sql.FINISH, (status_code, Jsonb(body), user_id, key))

    def release(self, user_id: uuid.UUID, key: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(sql.RELEASE, (user_id, key))
