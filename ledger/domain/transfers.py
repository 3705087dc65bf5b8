"""Transfer requests and their validation: everything checkable without the database."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import parse_uuid
from ledger.domain.units import Unit

# Amounts and balances stay within what every JSON reader represents exactly (RFC 8785 / IEEE double).
MAX_AMOUNT = 2**53 - 1
MAX_POSTINGS = 64
# Instants are microseconds since 1970 UTC and must stay exact in every JSON reader (2^53 - 1 µs is
# the year 2255); a reservation lasts at most ten years.
MAX_TIME_US = MAX_AMOUNT
MAX_TIMEOUT_US = 10 * 366 * 86_400_000_000
_KEY_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")
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

    def request_hash(self, id_text: Callable[[uuid.UUID], str] = str) -> bytes:
        """SHA-256 over what the client asked for; two requests with one key must hash alike.

        Call it on a validated request: fields are then ids, restricted text and integers, none of
        which contains the separators (ASCII 0x1d-0x1f), so the encoding is unambiguous.
        ``id_text`` writes an account id; it must return ``str(id)`` (the batch path passes a cache).
        """
        postings = "\x1d".join(
            [
                f"{id_text(p.account_id)}\x1e{p.unit.value}\x1e{p.amount}\x1e{p.expires_at_us}"
                for p in self.postings
            ]
        )
        metadata = _METADATA_JSON(self.metadata) if self.metadata else "{}"
        text = (
            f"transfer/2\x1f{self.community_id}\x1f{self.kind}\x1f{self.phase.value}\x1f{postings}"
            f"\x1f{self.effective_us}\x1f{self.actor_id}\x1f{self.transfer_id}\x1f{self.timeout_us}"
            f"\x1f{metadata}"
        )
        return hashlib.sha256(text.encode()).digest()


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


_METADATA_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _hash_json(body: dict[str, object]) -> bytes:
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).digest()


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise LedgerError(ErrorCode.INVALID_IDEMPOTENCY_KEY, field="idempotency_key")
    return key


def check_text(value: str, field_name: str) -> str:
    """Reject text that cannot be encoded canonically (control characters, non-NFC)."""
    if _CONTROL_RE.search(value) or not unicodedata.is_normalized("NFC", value):
        raise LedgerError(ErrorCode.NON_CANONICAL_TEXT, field=field_name)
    return value


class _FirstFault:
    """Collects a request's faults and keeps the one that comes first in ErrorCode.

    Every check runs (a valid request pays for all of them anyway), so the code reported does not
    depend on the order the checks are written in, only on the documented precedence.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: LedgerError | None = None

    def add(self, code: ErrorCode, field: str) -> None:
        if self.error is None or code.precedence < self.error.code.precedence:
            self.error = LedgerError(code, field=field)

    def offer(self, error: LedgerError) -> None:
        if self.error is None or error.code.precedence < self.error.code.precedence:
            self.error = error

    def raise_first(self) -> None:
        if self.error is not None:
            raise self.error


