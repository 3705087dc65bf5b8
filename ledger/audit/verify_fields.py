"""The fields of a decoded leaf, checked against docs/reference/leaves.md (the verifier's general path)."""

from __future__ import annotations

import json
import re
from typing import NamedTuple

__all__ = [
    "EVENT",
    "EVENT_TYPES",
    "TRANSFER_KEYS",
    "UNITS",
    "UNKNOWN",
    "LeafOutcome",
    "TransferFields",
    "check_leaf_value",
    "pair_key",
    "phase_code",
    "split_pair",
]

#: Leaf types besides "transfer" (ledger.services.log_events writes them; a unit test keeps the two equal).
EVENT_TYPES = frozenset({"key_rotation", "rule_set", "board"})
#: The units a posting may name (ledger.domain.units.Unit; a unit test keeps the two equal).
UNITS = frozenset({b"service_minutes", b"points", b"coin_minutes", b"score_points"})
#: Every transfer leaf has exactly these keys.
TRANSFER_KEYS = frozenset(
    {
        "v", "type", "origin", "index", "prev", "id", "kind", "phase", "effective_us", "recorded_us",
        "actor", "idempotency_key", "postings", "reverses", "pending_id", "timeout_us",
    }
)  # fmt: skip
# One byte per leaf records what it is, for the checks of later leaves that refer to it.
_PHASE_CODES = {b"single": ord("s"), b"pending": ord("p"), b"post": ord("P"), b"void": ord("v")}
EVENT = ord("e")
UNKNOWN = ord("?")
_PREV = re.compile(r"[0-9a-f]{64}")
_PHASES = frozenset({"single", "pending", "post", "void"})


def pair_key(account: str, unit: str) -> bytes:
    """The key posted sums are kept under: ``"account","unit"`` as canonical JSON, as leaves hold it."""
    return json.dumps([account, unit], ensure_ascii=False, separators=(",", ":"))[1:-1].encode(
        "utf-8", "surrogatepass"
    )


def split_pair(key: bytes) -> tuple[str, str]:
    """The account and unit of a ``pair_key``."""
    account, unit = json.loads(b"[" + key + b"]")
    return str(account), str(unit)


def phase_code(phase: bytes) -> int:
    """The code of a transfer phase (b"single", b"pending", b"post" or b"void")."""
    return _PHASE_CODES[phase]


class TransferFields(NamedTuple):
    """What the whole-log checks need of a transfer leaf (strings as their UTF-8 bytes)."""

    id: bytes
    phase: bytes
    postings: list[tuple[bytes, bytes, int]]  # (pair_key(account, unit), unit, amount)
    reverses: bytes | None
    pending_id: bytes | None
    timeout_null: bool

    @property
    def code(self) -> int:
        return _PHASE_CODES[self.phase]

    def phase_problem(self) -> str:
        """Why the phase does not fit "reverses", "pending_id" and "timeout_us", or ""."""
        phase = self.phase
        if phase in (b"post", b"void"):
            if self.pending_id is None:
                return '"pending_id" is required when the phase is post or void'
            if self.reverses is not None:
                return '"reverses" must be null when the phase is post or void'
        elif self.pending_id is not None:
            return '"pending_id" must be null unless the phase is post or void'
        if phase == b"pending":
            if self.reverses is not None:
                return '"reverses" must be null when the phase is pending'
        elif not self.timeout_null:
            return '"timeout_us" must be null unless the phase is pending'
        return ""


class LeafOutcome(NamedTuple):
    """The result of checking one decoded leaf: problems (check, expected, found, detail) and facts."""

    problems: list[tuple[str, object, object, str]]
    transfer: TransferFields | None
    code: int
    prev: bytes | None  # the leaf's "prev" as ASCII hex, if it has a valid one


def _opt_str(value: object) -> bool:
    return value is None or type(value) is str


def _opt_bytes(value: object) -> bytes | None:
    return None if value is None else str(value).encode("utf-8", "surrogatepass")


