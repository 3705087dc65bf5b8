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
    global _last_ms, _counter  # noqa: PLW0603 - process-wide monotonic state is the point
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _counter += 1
            if _counter >= 1 << 12:  # counter exhausted within one millisecond: borrow the next one
                _last_ms += 1
                _counter = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _counter = 0
        rand_a = _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def parse_uuid(value: object, field: str) -> uuid.UUID:
    """Parse a client-supplied id, raising MALFORMED_ID (without echoing the value) if it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _UUID_RE.fullmatch(value):
        return uuid.UUID(value)
    raise LedgerError(ErrorCode.MALFORMED_ID, field=field)
