"""Audit-log leaves: leaf and node hashing (RFC 9162) and the canonical leaf formats."""

from __future__ import annotations

import hashlib
import re
import uuid
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

from ledger.audit.jcs import (
    MAX_SAFE_INTEGER,
    CanonicalError,
    canonical_json,
    canonical_members,
    parse_canonical,
)

__all__ = [
    "LEAF_VERSION",
    "TRANSFER_PHASES",
    "ZERO_HASH",
    "LeafTemplate",
    "SingleTransferLeaves",
    "decode_leaf",
    "encode_leaf",
    "leaf_hash",
    "leaf_template",
    "node_hash",
    "origin_for",
    "transfer_leaf_body",
    "transfer_leaf_template",
]

#: Format version written in every leaf's "v" key.
LEAF_VERSION = 1
#: The "prev" hash of the first leaf (index 0) of every log.
ZERO_HASH = bytes(32)
#: Allowed values of a transfer leaf's "phase".
TRANSFER_PHASES = frozenset({"single", "pending", "post", "void"})

_HASH_LEN = 32
#: An id as a UUID or as text (the write paths pass the canonical text they already have).
Id = uuid.UUID | str
_PREV_HEX = re.compile(r"[0-9a-f]{64}")
# Keys the log fills in at append time; everything else is in the body.
_CHAIN_KEYS = ("index", "prev")


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || leaf bytes)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def origin_for(prefix: str, community_id: int) -> str:
    """The log origin of a community: ``<prefix>/community/<community_id>``."""
    return f"{prefix}/community/{community_id}"


@dataclass(frozen=True, slots=True)
class LeafTemplate:
    """A leaf's canonical bytes with holes for "index" and "prev".

    The leaf is ``prefix + decimal index + middle + lowercase hex prev + suffix``. The database
    fills the holes under the log's append lock with one concatenation, so the chain position is
    decided there while everything else is encoded here.
    """

    prefix: bytes
    middle: bytes
    suffix: bytes

    def render(self, index: int, prev: bytes) -> bytes:
        """The leaf bytes at ``index`` after a leaf whose leaf hash is ``prev`` (32 bytes)."""
        if type(index) is not int or not 0 <= index <= MAX_SAFE_INTEGER:
            raise ValueError("index must be an integer from 0 to 2**53-1")
        if not isinstance(prev, bytes) or len(prev) != _HASH_LEN:
            raise ValueError("prev must be a 32-byte hash")
        return b"".join((self.prefix, str(index).encode(), self.middle, prev.hex().encode(), self.suffix))


def leaf_template(body: Mapping[str, object]) -> LeafTemplate:
    """Encode every key of a leaf except "index" and "prev" into a LeafTemplate.

    ``body`` must hold "v" (int) and "origin" (str) and must not hold "index" or "prev".
    Raises ValueError for a bad body, CanonicalError (a ValueError) for a value that cannot be
    encoded canonically.
    """
    if "index" in body or "prev" in body:
        raise ValueError('a leaf body must not contain "index" or "prev"; the log fills them in')
    if type(body.get("v")) is not int:
        raise ValueError('a leaf body needs an integer "v"')
    if type(body.get("origin")) is not str:
        raise ValueError('a leaf body needs a string "origin"')
    members = canonical_members(body if type(body) is dict else dict(body))
    # Members are sorted by key; "index" and "prev" go where they sort (other keys may fall
    # between them). Commas go only where neighbouring members exist.
    i = bisect_left(members, "index", key=itemgetter(0))
    j = bisect_left(members, "prev", i, key=itemgetter(0))
    texts = [text for _, text in members]
    before, between, after = ",".join(texts[:i]), ",".join(texts[i:j]), ",".join(texts[j:])
    prefix = "{" + before + ',"index":' if before else '{"index":'
    middle = "," + between + ',"prev":"' if between else ',"prev":"'
    suffix = '",' + after + "}" if after else '"}'
    return LeafTemplate(prefix.encode("utf-8"), middle.encode("utf-8"), suffix.encode("utf-8"))


def encode_leaf(body: Mapping[str, object], index: int, prev: bytes) -> bytes:
    """The canonical bytes of the leaf ``{**body, "index": index, "prev": prev.hex()}``."""
    return leaf_template(body).render(index, prev)


