"""Volunteer service certificates (志愿服务证明, arts 14–17): numbers, periods and hours (stdlib only).

A certificate number is printed on paper and typed into a browser, so it is short, upper-case and
unambiguous, and it names its community so that a public lookup needs nothing else::

    C<community id>-<year>-XXXX-XXXX-XXXX        e.g.  C42-2025-7KQM-3XF9-HT2D

The twelve X are 60 random bits in Crockford's base32 (no I, L, O or U): guessing a valid number
takes about 2^59 tries per issued certificate, which is what keeps the public verification URL
from being enumerated (docs/certificates.md).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Final

from ledger.domain.errors import ErrorCode, LedgerError

__all__ = [
    "CROCKFORD",
    "NUMBER_RANDOM_BITS",
    "CertificateNumber",
    "Period",
    "hours_text",
    "new_number",
    "parse_number",
]

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NUMBER_RANDOM_BITS: Final = 60
_GROUP: Final = 4
_CHARS: Final = NUMBER_RANDOM_BITS // 5
_NUMBER_RE: Final = re.compile(
    r"C([1-9][0-9]{0,17})-([0-9]{4})-([0-9A-HJKMNP-TV-Z]{4})-([0-9A-HJKMNP-TV-Z]{4})-([0-9A-HJKMNP-TV-Z]{4})"
)
MAX_NUMBER_CHARS: Final = 40


@dataclass(frozen=True, slots=True)
class CertificateNumber:
    community_id: int
    year: int
    text: str


def new_number(community_id: int, year: int, *, random_bits: Callable[[int], int] = secrets.randbits) -> str:
    """A fresh certificate number for ``community_id``, issued in ``year``."""
    if community_id < 1 or not 1000 <= year <= 9999:
        raise ValueError("a certificate number needs a positive community id and a four-digit year")
    value = random_bits(NUMBER_RANDOM_BITS)
    chars = "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(_CHARS)))
    groups = "-".join(chars[i : i + _GROUP] for i in range(0, _CHARS, _GROUP))
    return f"C{community_id}-{year}-{groups}"


def parse_number(text: str) -> CertificateNumber | None:
    """The parts of a well-formed number (lower case accepted, as people type it), else None."""
    if not isinstance(text, str) or len(text) > MAX_NUMBER_CHARS:
        return None
    upper = text.strip().upper()
    match = _NUMBER_RE.fullmatch(upper)
    if match is None:
        return None
    return CertificateNumber(int(match.group(1)), int(match.group(2)), upper)


@dataclass(frozen=True, slots=True)
class Period:
    """The service dates a certificate covers (both ends included); None: open on that side."""

    start: date | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        for name, value in (("period_from", self.start), ("period_to", self.end)):
            if value is not None and not isinstance(value, date):
                raise LedgerError(ErrorCode.INVALID_FIELD, field=name)
        if self.start is not None and self.end is not None and self.start > self.end:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="period_to")

    def check_not_after(self, today: date) -> None:
        """A period cannot start in the future (nothing can have been served there yet)."""
        if self.start is not None and self.start > today:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="period_from")


def hours_text(minutes: int) -> str:
    """Minutes as hours with one decimal, rounded down (a certificate never states more than the
    ledger holds): 5880 → ``98.0``, 150 → ``2.5``, 20 → ``0.3``."""
    if minutes < 0:
        return "-" + hours_text(-minutes)
    tenths = minutes // 6
    return f"{tenths // 10}.{tenths % 10}"
