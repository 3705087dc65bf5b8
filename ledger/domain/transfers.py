"""Transfer requests and their validation: everything checkable without the database."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import parse_uuid
from ledger.domain.units import Unit

# Amounts and balances stay within what every JSON reader represents exactly (RFC 8785 / IEEE double).
MAX_AMOUNT = 2**53 - 1
MAX_POSTINGS = 64
_KEY_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Phase(StrEnum):
    """How a transfer affects balances (TigerBeetle's two-phase model)."""

    SINGLE = "single"  # posts at once
    PENDING = "pending"  # reserves: debits lower ``available`` now, credits arrive on post
    POST = "post"  # completes a pending transfer, wholly or in part
    VOID = "void"  # releases a pending transfer


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of a transfer: a signed amount (credit > 0, debit < 0) on one account.

    ``expires_at_us`` applies to credits of points into a lot-holding account: the new lot's expiry.
    """

    account_id: uuid.UUID
    unit: Unit
    amount: int
    expires_at_us: int | None = None


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """A request to move amounts between accounts of one community.

    ``effective_us`` is when the event happened (service date); None means "now". It takes part in
    the idempotency hash only as given, so a replay without it is still the same request.
    """

    community_id: int
    kind: str
    postings: tuple[Posting, ...]
    idempotency_key: str
    phase: Phase = Phase.SINGLE
    effective_us: int | None = None
    actor_id: uuid.UUID | None = None
    transfer_id: uuid.UUID | None = None
    timeout_us: int | None = None  # pending only: lifetime of the reservation in microseconds
    metadata: dict[str, object] = field(default_factory=dict)

    def request_hash(self) -> bytes:
        """SHA-256 over what the client asked for; two requests with one key must hash alike."""
        body = {
            "community_id": self.community_id,
            "kind": self.kind,
            "phase": str(self.phase),
            "postings": [[str(p.account_id), str(p.unit), p.amount, p.expires_at_us] for p in self.postings],
            "effective_us": self.effective_us,
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "transfer_id": str(self.transfer_id) if self.transfer_id else None,
            "timeout_us": self.timeout_us,
            "metadata": self.metadata,
        }
        return _hash_json(body)


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """Post or void a pending transfer. ``amounts`` (post only) gives a partial amount per account."""

    community_id: int
    pending_id: uuid.UUID
    phase: Phase
    idempotency_key: str
    amounts: dict[uuid.UUID, int] | None = None
    actor_id: uuid.UUID | None = None

    def request_hash(self) -> bytes:
        amounts = None if self.amounts is None else sorted([str(k), v] for k, v in self.amounts.items())
        return _hash_json(
            {
                "community_id": self.community_id,
                "resolve": str(self.pending_id),
                "phase": str(self.phase),
                "amounts": amounts,
                "actor_id": str(self.actor_id) if self.actor_id else None,
            }
        )


@dataclass(frozen=True, slots=True)
class ReverseRequest:
    """Reverse a posted transfer once, by a mirror transfer."""

    community_id: int
    transfer_id: uuid.UUID
    idempotency_key: str
    actor_id: uuid.UUID | None = None
    reason: str = ""

    def request_hash(self) -> bytes:
        return _hash_json(
            {
                "community_id": self.community_id,
                "reverse": str(self.transfer_id),
                "actor_id": str(self.actor_id) if self.actor_id else None,
                "reason": self.reason,
            }
        )


def _hash_json(body: dict[str, object]) -> bytes:
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).digest()


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise LedgerError(ErrorCode.INVALID_IDEMPOTENCY_KEY, field="idempotency_key")
    return key


def check_text(value: str, field_name: str) -> str:
    """Reject text that cannot be encoded canonically (control characters, non-NFC)."""
    if _CONTROL_RE.search(value) or not unicodedata.is_normalized("NFC", value):
        raise LedgerError(ErrorCode.NON_CANONICAL_TEXT, field=field_name)
    return value


def check_metadata(value: object, path: str = "metadata") -> None:
    """Metadata is JSON with integer numbers and canonical strings only (no floats: no money drift)."""
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_AMOUNT:
            raise LedgerError(ErrorCode.AMOUNT_OVERFLOW, field=path)
        return
    if isinstance(value, str):
        check_text(value, path)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_metadata(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise LedgerError(ErrorCode.NON_CANONICAL_TEXT, field=path)
            check_text(key, path)
            check_metadata(item, f"{path}.{key}")
        return
    raise LedgerError(ErrorCode.MALFORMED_REQUEST, field=path)


def check_amount(amount: object, field_name: str, *, positive: bool = False) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise LedgerError(ErrorCode.INVALID_AMOUNT, field=field_name)
    if amount == 0 or (positive and amount < 0):
        raise LedgerError(ErrorCode.INVALID_AMOUNT, field=field_name)
    if abs(amount) > MAX_AMOUNT:
        raise LedgerError(ErrorCode.AMOUNT_OVERFLOW, field=field_name)
    return amount


def validate_transfer(req: TransferRequest) -> None:
    """Check a request in precedence order (docs/reference/errors.md); raise the first failure."""
    if not isinstance(req.community_id, int) or isinstance(req.community_id, bool) or req.community_id <= 0:
        raise LedgerError(ErrorCode.MALFORMED_ID, field="community_id")
    for i, p in enumerate(req.postings):
        parse_uuid(p.account_id, f"postings[{i}].account_id")
    if req.transfer_id is not None:
        parse_uuid(req.transfer_id, "transfer_id")
    if req.actor_id is not None:
        parse_uuid(req.actor_id, "actor_id")
    check_idempotency_key(req.idempotency_key)
    if not isinstance(req.kind, str) or not _KIND_RE.match(req.kind):
        raise LedgerError(ErrorCode.INVALID_KIND, field="kind")
    check_metadata(req.metadata)
    if req.phase not in (Phase.SINGLE, Phase.PENDING):
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="phase")
    for i, p in enumerate(req.postings):
        if not isinstance(p.unit, Unit):
            raise LedgerError(ErrorCode.INVALID_UNIT, field=f"postings[{i}].unit")
    if not req.postings:
        raise LedgerError(ErrorCode.NO_POSTINGS, field="postings")
    if len(req.postings) > MAX_POSTINGS:
        raise LedgerError(ErrorCode.TOO_MANY_POSTINGS, field="postings", max=MAX_POSTINGS)
    for i, p in enumerate(req.postings):
        check_amount(p.amount, f"postings[{i}].amount")
    if len({p.account_id for p in req.postings}) != len(req.postings):
        raise LedgerError(ErrorCode.DUPLICATE_ACCOUNT, field="postings")
    check_zero_sum(req.postings)
    _check_times(req)


def _check_times(req: TransferRequest) -> None:
    if req.effective_us is not None and (not isinstance(req.effective_us, int) or req.effective_us < 0):
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="effective_us")
    if req.timeout_us is not None and (
        req.phase != Phase.PENDING or not isinstance(req.timeout_us, int) or req.timeout_us <= 0
    ):
        raise LedgerError(ErrorCode.INVALID_TIMEOUT, field="timeout_us")
    for i, p in enumerate(req.postings):
        if p.expires_at_us is not None and (
            p.amount < 0
            or p.unit != Unit.POINTS
            or not isinstance(p.expires_at_us, int)
            or p.expires_at_us < 0
        ):
            raise LedgerError(ErrorCode.INVALID_EXPIRY, field=f"postings[{i}].expires_at_us")


def check_zero_sum(postings: tuple[Posting, ...] | list[Posting]) -> None:
    totals: dict[Unit, int] = defaultdict(int)
    for p in postings:
        totals[p.unit] += p.amount
    unbalanced = sorted(str(u) for u, total in totals.items() if total != 0)
    if unbalanced:
        raise LedgerError(ErrorCode.UNBALANCED_POSTINGS, unit=unbalanced[0])


def validate_resolve(req: ResolveRequest) -> None:
    parse_uuid(req.pending_id, "pending_id")
    if req.actor_id is not None:
        parse_uuid(req.actor_id, "actor_id")
    check_idempotency_key(req.idempotency_key)
    if req.phase not in (Phase.POST, Phase.VOID) or (req.phase == Phase.VOID and req.amounts is not None):
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="phase")
    for account_id, amount in (req.amounts or {}).items():
        parse_uuid(account_id, "amounts")
        check_amount(amount, "amounts", positive=True)


def validate_reverse(req: ReverseRequest) -> None:
    parse_uuid(req.transfer_id, "transfer_id")
    if req.actor_id is not None:
        parse_uuid(req.actor_id, "actor_id")
    check_idempotency_key(req.idempotency_key)
    check_text(req.reason, "reason")