def transfer_leaf_body(
    *,
    origin: str,
    transfer_id: str,
    kind: str,
    phase: str,
    effective_us: int,
    recorded_us: int,
    actor: str | None,
    idempotency_key: str,
    postings: Sequence[tuple[str, str, int]],
    reverses: str | None,
    pending_id: str | None,
    timeout_us: int | None,
) -> dict[str, object]:
    """The body (every key but "index" and "prev") of a transfer leaf.

    Every key is always present, null where absent, so that the key set is fixed. Postings must
    be non-empty, each amount a non-zero integer, and the amounts must sum to zero per unit;
    this re-checks what the domain layer already checked. Raises ValueError otherwise.
    """
    if not isinstance(phase, str) or phase not in TRANSFER_PHASES:
        raise ValueError(f"phase must be one of {', '.join(sorted(TRANSFER_PHASES))}")
    if not postings:
        raise ValueError("a transfer needs at least one posting")
    totals: dict[str, int] = {}
    rows: list[list[object]] = []
    for i, posting in enumerate(postings):
        if len(posting) != 3:
            raise ValueError(f"posting {i} must be (account_id, unit, amount)")
        account_id, unit, amount = posting
        if not isinstance(account_id, str) or not isinstance(unit, str):
            raise ValueError(f"posting {i}: account_id and unit must be strings")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
            raise ValueError(f"posting {i}: amount must be a non-zero integer")
        unit = str.__str__(unit)
        totals[unit] = totals.get(unit, 0) + amount
        rows.append([str.__str__(account_id), unit, int(amount)])
    unbalanced = sorted(unit for unit, total in totals.items() if total != 0)
    if unbalanced:
        raise ValueError(f"postings do not sum to zero for unit(s) {', '.join(unbalanced)}")
    return {
        "v": LEAF_VERSION,
        "type": "transfer",
        "origin": _text("origin", origin),
        "id": _text("transfer_id", transfer_id),
        "kind": _text("kind", kind),
        "phase": str.__str__(phase),
        "effective_us": _integer("effective_us", effective_us),
        "recorded_us": _integer("recorded_us", recorded_us),
        "actor": None if actor is None else _text("actor", actor),
        "idempotency_key": _text("idempotency_key", idempotency_key),
        "postings": rows,
        "reverses": None if reverses is None else _text("reverses", reverses),
        "pending_id": None if pending_id is None else _text("pending_id", pending_id),
        "timeout_us": None if timeout_us is None else _integer("timeout_us", timeout_us),
    }


def transfer_leaf_template(
    *,
    origin: str,
    transfer_id: Id,
    kind: str,
    phase: str,
    effective_us: int,
    recorded_us: int,
    actor: Id | None,
    idempotency_key: str,
    postings: Sequence[tuple[Id, str, int]],
    reverses: Id | None,
    pending_id: Id | None,
    timeout_us: int | None,
) -> LeafTemplate:
    """``leaf_template(transfer_leaf_body(...))`` with ids as UUIDs (or their text), written directly.

    The write paths call this once per transfer. Keys are fixed, so the members are formatted in
    their sorted order without building a dict; a value the direct form cannot write as it is (text
    that needs escaping or NFC checks, a number out of range) takes the general encoder, which gives
    the same bytes or the same error. tests/unit/test_leaf.py compares the two.
    """
    plain = _plain_ascii
    if not (
        plain(kind)
        and plain(idempotency_key)
        and plain(phase)
        and phase in TRANSFER_PHASES
        and _small_int(effective_us)
        and _small_int(recorded_us)
        and (timeout_us is None or _small_int(timeout_us))
        and _plain_id(transfer_id)
        and (actor is None or _plain_id(actor))
        and (reverses is None or _plain_id(reverses))
        and (pending_id is None or _plain_id(pending_id))
        and postings
        and _plain_postings(postings)
    ):
        return _general_template(
            origin, transfer_id, kind, phase, effective_us, recorded_us, actor, idempotency_key,
            postings, reverses, pending_id, timeout_us,
        )  # fmt: skip
    items = ",".join(f'["{a}","{u}",{n}]' for a, u, n in postings)
    prefix = (
        f'{{"actor":{_json_id(actor)},"effective_us":{effective_us},"id":"{transfer_id}",'
        f'"idempotency_key":"{idempotency_key}","index":'
    )
    middle = (
        f',"kind":"{kind}","origin":{_origin_json(origin)},"pending_id":{_json_id(pending_id)},'
        f'"phase":"{phase}","postings":[{items}],"prev":"'
    )
    timeout = "null" if timeout_us is None else str(timeout_us)
    suffix = (
        f'","recorded_us":{recorded_us},"reverses":{_json_id(reverses)},"timeout_us":{timeout},'
        f'"type":"transfer","v":{LEAF_VERSION}}}'
    )
    return LeafTemplate(prefix.encode(), middle.encode(), suffix.encode())


