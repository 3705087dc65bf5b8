"""Unit tests for the pure ledger domain: balances, lots, transfer validation and its precedence,
account flags, ids and request hashes (no database)."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import ids
from ledger.domain.accounts import (
    SYSTEM_ACCOUNTS,
    AccountFlags,
    AccountSpec,
    OwnerKind,
    member_account_flags,
)
from ledger.domain.balances import BalanceState
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import parse_uuid, uuid7, uuid7_many, uuid7_series_prefix
from ledger.domain.lots import LotState, consume, restore
from ledger.domain.transfers import (
    MAX_AMOUNT,
    Phase,
    Posting,
    ResolveRequest,
    ReverseRequest,
    TransferRequest,
    validate_transfer,
)
from ledger.domain.units import Unit

A = uuid.UUID("01900000-0000-7000-8000-00000000000a")
B = uuid.UUID("01900000-0000-7000-8000-00000000000b")


def us(*ymd: int) -> int:
    return int(datetime(*ymd, tzinfo=UTC).timestamp()) * 1_000_000


def error_of(action: Callable[[], object]) -> LedgerError:
    with pytest.raises(LedgerError) as exc_info:
        action()
    return exc_info.value


def code_of(action: Callable[[], object]) -> ErrorCode:
    return error_of(action).code


# ------------------------------------------------------------------------------------- balances


def state(flags: AccountFlags = AccountFlags.NON_NEGATIVE, credit_limit: int = 0, **kw: int) -> BalanceState:
    return BalanceState(A, Unit.COIN_MINUTES, flags, credit_limit, **kw)


def test_single_credit_and_debit_move_posted() -> None:
    s = state()
    s.apply(Phase.SINGLE, 100)
    s.apply(Phase.SINGLE, -30)
    assert (s.posted, s.pending_in, s.pending_out, s.available, s.version) == (70, 0, 0, 70, 2)


def test_pending_debit_reserves_and_pending_credit_is_not_spendable() -> None:
    s = state(posted=100)
    s.apply(Phase.PENDING, -40)
    assert (s.posted, s.pending_out, s.available) == (100, 40, 60)
    s.apply(Phase.PENDING, 25)
    assert (s.pending_in, s.available) == (25, 60)  # incoming reservations are not spendable
    assert s.version == 2


def test_post_releases_the_reservation_and_posts_what_is_posted() -> None:
    s = state(posted=100, pending_out=40, pending_in=25)
    s.apply(Phase.POST, -30, pending_amount=-40)  # partial: 30 of the 40 reserved
    assert (s.posted, s.pending_out, s.available) == (70, 0, 70)
    s.apply(Phase.POST, 25, pending_amount=25)
    assert (s.posted, s.pending_in, s.version) == (95, 0, 2)


def test_void_releases_only() -> None:
    s = state(posted=100, pending_out=40, pending_in=25)
    s.apply(Phase.VOID, -40, pending_amount=-40)
    s.apply(Phase.VOID, 25, pending_amount=25)
    assert (s.posted, s.pending_in, s.pending_out, s.version) == (100, 0, 0, 2)


@pytest.mark.parametrize("phase", [Phase.SINGLE, Phase.PENDING])
def test_non_negative_refuses_to_go_below_zero(phase: Phase) -> None:
    s = state(posted=50, pending_out=10)
    err = error_of(lambda: s.apply(phase, -41))
    assert err.code == ErrorCode.INSUFFICIENT_FUNDS
    assert err.detail == {"account_id": str(A), "available": 40, "requested": 41}
    fresh = state(posted=50, pending_out=10)
    fresh.apply(phase, -40)
    assert fresh.available == 0


def test_credit_limit_is_the_floor() -> None:
    s = state(credit_limit=30)
    s.apply(Phase.SINGLE, -30)
    assert s.available == -30
    assert code_of(lambda: s.apply(Phase.SINGLE, -1)) == ErrorCode.INSUFFICIENT_FUNDS


def test_accounts_without_non_negative_may_go_negative() -> None:
    s = state(flags=AccountFlags.NONE)
    s.apply(Phase.SINGLE, -500)
    s.apply(Phase.PENDING, -500)
    assert s.available == -1000


def test_an_account_below_its_floor_may_still_receive() -> None:
    """Only a change that lowers ``available`` is refused, so credits and releases always pass."""
    s = state(posted=-5)
    s.apply(Phase.SINGLE, 3)
    s.apply(Phase.PENDING, 10)
    assert s.available == -2


@pytest.mark.parametrize(
    ("start", "phase", "amount", "pending_amount"),
    [
        ({"posted": MAX_AMOUNT}, Phase.SINGLE, 1, 0),
        ({"posted": -MAX_AMOUNT}, Phase.SINGLE, -1, 0),
        ({"pending_out": MAX_AMOUNT, "posted": MAX_AMOUNT}, Phase.PENDING, -1, 0),
        ({"pending_in": MAX_AMOUNT}, Phase.PENDING, 1, 0),
        ({"posted": MAX_AMOUNT, "pending_in": 5}, Phase.POST, 5, 5),
    ],
)
def test_balance_overflow(start: dict[str, int], phase: Phase, amount: int, pending_amount: int) -> None:
    s = state(flags=AccountFlags.NONE, **start)
    assert code_of(lambda: s.apply(phase, amount, pending_amount)) == ErrorCode.BALANCE_OVERFLOW


def test_overflow_is_reported_before_insufficient_funds() -> None:
    s = state(pending_out=MAX_AMOUNT)  # a corrupt reservation: available is far below zero
    assert code_of(lambda: s.apply(Phase.PENDING, -1)) == ErrorCode.BALANCE_OVERFLOW


@given(
    st.lists(st.tuples(st.sampled_from([Phase.SINGLE, Phase.PENDING]), st.integers(-100, 100)), max_size=40)
)
def test_non_negative_never_ends_below_its_floor(ops: list[tuple[Phase, int]]) -> None:
    s = state(credit_limit=20)
    for phase, amount in ops:
        if amount == 0:
            continue
        trial = replace(s)
        refused = s.available + min(amount, 0) < -20  # only a debit past the floor is refused
        if refused:
            assert code_of(lambda t=trial, p=phase, a=amount: t.apply(p, a)) == ErrorCode.INSUFFICIENT_FUNDS
            continue
        trial.apply(phase, amount)
        s = trial
        assert s.available >= -20


# ----------------------------------------------------------------------------------------- lots


def lot(n: int, remaining: int, expires_us: int | None, earned_us: int) -> LotState:
    return LotState(uuid.UUID(int=n), remaining, expires_us, earned_us)


def test_consume_takes_the_soonest_expiry_first_and_never_expiring_last() -> None:
    never = lot(1, 10, None, us(2025, 1, 1))
    late = lot(2, 10, us(2026, 1, 1), us(2025, 1, 2))
    soon = lot(3, 10, us(2025, 6, 1), us(2025, 3, 1))
    taken = consume([never, late, soon], 25)
    assert taken == [(soon.lot_id, 10), (late.lot_id, 10), (never.lot_id, 5)]
    assert (soon.remaining, late.remaining, never.remaining) == (0, 0, 5)


def test_consume_breaks_expiry_ties_by_earning_date_then_id() -> None:
    expiry = us(2025, 12, 31)
    newer = lot(1, 5, expiry, us(2025, 5, 1))
    older_b = lot(3, 5, expiry, us(2025, 4, 1))
    older_a = lot(2, 5, expiry, us(2025, 4, 1))
    assert [lot_id for lot_id, _ in consume([newer, older_b, older_a], 15)] == [
        older_a.lot_id,
        older_b.lot_id,
        newer.lot_id,
    ]


def test_consume_skips_empty_lots_and_can_start_with_a_named_lot() -> None:
    empty = lot(1, 0, us(2025, 1, 1), us(2024, 1, 1))
    soon = lot(2, 10, us(2025, 2, 1), us(2024, 1, 1))
    named = lot(3, 10, None, us(2024, 6, 1))
    assert consume([empty, soon, named], 15, first=named.lot_id) == [(named.lot_id, 10), (soon.lot_id, 5)]


def test_consume_running_short_is_a_broken_invariant() -> None:
    with pytest.raises(AssertionError):
        consume([lot(1, 5, None, 0)], 6)


def test_restore_gives_back_the_last_taken_first() -> None:
    consumed = [(uuid.UUID(int=1), 10), (uuid.UUID(int=2), 10), (uuid.UUID(int=3), 5)]
    assert restore(consumed, 12) == [(uuid.UUID(int=3), 5), (uuid.UUID(int=2), 7)]
    assert restore(consumed, 25) == [(uuid.UUID(int=3), 5), (uuid.UUID(int=2), 10), (uuid.UUID(int=1), 10)]
    with pytest.raises(AssertionError):
        restore(consumed, 26)


def test_scenario_7_two_lots_with_the_same_year_end_expiry() -> None:
    """domain.md scenario 7: lots of 30 (earned March) and 20 (November), both expiring at the end of
    the year; redeeming 40 in December uses the 30, then 10 of the 20, leaving 10 to expire."""
    year_end = us(2026, 1, 1)
    november = lot(1, 20, year_end, us(2025, 11, 10))  # listed first: order must come from the dates
    march = lot(2, 30, year_end, us(2025, 3, 15))
    assert consume([november, march], 40) == [(march.lot_id, 30), (november.lot_id, 10)]
    assert (march.remaining, november.remaining) == (0, 10)
    # Cancelling 15 of that redemption gives back the November points first, then March's.
    assert restore([(march.lot_id, 30), (november.lot_id, 10)], 15) == [
        (november.lot_id, 10),
        (march.lot_id, 5),
    ]


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.one_of(st.none(), st.integers(0, 5)), st.integers(0, 5)), min_size=1
    ),
    st.data(),
)
def test_consume_drains_lots_in_order(spec: list[tuple[int, int | None, int]], data: st.DataObject) -> None:
    lots = [lot(i, rem, exp, earned) for i, (rem, exp, earned) in enumerate(spec)]
    total = sum(x.remaining for x in lots)
    if total == 0:
        return
    amount = data.draw(st.integers(1, total))
    before = {x.lot_id: x.remaining for x in lots}
    taken = consume(lots, amount)
    assert sum(t for _, t in taken) == amount
    order = [x.lot_id for x in sorted(lots, key=LotState.order_key) if before[x.lot_id] > 0]
    # What is taken is a prefix of the order; every lot but the last taken is drained.
    assert [lot_id for lot_id, _ in taken] == order[: len(taken)]
    assert all(before[lot_id] == t for lot_id, t in taken[:-1])


# ---------------------------------------------------------------------------- validate_transfer


def request(**kw: Any) -> TransferRequest:
    fields: dict[str, Any] = {
        "community_id": 1,
        "kind": "move",
        "postings": (Posting(A, Unit.POINTS, -10), Posting(B, Unit.POINTS, 10)),
        "idempotency_key": "k",
    }
    fields.update(kw)
    return TransferRequest(**fields)


def test_a_valid_request_passes() -> None:
    validate_transfer(request())
    validate_transfer(request(phase=Phase.PENDING, timeout_us=1, metadata={"a": [1, "文字", None, True]}))
    validate_transfer(
        request(postings=(Posting(A, Unit.POINTS, -10), Posting(B, Unit.POINTS, 10, us(2026, 1, 1))))
    )


def _set_posting(i: int, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(f: dict[str, Any]) -> None:
        postings = list(f["postings"])
        postings[i] = replace(postings[i], **changes)
        f["postings"] = tuple(postings)

    return mutate


def _amounts(a: int, b: int) -> Callable[[dict[str, Any]], None]:
    def mutate(f: dict[str, Any]) -> None:
        f["postings"] = (replace(f["postings"][0], amount=a), replace(f["postings"][1], amount=b))

    return mutate


def _units(f: dict[str, Any]) -> None:
    f["postings"] = tuple(replace(p, unit="hours") for p in f["postings"])


_EVERY_POSTING_FIELD = frozenset({"postings", "accounts", "amounts", "units", "expiry"})

# One fault each: (code, what it touches, how to apply it). Faults touching the same thing are not
# combined (their combination would be a different fault, not two).
FAULTS: dict[str, tuple[ErrorCode, frozenset[str], Callable[[dict[str, Any]], None]]] = {
    "float-metadata": (
        ErrorCode.MALFORMED_REQUEST,
        frozenset({"metadata"}),
        lambda f: f.update(metadata={"r": 1.5}),
    ),
    "phase-post": (ErrorCode.MALFORMED_REQUEST, frozenset({"phase"}), lambda f: f.update(phase=Phase.POST)),
    "negative-effective": (
        ErrorCode.MALFORMED_REQUEST,
        frozenset({"effective"}),
        lambda f: f.update(effective_us=-1),
    ),
    "community-zero": (ErrorCode.MALFORMED_ID, frozenset({"community"}), lambda f: f.update(community_id=0)),
    "transfer-id": (
        ErrorCode.MALFORMED_ID,
        frozenset({"transfer_id"}),
        lambda f: f.update(transfer_id="transfer_id"),
    ),
    "account-id": (ErrorCode.MALFORMED_ID, frozenset({"accounts"}), _set_posting(0, account_id="x")),
    "actor-id": (ErrorCode.MALFORMED_ID, frozenset({"actor"}), lambda f: f.update(actor_id="someone")),
    "empty-key": (
        ErrorCode.INVALID_IDEMPOTENCY_KEY,
        frozenset({"key"}),
        lambda f: f.update(idempotency_key=""),
    ),
    "bad-kind": (ErrorCode.INVALID_KIND, frozenset({"kind"}), lambda f: f.update(kind="Bad Kind")),
    "control-char": (
        ErrorCode.NON_CANONICAL_TEXT,
        frozenset({"metadata"}),
        lambda f: f.update(metadata={"n": "\x07"}),
    ),
    "unknown-unit": (ErrorCode.INVALID_UNIT, frozenset({"units"}), _units),
    "no-postings": (ErrorCode.NO_POSTINGS, _EVERY_POSTING_FIELD, lambda f: f.update(postings=())),
    "too-many": (
        ErrorCode.TOO_MANY_POSTINGS,
        _EVERY_POSTING_FIELD,
        lambda f: f.update(
            postings=tuple(Posting(uuid.UUID(int=i), Unit.POINTS, (-1) ** i) for i in range(66))
        ),
    ),
    "zero-amount": (ErrorCode.INVALID_AMOUNT, frozenset({"amounts"}), _amounts(0, 0)),
    "overflow": (ErrorCode.AMOUNT_OVERFLOW, frozenset({"amounts"}), _amounts(-(2**60), 2**60)),
    "duplicate": (ErrorCode.DUPLICATE_ACCOUNT, frozenset({"accounts"}), _set_posting(1, account_id=A)),
    "unbalanced": (ErrorCode.UNBALANCED_POSTINGS, frozenset({"amounts"}), _amounts(-10, 9)),
    "timeout-on-single": (
        ErrorCode.INVALID_TIMEOUT,
        frozenset({"timeout"}),
        lambda f: f.update(timeout_us=5),
    ),
    "expiry-on-debit": (ErrorCode.INVALID_EXPIRY, frozenset({"expiry"}), _set_posting(0, expires_at_us=5)),
}


def _reported(*names: str) -> ErrorCode:
    fields: dict[str, Any] = {
        "community_id": 1,
        "kind": "move",
        "postings": (Posting(A, Unit.POINTS, -10), Posting(B, Unit.POINTS, 10)),
        "idempotency_key": "k",
    }
    for name in names:
        FAULTS[name][2](fields)
    return code_of(lambda: validate_transfer(TransferRequest(**fields)))


def _precedence_violations() -> list[tuple[str, str, ErrorCode, ErrorCode]]:
    """Every compatible pair of faults whose reported code is not the earlier one in ErrorCode."""
    out = []
    for (n1, (c1, t1, _)), (n2, (c2, t2, _)) in itertools.combinations(FAULTS.items(), 2):
        if t1 & t2:
            continue
        expected = min(c1, c2, key=lambda c: c.precedence)
        got = _reported(n1, n2)
        if got != expected:
            out.append((n1, n2, expected, got))
    return out


@pytest.mark.parametrize("name", FAULTS)
def test_each_fault_alone_has_its_code(name: str) -> None:
    assert _reported(name) == FAULTS[name][0]


def test_every_pair_of_faults_reports_the_earlier_code() -> None:
    assert _precedence_violations() == []


def test_community_id_must_be_a_positive_int() -> None:
    for bad in (0, -1, True, "1", 1.0):
        assert code_of(lambda bad=bad: validate_transfer(request(community_id=bad))) == ErrorCode.MALFORMED_ID


def test_metadata_rules() -> None:
    ok = {"s": "NFC 文字", "n": MAX_AMOUNT, "l": [None, False, {"x": -1}]}
    validate_transfer(request(metadata=ok))
    cases = [
        ({"s": "e\u0301"}, ErrorCode.NON_CANONICAL_TEXT),
        ({"s": "\u0085"}, ErrorCode.NON_CANONICAL_TEXT),  # a C1 control
        ({"键": 1}, ErrorCode.NON_CANONICAL_TEXT),
        ({"n": MAX_AMOUNT + 1}, ErrorCode.AMOUNT_OVERFLOW),
        ({"f": 0.5}, ErrorCode.MALFORMED_REQUEST),
        ({"b": b"bytes"}, ErrorCode.MALFORMED_REQUEST),
    ]
    for metadata, code in cases:
        assert code_of(lambda m=metadata: validate_transfer(request(metadata=m))) == code, metadata


def test_idempotency_key_alphabet_and_length() -> None:
    for good in ("a", "A-b_c.d:e", "k" * 128):
        validate_transfer(request(idempotency_key=good))
    for bad in ("", "k" * 129, "with space", "键", "a/b", "\na", None, 5):
        assert (
            code_of(lambda k=bad: validate_transfer(request(idempotency_key=k)))
            == ErrorCode.INVALID_IDEMPOTENCY_KEY
        )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"idempotency_key": "k\n"}, ErrorCode.INVALID_IDEMPOTENCY_KEY),
        ({"kind": "move\n"}, ErrorCode.INVALID_KIND),
        ({"transfer_id": str(A) + "\n"}, ErrorCode.MALFORMED_ID),
    ],
)
def test_a_trailing_newline_is_refused(change: dict[str, Any], code: ErrorCode) -> None:
    assert code_of(lambda: validate_transfer(request(**change))) == code


def test_timeout_and_expiry_rules() -> None:
    validate_transfer(request(phase=Phase.PENDING, timeout_us=1))
    for kw in (
        {"timeout_us": 1},
        {"phase": Phase.PENDING, "timeout_us": 0},
        {"phase": Phase.PENDING, "timeout_us": -5},
    ):
        assert code_of(lambda kw=kw: validate_transfer(request(**kw))) == ErrorCode.INVALID_TIMEOUT
    coin_credit = (Posting(A, Unit.COIN_MINUTES, -5), Posting(B, Unit.COIN_MINUTES, 5, 10))
    negative = (Posting(A, Unit.POINTS, -5), Posting(B, Unit.POINTS, 5, -1))
    for postings in (coin_credit, negative):
        assert code_of(lambda p=postings: validate_transfer(request(postings=p))) == ErrorCode.INVALID_EXPIRY


def test_zero_sum_is_per_unit() -> None:
    mixed = (
        Posting(A, Unit.POINTS, -10),
        Posting(B, Unit.POINTS, 10),
        Posting(uuid.UUID(int=3), Unit.COIN_MINUTES, -60),
        Posting(uuid.UUID(int=4), Unit.COIN_MINUTES, 60),
    )
    validate_transfer(request(postings=mixed))
    crossed = (Posting(A, Unit.POINTS, -10), Posting(B, Unit.COIN_MINUTES, 10))
    err = error_of(lambda: validate_transfer(request(postings=crossed)))
    assert (err.code, err.detail) == (ErrorCode.UNBALANCED_POSTINGS, {"unit": "coin_minutes"})


# --------------------------------------------------------------------------------- account flags

_P, _C, _S, _H = Unit.POINTS, Unit.COIN_MINUTES, Unit.SCORE_POINTS, Unit.SERVICE_MINUTES
_F = AccountFlags
_OWNER = uuid.UUID(int=7)


@pytest.mark.parametrize("unit", list(Unit))
def test_member_and_system_accounts_are_valid(unit: Unit) -> None:
    for kind in (OwnerKind.PERSON, OwnerKind.HOUSEHOLD):
        AccountSpec(kind, unit, member_account_flags(unit), owner_id=_OWNER).validate()
        AccountSpec(kind, unit, member_account_flags(unit) | _F.CLOSED, owner_id=_OWNER).validate()
    for _code, flags in SYSTEM_ACCOUNTS[unit]:
        AccountSpec(OwnerKind.COMMUNITY, unit, flags).validate()


@pytest.mark.parametrize(
    ("kind", "unit", "flags", "owner_id", "credit_limit"),
    [
        (OwnerKind.PERSON, _C, _F.NON_NEGATIVE, _OWNER, 30),  # an overdraft facility
        (OwnerKind.COMMUNITY, _C, _F.NONE, None, 0),
        (OwnerKind.COMMUNITY, _H, _F.HOT | _F.CLOSED, None, 0),
        (OwnerKind.HOUSEHOLD, _P, _F.NON_NEGATIVE | _F.LOTS, _OWNER, 0),
    ],
)
def test_valid_account_specs(
    kind: OwnerKind, unit: Unit, flags: AccountFlags, owner_id: uuid.UUID | None, credit_limit: int
) -> None:
    AccountSpec(kind, unit, flags, owner_id=owner_id, credit_limit=credit_limit).validate()


@pytest.mark.parametrize(
    ("kind", "unit", "flags", "owner_id", "credit_limit"),
    [
        pytest.param(OwnerKind.COMMUNITY, _C, _F.HOT | _F.NON_NEGATIVE, None, 0, id="hot+non-negative"),
        pytest.param(OwnerKind.COMMUNITY, _P, _F.HOT | _F.LOTS | _F.NON_NEGATIVE, None, 0, id="hot+lots"),
        pytest.param(OwnerKind.PERSON, _P, _F.LOTS, _OWNER, 0, id="lots-without-non-negative"),
        pytest.param(OwnerKind.PERSON, _P, _F.LOTS | _F.NON_NEGATIVE, _OWNER, 1, id="lots-with-credit"),
        pytest.param(OwnerKind.PERSON, _S, _F.LOTS | _F.NON_NEGATIVE, _OWNER, 0, id="lots-not-points"),
        pytest.param(OwnerKind.PERSON, _C, _F.NON_NEGATIVE, _OWNER, -1, id="negative-credit-limit"),
        pytest.param(OwnerKind.PERSON, _S, _F.NONE, _OWNER, 5, id="credit-without-floor"),
        pytest.param(OwnerKind.COMMUNITY, _C, _F.NONE, _OWNER, 0, id="system-account-with-owner"),
        pytest.param(OwnerKind.PERSON, _C, _F.NON_NEGATIVE, None, 0, id="member-without-owner"),
    ],
)
def test_invalid_account_specs(
    kind: OwnerKind, unit: Unit, flags: AccountFlags, owner_id: uuid.UUID | None, credit_limit: int
) -> None:
    spec = AccountSpec(kind, unit, flags, owner_id=owner_id, credit_limit=credit_limit)
    err = error_of(spec.validate)
    assert (err.code, err.detail) == (ErrorCode.INVALID_ACCOUNT_FLAGS, {"flags": int(flags)})


# ------------------------------------------------------------------------------------------ ids


def test_uuid7_has_version_7_and_the_rfc_variant_and_a_current_timestamp() -> None:
    before_ms = datetime.now(UTC).timestamp() * 1000
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert abs((value.int >> 80) - before_ms) < 5_000


def test_uuid7_is_strictly_increasing() -> None:
    values = [uuid7() for _ in range(20_000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)


def test_uuid7_stays_monotonic_when_the_clock_stalls_or_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ns = [1_700_000_000_000 * 1_000_000]
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    monkeypatch.setattr(ids.time, "time_ns", lambda: now_ns[0])
    first = [uuid7() for _ in range(5000)]  # more than 4096 in one millisecond: borrows the next one
    now_ns[0] -= 10_000_000_000  # the wall clock steps back 10 s
    second = [uuid7() for _ in range(10)]
    values = first + second
    assert values == sorted(values) and len(set(values)) == len(values)
    assert {v.int >> 80 for v in first} == {1_700_000_000_000, 1_700_000_000_001}


def test_uuid7_many_continues_the_same_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ns = [1_700_000_000_000 * 1_000_000]
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    monkeypatch.setattr(ids.time, "time_ns", lambda: now_ns[0])
    values = [uuid7(), *uuid7_many(5000), uuid7(), *uuid7_many(3)]
    assert uuid7_many(0) == []
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(v.version == 7 and v.variant == uuid.RFC_4122 for v in values)
    assert {v.int >> 80 for v in values} == {1_700_000_000_000, 1_700_000_000_001}


def test_a_uuid7_series_is_ordered_unique_and_after_earlier_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefix and 12 hex digits of 0, 1, 2, … are UUIDv7s in increasing order (what the import's
    event statement builds on the server), between the ids drawn before and after it."""
    now_ns = [1_700_000_000_000 * 1_000_000]
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    monkeypatch.setattr(ids.time, "time_ns", lambda: now_ns[0])
    before = uuid7()
    prefixes = [uuid7_series_prefix() for _ in range(3)]
    after = uuid7()
    assert all(len(p) == 20 for p in prefixes) and len(set(prefixes)) == 3
    series = [uuid.UUID(p + f"{n:012x}") for p in prefixes for n in (0, 1, 2, 4 * 20_000 - 1, 2**48 - 1)]
    values = [before, *series, after]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(v.version == 7 and v.variant == uuid.RFC_4122 for v in values)
    assert {v.int >> 80 for v in values} == {1_700_000_000_000}


