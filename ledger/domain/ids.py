"""Identifier helpers: time-ordered UUIDv7 for new rows and strict parsing of client ids."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from ledger.domain.errors import ErrorCode, LedgerError

_lock = threading.Lock()
_last_ms = 0
_counter = 0

# A 36-character canonical UUID; other spellings (braces, urn:, no hyphens) are refused so that one
# transfer cannot be named two ways in requests, logs and proofs.
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def uuid7() -> uuid.UUID:
    """Return a UUIDv7 (RFC 9562): millisecond time prefix, monotonic within a process.

    Time-ordered keys keep B-tree inserts on the right edge of the index, which matters for the
    append-only transfer and posting tables.
    """
    return uuid7_many(1)[0]


def uuid7_many(n: int) -> list[uuid.UUID]:
    """``n`` UUIDv7s in increasing order, as if from ``n`` calls of uuid7 (one lock, one urandom)."""
    return [uuid.UUID(int=value) for value in _uuid7_ints(n)]


def uuid7_series_prefix() -> str:
    """The first 20 hex digits of a fresh UUIDv7 (its millisecond, counter and 14 random bits),
    for a statement that numbers many new rows on the server: the prefix followed by 12 hex digits
    of 0, 1, 2, … is a series of UUIDv7s in increasing order. The series cannot meet another id of
    this process (each id has its own millisecond and counter); one of another process only if
    both drew the same millisecond, counter and 14 random bits."""
    return f"{_uuid7_ints(1)[0]:032x}"[:20]


def _uuid7_ints(n: int) -> list[int]:
    global _last_ms, _counter
    out: list[int] = []
    if n <= 0:
        return out
    randoms = os.urandom(8 * n)
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        last_ms, counter = _last_ms, _counter
        if now_ms > last_ms:
            last_ms, counter = now_ms, -1
        for k in range(n):
            counter += 1
            if counter >= 1 << 12:  # counter exhausted within one millisecond: borrow the next one
                last_ms += 1
                counter = 0
            rand_b = int.from_bytes(randoms[8 * k : 8 * k + 8], "big") & _RAND_B_MASK
            out.append((last_ms & _MS_MASK) << 80 | _VERSION_BITS | counter << 64 | _VARIANT_BITS | rand_b)
        _last_ms, _counter = last_ms, counter
    return out


_MS_MASK = (1 << 48) - 1
_RAND_B_MASK = (1 << 62) - 1
_VERSION_BITS = 0x7 << 76
_VARIANT_BITS = 0b10 << 62


def parse_uuid(value: object, field: str) -> uuid.UUID:
    """Parse a client-supplied id, raising MALFORMED_ID (without echoing the value) if it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return uuid.UUID(value)
    raise LedgerError(ErrorCode.MALFORMED_ID, field=field)