class SingleTransferLeaves:
    """Leaves of one log's single-phase transfers recorded at one instant, without "reverses",
    "pending_id" or "timeout_us" (the batch path writes thousands of them).

    ``render`` answers ``transfer_leaf_template(...).render(index, prev)`` for such a transfer in
    one step: the members that are the same for every leaf are formatted once, and text seen
    before (kinds, units, account ids) is not checked again. Anything the direct form cannot write
    as it is takes transfer_leaf_template itself, which gives the same bytes or the same error;
    tests/unit/test_leaf_single.py compares the two.
    """

    __slots__ = ("_direct", "_middle", "_origin", "_plain", "_recorded_us", "_suffix")

    def __init__(self, origin: str, recorded_us: int) -> None:
        self._origin = origin
        self._recorded_us = recorded_us
        self._plain: set[str] = set()  # text checked by _plain_ascii already
        try:
            origin_json = _origin_json(origin)
        except (TypeError, ValueError):  # not a canonical str: every leaf takes the general path,
            origin_json, self._direct = "", False  # which raises its error
        else:
            self._direct = _small_int(recorded_us)
        self._middle = f',"origin":{origin_json},"pending_id":null,"phase":"single","postings":['
        self._suffix = (
            f'","recorded_us":{recorded_us},"reverses":null,"timeout_us":null,"type":"transfer",'
            f'"v":{LEAF_VERSION}}}'
        )

    def render(
        self,
        index: int,
        prev: bytes,
        *,
        transfer_id: Id,
        kind: str,
        effective_us: int,
        actor: Id | None,
        idempotency_key: str,
        postings: Sequence[tuple[Id, str, int]],
    ) -> bytes:
        """The leaf bytes of this transfer at ``index`` after a leaf whose hash is ``prev``."""
        if not (
            self._direct
            and type(index) is int
            and 0 <= index <= MAX_SAFE_INTEGER
            and type(prev) is bytes
            and len(prev) == _HASH_LEN
            and ((type(kind) is str and kind in self._plain) or self._known(kind))
            and _plain_ascii(idempotency_key)
            and _small_int(effective_us)
            and _plain_id(transfer_id)
            and (actor is None or _plain_id(actor))
            and postings
            and self._plain_postings(postings)
        ):
            return transfer_leaf_template(
                origin=self._origin, transfer_id=transfer_id, kind=kind, phase="single",
                effective_us=effective_us, recorded_us=self._recorded_us, actor=actor,
                idempotency_key=idempotency_key, postings=postings, reverses=None, pending_id=None,
                timeout_us=None,
            ).render(index, prev)  # fmt: skip
        items = ",".join([f'["{a}","{u}",{n}]' for a, u, n in postings])
        actor_json = "null" if actor is None else f'"{actor}"'
        return (
            f'{{"actor":{actor_json},"effective_us":{effective_us},"id":"{transfer_id}",'
            f'"idempotency_key":"{idempotency_key}","index":{index},"kind":"{kind}"{self._middle}'
            f'{items}],"prev":"{prev.hex()}{self._suffix}'
        ).encode()

    def _known(self, value: object) -> bool:
        """_plain_ascii(value), remembered for each str that passes (values repeat across leaves)."""
        if type(value) is str and value in self._plain:
            return True
        if not _plain_ascii(value):
            return False
        if type(value) is str:
            self._plain.add(value)
        return True

    def _plain_postings(self, postings: Sequence[tuple[Id, str, int]]) -> bool:
        """_plain_postings, with each account id's and unit's text checked once (inlined: this
        runs for every posting of the batch)."""
        plain = self._plain
        totals: dict[str, int] = {}
        for posting in postings:
            if len(posting) != 3:
                return False
            account_id, unit, amount = posting
            if (
                type(amount) is not int
                or not amount
                or not -MAX_SAFE_INTEGER <= amount <= MAX_SAFE_INTEGER
                or not ((type(unit) is str and unit in plain) or self._known(unit))
                or not (
                    type(account_id) is uuid.UUID
                    or (type(account_id) is str and account_id in plain)
                    or self._known(account_id)
                )
            ):
                return False
            totals[unit] = totals.get(unit, 0) + amount
        return not any(totals.values())