def test_uuid7_is_unique_across_threads() -> None:
    barrier = threading.Barrier(8)
    results: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def run(i: int) -> None:
        barrier.wait()
        results[i] = [uuid7() for _ in range(2000)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [v for r in results for v in r]
    assert len(set(flat)) == len(flat) == 16_000
    assert all(r == sorted(r) for r in results)


def test_parse_uuid_accepts_only_the_canonical_spelling() -> None:
    text = "01900000-0000-7000-8000-00000000000a"
    assert parse_uuid(text, "f") == A == parse_uuid(A, "f")
    assert parse_uuid(text.upper(), "f") == A
    for bad in ("{" + text + "}", "urn:uuid:" + text, text.replace("-", ""), "", None, 42, text + " "):
        err = error_of(lambda bad=bad: parse_uuid(bad, "field"))
        assert (err.code, err.detail) == (ErrorCode.MALFORMED_ID, {"field": "field"})


# ------------------------------------------------------------------------------- request hashes


def test_request_hash_is_stable() -> None:
    req = request(metadata={"b": 1, "a": "x"})
    assert (
        req.request_hash() == request(metadata={"a": "x", "b": 1}).request_hash()
    )  # key order is not meaning
    # Pinned: idempotency rows store this hash, so it must not change between releases (the
    # "transfer/2" text encoding replaced JSON before the first release).
    assert req.request_hash().hex() == PINNED_HASH


PINNED_HASH = "bdd46c1ce4a48b8273a0b03e26c758b34cba1e8db4c73a5add8e7f001e43d4ae"


@pytest.mark.parametrize(
    "change",
    [
        {"community_id": 2},
        {"kind": "other"},
        {"postings": (Posting(A, Unit.POINTS, -11), Posting(B, Unit.POINTS, 11))},
        {"postings": (Posting(B, Unit.POINTS, 10), Posting(A, Unit.POINTS, -10))},
        {"postings": (Posting(A, Unit.POINTS, -10), Posting(uuid.UUID(int=9), Unit.POINTS, 10))},
        {"postings": (Posting(A, Unit.COIN_MINUTES, -10), Posting(B, Unit.COIN_MINUTES, 10))},
        {"postings": (Posting(A, Unit.POINTS, -10), Posting(B, Unit.POINTS, 10, 1))},
        {"phase": Phase.PENDING},
        {"effective_us": 0},
        {"actor_id": uuid.UUID(int=5)},
        {"transfer_id": uuid.UUID(int=6)},
        {"timeout_us": 1},
        {"metadata": {"a": "y", "b": 1}},
    ],
)
def test_transfer_hash_changes_with_every_field(change: dict[str, Any]) -> None:
    base = request(metadata={"a": "x", "b": 1})
    assert replace(base, **change).request_hash() != base.request_hash()
    # ...but not with the key: the hash is what the key is checked against.
    assert replace(base, idempotency_key="other").request_hash() == base.request_hash()


def test_resolve_and_reverse_hashes_change_with_every_field() -> None:
    resolve = ResolveRequest(1, A, Phase.POST, "k", amounts={A: 5, B: 5})
    assert (
        ResolveRequest(1, A, Phase.POST, "k", amounts={B: 5, A: 5}).request_hash() == resolve.request_hash()
    )
    for change in (
        {"community_id": 2},
        {"pending_id": B},
        {"phase": Phase.VOID},
        {"amounts": {A: 5, B: 6}},
        {"amounts": None},
        {"actor_id": A},
    ):
        assert replace(resolve, **change).request_hash() != resolve.request_hash(), change
    reverse = ReverseRequest(1, A, "k", reason="wrong hours")
    for change in ({"community_id": 2}, {"transfer_id": B}, {"actor_id": A}, {"reason": ""}):
        assert replace(reverse, **change).request_hash() != reverse.request_hash(), change
    # A reversal and a resolution of the same id never share a hash.
    assert ReverseRequest(1, A, "k").request_hash() != ResolveRequest(1, A, Phase.VOID, "k").request_hash()


def test_instants_and_timeouts_stay_within_exact_json_integers() -> None:
    from ledger.domain.transfers import MAX_TIME_US, MAX_TIMEOUT_US  # noqa: PLC0415

    validate_transfer(request(effective_us=MAX_TIME_US))
    assert (
        code_of(lambda: validate_transfer(request(effective_us=MAX_TIME_US + 1)))
        == ErrorCode.MALFORMED_REQUEST
    )
    late = (Posting(A, Unit.POINTS, -5), Posting(B, Unit.POINTS, 5, MAX_TIME_US + 1))
    assert code_of(lambda: validate_transfer(request(postings=late))) == ErrorCode.INVALID_EXPIRY
    validate_transfer(request(phase=Phase.PENDING, timeout_us=MAX_TIMEOUT_US))
    too_long = request(phase=Phase.PENDING, timeout_us=MAX_TIMEOUT_US + 1)
    assert code_of(lambda: validate_transfer(too_long)) == ErrorCode.INVALID_TIMEOUT