def _postings_problem(postings: object) -> str:
    if type(postings) is not list or not postings:
        return '"postings" must be a non-empty array'
    for i, p in enumerate(postings):
        if type(p) is not list or len(p) != 3:
            return f"posting {i} must be [account_id, unit, amount]"
        if type(p[0]) is not str or type(p[1]) is not str:
            return f"posting {i}: account_id and unit must be strings"
        if type(p[2]) is not int or p[2] == 0:
            return f"posting {i}: amount must be a non-zero integer"
    return ""


def _transfer_problem(value: dict[str, object]) -> str:
    keys = value.keys()
    if keys != TRANSFER_KEYS:
        missing = sorted(TRANSFER_KEYS - keys)
        extra = len(keys - TRANSFER_KEYS)  # counted, not named: unknown keys may hold anything
        return f"transfer leaf keys differ: missing {missing}, {extra} unexpected"
    checks = [
        *((type(value[k]) is str, f'"{k}" must be a string') for k in ("id", "kind", "idempotency_key")),
        *(
            (_opt_str(value[k]), f'"{k}" must be a string or null')
            for k in ("actor", "reverses", "pending_id")
        ),
        *((type(value[k]) is int, f'"{k}" must be an integer') for k in ("effective_us", "recorded_us")),
        (
            value["timeout_us"] is None or type(value["timeout_us"]) is int,
            '"timeout_us" must be an integer or null',
        ),
        (value["phase"] in _PHASES, '"phase" must be single, pending, post or void'),
    ]
    problem = next((message for ok, message in checks if not ok), "")
    return problem or _postings_problem(value["postings"])


def _transfer(value: dict[str, object]) -> TransferFields:
    postings = value["postings"]
    assert isinstance(postings, list)
    return TransferFields(
        str(value["id"]).encode("utf-8", "surrogatepass"),
        str(value["phase"]).encode(),
        [(pair_key(str(a), str(u)), str(u).encode("utf-8", "surrogatepass"), n) for a, u, n in postings],
        _opt_bytes(value["reverses"]),
        _opt_bytes(value["pending_id"]),
        value["timeout_us"] is None,
    )


def check_leaf_value(value: object, line_index: int, origin: str) -> LeafOutcome:
    """Check a decoded leaf's common keys and, by its type, its other fields."""
    problems: list[tuple[str, object, object, str]] = []
    if not isinstance(value, dict):
        problems.append(("leaf_fields", None, None, "a leaf must be a JSON object"))
        return LeafOutcome(problems, None, UNKNOWN, None)
    prev = value.get("prev")
    prev_hex = prev.encode() if type(prev) is str and _PREV.fullmatch(prev) else None
    if prev_hex is None:
        problems.append(("leaf_fields", None, None, '"prev" must be 64 lowercase hexadecimal digits'))
    version = value.get("v")
    if type(version) is not int or version != 1:
        problems.append(
            ("leaf_type", 1, version if type(version) is int else None, "unsupported leaf version")
        )
        return LeafOutcome(problems, None, UNKNOWN, prev_hex)
    leaf_origin = value.get("origin")
    if leaf_origin != origin:
        found = leaf_origin if type(leaf_origin) is str else None
        problems.append(("leaf_origin", origin, found, "the leaf names another origin"))
    index = value.get("index")
    if type(index) is not int:
        problems.append(("leaf_fields", None, None, '"index" must be an integer'))
    elif index != line_index:
        problems.append(("leaf_position", line_index, index, "the leaf's index is not its line's"))
    kind = value.get("type")
    if kind == "transfer":
        problem = _transfer_problem(value)
        if problem:
            problems.append(("leaf_fields", None, None, problem))
            return LeafOutcome(problems, None, UNKNOWN, prev_hex)
        return LeafOutcome(problems, _transfer(value), ord("s"), prev_hex)
    if kind in EVENT_TYPES:
        return LeafOutcome(problems, None, EVENT, prev_hex)
    problems.append(("leaf_type", None, None, "unknown leaf type"))
    return LeafOutcome(problems, None, UNKNOWN, prev_hex)