def _metadata_faults(value: object, path: str, faults: _FirstFault) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_AMOUNT:
            faults.add(ErrorCode.AMOUNT_OVERFLOW, path)
    elif isinstance(value, str):
        if _CONTROL_RE.search(value) or not unicodedata.is_normalized("NFC", value):
            faults.add(ErrorCode.NON_CANONICAL_TEXT, path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _metadata_faults(item, f"{path}[{i}]", faults)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                faults.add(ErrorCode.MALFORMED_REQUEST, path)
                continue
            if not key.isascii() or _CONTROL_RE.search(key):
                faults.add(ErrorCode.NON_CANONICAL_TEXT, path)
            _metadata_faults(item, f"{path}.{key}", faults)
    else:
        faults.add(ErrorCode.MALFORMED_REQUEST, path)


def check_metadata(value: object, path: str = "metadata") -> None:
    """Metadata is JSON with integer numbers and canonical strings only (no floats: no money drift)."""
    faults = _FirstFault()
    _metadata_faults(value, path, faults)
    faults.raise_first()


def _amount_fault(amount: object, *, positive: bool = False) -> ErrorCode | None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0 or (positive and amount < 0):
        return ErrorCode.INVALID_AMOUNT
    if abs(amount) > MAX_AMOUNT:
        return ErrorCode.AMOUNT_OVERFLOW
    return None


def check_amount(amount: object, field_name: str, *, positive: bool = False) -> int:
    code = _amount_fault(amount, positive=positive)
    if code is not None:
        raise LedgerError(code, field=field_name)
    assert isinstance(amount, int)  # narrowed by _amount_fault
    return amount


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_transfer(req: TransferRequest) -> None:
    """Check a request without the database; raise its first fault in precedence order.

    The order is ErrorCode's (docs/reference/errors.md), whatever order the faults occur in.
    """
    if not _plainly_valid(req):
        _check_every_field(req)


def _check_every_field(req: TransferRequest) -> None:
    """validate_transfer's general path: every check, then the first fault in precedence order."""
    postings = req.postings
    if not isinstance(postings, tuple | list) or not all(isinstance(p, Posting) for p in postings):
        raise LedgerError(ErrorCode.MALFORMED_REQUEST, field="postings")
    faults = _FirstFault()
    ids_ok = _envelope_faults(req, faults)
    _posting_faults(postings, faults, ids_ok=ids_ok)
    _time_faults(req, faults)
    faults.raise_first()


def _plainly_valid(req: TransferRequest) -> bool:
    """Whether ``req`` has the common shape and no fault, checked in one pass (the batch path
    validates many requests). False means "not shown here": _check_every_field then decides, and
    it alone reports faults, so codes, fields and precedence are its own.

    The common shape: a tuple of postings (in one unit or several, each summing to zero), ids that
    are UUIDs, no timeout, metadata a dict (or None). Every condition here implies the general
    check it stands for.
    """
    postings = req.postings
    if type(postings) is not tuple or not 0 < len(postings) <= MAX_POSTINGS:
        return False
    totals: dict[Unit, int] = {}
    for p in postings:
        if type(p) is not Posting:
            return False
        unit, amount = p.unit, p.amount
        if (
            type(unit) is not Unit
            or type(amount) is not int
            or not amount
            or not -MAX_AMOUNT <= amount <= MAX_AMOUNT
            or type(p.account_id) is not uuid.UUID
        ):
            return False
        expires_at_us = p.expires_at_us
        if expires_at_us is not None and (
            type(expires_at_us) is not int
            or not 0 <= expires_at_us <= MAX_TIME_US
            or unit is not Unit.POINTS
            or amount < 0
        ):
            return False
        totals[unit] = totals.get(unit, 0) + amount
    if any(totals.values()) or len({p.account_id.int for p in postings}) != len(postings):
        return False
    effective_us, metadata = req.effective_us, req.metadata
    return (
        (req.phase is Phase.SINGLE or req.phase is Phase.PENDING)
        and req.timeout_us is None
        and (effective_us is None or (type(effective_us) is int and 0 <= effective_us <= MAX_TIME_US))
        and type(req.community_id) is int
        and req.community_id > 0
        and (req.transfer_id is None or type(req.transfer_id) is uuid.UUID)
        and (req.actor_id is None or type(req.actor_id) is uuid.UUID)
        and type(req.idempotency_key) is str
        and _KEY_RE.fullmatch(req.idempotency_key) is not None
        and type(req.kind) is str
        and _KIND_RE.fullmatch(req.kind) is not None
        and (metadata is None or (type(metadata) is dict and (not metadata or _metadata_ok(metadata))))
    )


def _metadata_ok(metadata: dict[str, object]) -> bool:
    """Whether metadata has no fault: flat metadata of ASCII text and small numbers (what the
    services write) is seen in one pass; anything else is walked by _metadata_faults."""
    for key, item in metadata.items():
        if not (isinstance(key, str) and key.isascii() and key.isprintable()):
            break
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if abs(item) > MAX_AMOUNT:
                break
        # ASCII is NFC, and printable ASCII holds no control character.
        elif not (isinstance(item, str) and item.isascii() and item.isprintable()):
            break
    else:
        return True
    faults = _FirstFault()
    _metadata_faults(metadata, "metadata", faults)
    return faults.error is None


def _envelope_faults(req: TransferRequest, faults: _FirstFault) -> bool:
    """Phase, times, metadata, ids, key and kind; returns whether every posting's account id parsed."""
    if req.phase not in (Phase.SINGLE, Phase.PENDING):
        faults.add(ErrorCode.MALFORMED_REQUEST, "phase")
    if req.effective_us is not None and (
        not _is_int(req.effective_us) or not 0 <= req.effective_us <= MAX_TIME_US
    ):
        faults.add(ErrorCode.MALFORMED_REQUEST, "effective_us")
    _metadata_faults(req.metadata, "metadata", faults)
    if not _is_int(req.community_id) or req.community_id <= 0:
        faults.add(ErrorCode.MALFORMED_ID, "community_id")
    ids_ok = True
    for i, p in enumerate(req.postings):
        if type(p.account_id) is not uuid.UUID:
            ids_ok = _id_ok(p.account_id, f"postings[{i}].account_id", faults) and ids_ok
    for value, name in ((req.transfer_id, "transfer_id"), (req.actor_id, "actor_id")):
        if value is not None and type(value) is not uuid.UUID:
            _id_ok(value, name, faults)
    if not isinstance(req.idempotency_key, str) or not _KEY_RE.fullmatch(req.idempotency_key):
        faults.add(ErrorCode.INVALID_IDEMPOTENCY_KEY, "idempotency_key")
    if not isinstance(req.kind, str) or not _KIND_RE.fullmatch(req.kind):
        faults.add(ErrorCode.INVALID_KIND, "kind")
    return ids_ok


def _id_ok(value: object, name: str, faults: _FirstFault) -> bool:
    try:
        parse_uuid(value, name)
    except LedgerError as exc:
        faults.offer(exc)
        return False
    return True


def _posting_faults(
    postings: tuple[Posting, ...] | list[Posting], faults: _FirstFault, *, ids_ok: bool
) -> None:
    """Units, posting count, amounts, duplicate accounts and the zero sum per unit."""
    units_ok = amounts_ok = True
    for i, p in enumerate(postings):
        if not isinstance(p.unit, Unit):
            faults.add(ErrorCode.INVALID_UNIT, f"postings[{i}].unit")
            units_ok = False
        code = _amount_fault(p.amount)
        if code is not None:
            faults.add(code, f"postings[{i}].amount")
            amounts_ok = amounts_ok and _is_int(p.amount)
    if not postings:
        faults.add(ErrorCode.NO_POSTINGS, "postings")
    elif len(postings) > MAX_POSTINGS:
        faults.offer(LedgerError(ErrorCode.TOO_MANY_POSTINGS, field="postings", max=MAX_POSTINGS))
    if ids_ok and len({p.account_id for p in postings}) != len(postings):
        faults.add(ErrorCode.DUPLICATE_ACCOUNT, "postings")
    if units_ok and amounts_ok:
        try:
            check_zero_sum(postings)
        except LedgerError as exc:
            faults.offer(exc)


def _time_faults(req: TransferRequest, faults: _FirstFault) -> None:
    if req.timeout_us is not None and (
        req.phase != Phase.PENDING or not _is_int(req.timeout_us) or not 0 < req.timeout_us <= MAX_TIMEOUT_US
    ):
        faults.add(ErrorCode.INVALID_TIMEOUT, "timeout_us")
    for i, p in enumerate(req.postings):
        if p.expires_at_us is not None and (
            not _is_int(p.expires_at_us)
            or not 0 <= p.expires_at_us <= MAX_TIME_US
            or p.unit != Unit.POINTS
            or not _is_int(p.amount)
            or p.amount < 0
        ):
            faults.add(ErrorCode.INVALID_EXPIRY, f"postings[{i}].expires_at_us")


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
