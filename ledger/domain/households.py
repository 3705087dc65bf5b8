"""Household fields as clients give them: codes, labels, member lists, instants (checked, not stored)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import check_text

CODE_RE = re.compile(r"[A-Za-z0-9-]{1,32}")
MAX_LABEL_CHARS = 50


def bad(field: str) -> LedgerError:
    return LedgerError(ErrorCode.INVALID_FIELD, field=field)


def check_code(code: object, field: str) -> str:
    if not isinstance(code, str) or not CODE_RE.fullmatch(code):
        raise bad(field)
    return code


def check_label(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise bad(field)
    check_text(value, field)
    if len(value) > MAX_LABEL_CHARS:
        raise bad(field)
    return value


def check_ids(ids: Sequence[UUID], field: str) -> list[UUID]:
    out = list(ids)
    if len(set(out)) != len(out) or not all(isinstance(i, UUID) for i in out):
        raise bad(field)
    return out


def check_instant(at: datetime, field: str) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise bad(field)
    return at