def _general_template(
    origin: str,
    transfer_id: Id,
    kind: str,
    phase: str,
    effective_us: int,
    recorded_us: int,
    actor: Id | None,
    idempotency_key: str,
    postings: Sequence[tuple[Id, str, int]],
    reverses: Id | None,
    pending_id: Id | None,
    timeout_us: int | None,
) -> LeafTemplate:
    body = transfer_leaf_body(
        origin=origin,
        transfer_id=str(transfer_id),
        kind=kind,
        phase=phase,
        effective_us=effective_us,
        recorded_us=recorded_us,
        actor=None if actor is None else str(actor),
        idempotency_key=idempotency_key,
        postings=[(str(a), u, n) for a, u, n in postings],
        reverses=None if reverses is None else str(reverses),
        pending_id=None if pending_id is None else str(pending_id),
        timeout_us=timeout_us,
    )
    return leaf_template(body)


def _plain_ascii(value: object) -> bool:
    """A str written between quotes as it is: printable ASCII without quote or backslash."""
    return (
        isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and '"' not in value
        and "\\" not in value
    )


def _small_int(value: object) -> bool:
    return type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def _plain_id(value: object) -> bool:
    return type(value) is uuid.UUID or _plain_ascii(value)


def _plain_postings(postings: Sequence[tuple[Id, str, int]]) -> bool:
    totals: dict[str, int] = {}
    for posting in postings:
        if len(posting) != 3:
            return False
        account_id, unit, amount = posting
        if not _plain_id(account_id) or not _plain_ascii(unit) or not _small_int(amount) or not amount:
            return False
        totals[unit] = totals.get(unit, 0) + amount
    return not any(totals.values())


def _json_id(value: Id | None) -> str:
    return "null" if value is None else f'"{value}"'


@lru_cache(maxsize=256)
def _origin_json(origin: str) -> str:
    """The canonical JSON of an origin (validated and escaped once per origin, not per leaf)."""
    return canonical_json(_text("origin", origin)).decode()


def _text(name: str, value: object) -> str:
    """``value`` as a plain str (a StrEnum member becomes its value); ValueError if not a str."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return str.__str__(value)


def _integer(name: str, value: object) -> int:
    """``value`` as a plain int; ValueError if it is not an int (bool is not accepted)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return int(value)


def decode_leaf(data: bytes) -> dict[str, object]:
    """Strictly parse leaf bytes and check the keys every leaf has. Raises CanonicalError."""
    value = parse_canonical(data)
    if not isinstance(value, dict):
        raise CanonicalError("a leaf must be a JSON object")
    v = value.get("v")
    if type(v) is not int:
        raise CanonicalError('"v" must be an integer', "$.v")
    if v != LEAF_VERSION:
        raise CanonicalError(f"unsupported leaf version {v}", "$.v")
    if type(value.get("origin")) is not str:
        raise CanonicalError('"origin" must be a string', "$.origin")
    index = value.get("index")
    if type(index) is not int or index < 0:
        raise CanonicalError('"index" must be a non-negative integer', "$.index")
    prev = value.get("prev")
    if type(prev) is not str or not _PREV_HEX.fullmatch(prev):
        raise CanonicalError('"prev" must be 64 lowercase hexadecimal digits', "$.prev")
    return value
