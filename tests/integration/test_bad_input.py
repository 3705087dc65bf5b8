"""Every bad request fails with its exact code, in precedence order, and writes nothing to the ledger;
failures found in the database are kept under their idempotency key and replayed as they were."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountFlags, AccountSpec, OwnerKind, SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.transfers import (
    MAX_AMOUNT,
    MAX_POSTINGS,
    Phase,
    Posting,
    ResolveRequest,
    ReverseRequest,
    TransferRequest,
)
from ledger.domain.units import Unit
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.services.results import TransferResult
from ledger.store.db import Conn

P = Unit.POINTS
C = Unit.COIN_MINUTES

# What a failed request must leave untouched: row counts of every append-only table and the
# state of every balance and lot row of the community.
_SNAPSHOT = """
SELECT (SELECT count(*) FROM transfer WHERE community_id = %(c)s),
       (SELECT count(*) FROM posting WHERE community_id = %(c)s),
       (SELECT count(*) FROM log_leaf WHERE community_id = %(c)s),
       (SELECT count(*) FROM lot_movement WHERE community_id = %(c)s),
       (SELECT array_agg(ARRAY[lot_id::text, remaining::text] ORDER BY lot_id)
          FROM lot WHERE community_id = %(c)s),
       (SELECT array_agg(ARRAY[account_id::text, bucket::text, posted::text, pending_in::text,
                               pending_out::text, version::text] ORDER BY account_id, bucket)
          FROM balance WHERE community_id = %(c)s),
       (SELECT size FROM log_head WHERE community_id = %(c)s)
"""


def snapshot(owner: Conn, community_id: int) -> tuple[Any, ...]:
    row = owner.execute(_SNAPSHOT, {"c": community_id}).fetchone()
    assert row is not None
    return tuple(row)


def stored_outcome(owner: Conn, community_id: int, key: str) -> tuple[Any, ...] | None:
    """(transfer_id, error code) stored under an idempotency key, or None if the key was never claimed."""
    row = owner.execute(
        "SELECT transfer_id, error->>'code' FROM idempotency WHERE community_id = %s AND key = %s",
        (community_id, key),
    ).fetchone()
    return None if row is None else tuple(row)


class Env:
    """A funded community: two points members (100 points), two coin members (60 coins), one closed
    account per unit."""

    def __init__(self, ledger: Ledger, communities: Communities, info: CommunityInfo, owner: Conn) -> None:
        self.ledger, self.info, self.owner = ledger, info, owner
        self.c = info.community_id
        self.points_issuance = info.system_accounts[(SystemAccount.ISSUANCE, P)]
        self.coin_issuance = info.system_accounts[(SystemAccount.ISSUANCE, C)]

        def open_(unit: Unit, flags: AccountFlags) -> uuid.UUID:
            return communities.open_account(
                self.c, AccountSpec(OwnerKind.PERSON, unit, flags, owner_id=uuid.uuid4())
            )

        lots = AccountFlags.NON_NEGATIVE | AccountFlags.LOTS
        self.alice, self.bob = open_(P, lots), open_(P, lots)
        self.carol, self.dave = open_(C, AccountFlags.NON_NEGATIVE), open_(C, AccountFlags.NON_NEGATIVE)
        self.closed_points = open_(P, lots | AccountFlags.CLOSED)
        self.closed_coins = open_(C, AccountFlags.NON_NEGATIVE | AccountFlags.CLOSED)
        self.fund(self.alice, P, 100)
        self.fund(self.bob, P, 100)
        self.fund(self.carol, C, 60)
        self.fund(self.dave, C, 60)

    def fund(self, account: uuid.UUID, unit: Unit, amount: int) -> TransferResult:
        iss = self.points_issuance if unit == P else self.coin_issuance
        return self.send(((iss, unit, -amount), (account, unit, amount)), key=f"fund-{uuid.uuid4()}")

    def request(self, postings: tuple[tuple[Any, Any, Any], ...], **kw: Any) -> TransferRequest:
        kw.setdefault("key", "k-1")
        kw.setdefault("kind", "move")
        return TransferRequest(
            kw.pop("community_id", self.c),
            kw.pop("kind"),
            tuple(Posting(a, u, amt) for a, u, amt in postings),
            kw.pop("key"),
            **kw,
        )

    def send(self, postings: tuple[tuple[Any, Any, Any], ...], **kw: Any) -> TransferResult:
        return self.ledger.transfer(self.request(postings, **kw))

    def rejects(self, code: ErrorCode, send: Callable[[], object], *, key: str | None = None) -> LedgerError:
        """``send`` fails with ``code`` and leaves the community's ledger exactly as it was; with ``key``,
        the failure is stored under it (a database-level failure) — without, the key was never claimed."""
        before = snapshot(self.owner, self.c)
        with pytest.raises(LedgerError) as exc_info:
            send()
        assert exc_info.value.code == code, exc_info.value
        assert snapshot(self.owner, self.c) == before
        if key is not None:
            assert stored_outcome(self.owner, self.c, key) == (None, str(code))
        return exc_info.value


@pytest.fixture
def env(ledger: Ledger, communities: Communities, community: CommunityInfo, owner: Conn) -> Iterator[Env]:
    e = Env(ledger, communities, community, owner)
    yield e
    assert check_community(owner, e.c) == []


# ------------------------------------------------------------------ request checks (no DB access)


def _request_cases(e: Env) -> list[tuple[ErrorCode, TransferRequest]]:
    a, b = e.alice, e.bob
    ok = ((a, P, -10), (b, P, 10))
    return [
        (ErrorCode.INVALID_AMOUNT, e.request(((a, P, 0), (b, P, 0)))),
        (ErrorCode.INVALID_AMOUNT, e.request(((a, P, -10.0), (b, P, 10.0)))),
        (ErrorCode.INVALID_AMOUNT, e.request(((a, P, True), (b, P, -1)))),
        (ErrorCode.AMOUNT_OVERFLOW, e.request(((a, P, -(MAX_AMOUNT + 1)), (b, P, MAX_AMOUNT + 1)))),
        (ErrorCode.UNBALANCED_POSTINGS, e.request(((a, P, -10), (b, P, 9)))),
        (ErrorCode.UNBALANCED_POSTINGS, e.request(((a, P, -10), (e.carol, C, 10)))),
        (ErrorCode.NO_POSTINGS, e.request(())),
        (ErrorCode.TOO_MANY_POSTINGS, e.request(tuple((uuid7(), P, 1) for _ in range(MAX_POSTINGS + 1)))),
        (ErrorCode.DUPLICATE_ACCOUNT, e.request(((a, P, -10), (a, P, 10)))),
        (ErrorCode.MALFORMED_ID, e.request((("not-a-uuid", P, -10), (b, P, 10)))),
        (ErrorCode.MALFORMED_ID, e.request(((f"{{{a}}}", P, -10), (b, P, 10)))),  # braces: not canonical
        (ErrorCode.MALFORMED_ID, e.request(((str(a).replace("-", ""), P, -10), (b, P, 10)))),
        (ErrorCode.MALFORMED_ID, e.request(ok, transfer_id="transfer_id")),
        (ErrorCode.MALFORMED_ID, e.request(ok, actor_id="someone")),
        (ErrorCode.MALFORMED_ID, e.request(ok, community_id=0)),
        (ErrorCode.MALFORMED_ID, e.request(ok, community_id="1")),
        (ErrorCode.INVALID_IDEMPOTENCY_KEY, e.request(ok, key="")),
        (ErrorCode.INVALID_IDEMPOTENCY_KEY, e.request(ok, key="has space")),
        (ErrorCode.INVALID_IDEMPOTENCY_KEY, e.request(ok, key="k" * 200)),
        (ErrorCode.INVALID_IDEMPOTENCY_KEY, e.request(ok, key="k" * 129)),
        (ErrorCode.INVALID_IDEMPOTENCY_KEY, e.request(ok, key="键")),
        (ErrorCode.INVALID_IDEMPOTENCY_KEY, e.request(ok, key=None)),
        (ErrorCode.INVALID_KIND, e.request(ok, kind="Bad Kind")),
        (ErrorCode.INVALID_KIND, e.request(ok, kind="")),
        (ErrorCode.INVALID_KIND, e.request(ok, kind="9lives")),
        (ErrorCode.NON_CANONICAL_TEXT, e.request(ok, metadata={"note": "e\u0301"})),  # NFD, not NFC
        (ErrorCode.NON_CANONICAL_TEXT, e.request(ok, metadata={"note": "bell\x07"})),
        (ErrorCode.NON_CANONICAL_TEXT, e.request(ok, metadata={"note": ["ok", "tab\t"]})),
        (ErrorCode.NON_CANONICAL_TEXT, e.request(ok, metadata={"名字": "x"})),  # non-ASCII key
        (ErrorCode.MALFORMED_REQUEST, e.request(ok, metadata={"rate": 1.5})),
        (ErrorCode.MALFORMED_REQUEST, e.request(ok, metadata={"nested": {"rate": 0.0}})),
        (ErrorCode.MALFORMED_REQUEST, e.request(ok, phase=Phase.POST)),
        (ErrorCode.MALFORMED_REQUEST, e.request(ok, effective_us=-1)),
        (ErrorCode.AMOUNT_OVERFLOW, e.request(ok, metadata={"big": 2**53})),
        (ErrorCode.INVALID_UNIT, e.request(((a, "hours", -10), (b, "hours", 10)))),
        (ErrorCode.INVALID_TIMEOUT, e.request(ok, timeout_us=1_000_000)),  # a single transfer has none
        (ErrorCode.INVALID_TIMEOUT, e.request(ok, phase=Phase.PENDING, timeout_us=0)),
        (
            ErrorCode.INVALID_EXPIRY,
            TransferRequest(e.c, "move", (Posting(a, P, -10, 5), Posting(b, P, 10)), "k"),
        ),
        (
            ErrorCode.INVALID_EXPIRY,
            TransferRequest(e.c, "move", (Posting(e.carol, C, -5), Posting(e.dave, C, 5, 9)), "k"),
        ),
    ]


def test_request_checks_reject_without_claiming_the_key(env: Env) -> None:
    for code, req in _request_cases(env):
        env.rejects(code, lambda req=req: env.ledger.transfer(req))
        key = req.idempotency_key
        if isinstance(key, str) and key:
            assert stored_outcome(env.owner, env.c, key) is None, code


def test_request_check_messages_do_not_echo_the_input(env: Env) -> None:
    """Error details name the field, never the value (it may be personal data)."""
    secret = "张三 13800000000"
    err = env.rejects(
        ErrorCode.NON_CANONICAL_TEXT,
        lambda: env.send(((env.alice, P, -1), (env.bob, P, 1)), metadata={"n": secret + "\x00"}),
    )
    assert secret not in str(err) and secret not in str(err.to_dict())
    err = env.rejects(ErrorCode.MALFORMED_ID, lambda: env.send(((secret, P, -1), (env.bob, P, 1))))
    assert secret not in str(err.to_dict())
    assert err.field == "postings[0].account_id"


# --------------------------------------------------------------- what the request refers to (DB)


def test_unknown_account(env: Env) -> None:
    env.rejects(
        ErrorCode.ACCOUNT_NOT_FOUND, lambda: env.send(((uuid7(), P, -10), (env.bob, P, 10))), key="k-1"
    )


def test_account_of_another_community_is_unknown(env: Env, communities: Communities, region_id: int) -> None:
    other = communities.create_community(region_id, f"o-{uuid.uuid4().hex[:12]}", "别的社区")
    foreign = other.system_accounts[(SystemAccount.ISSUANCE, P)]
    env.rejects(
        ErrorCode.ACCOUNT_NOT_FOUND, lambda: env.send(((foreign, P, -10), (env.bob, P, 10))), key="k-1"
    )


def test_unit_mismatch(env: Env) -> None:
    # Balanced per unit as written, but alice's account holds points, not coins.
    env.rejects(
        ErrorCode.UNIT_MISMATCH, lambda: env.send(((env.alice, C, -10), (env.carol, C, 10))), key="k-1"
    )


def test_closed_account(env: Env) -> None:
    env.rejects(
        ErrorCode.ACCOUNT_CLOSED,
        lambda: env.send(((env.points_issuance, P, -10), (env.closed_points, P, 10)), key="k-credit"),
        key="k-credit",
    )
    env.rejects(
        ErrorCode.ACCOUNT_CLOSED,
        lambda: env.send(((env.closed_coins, C, -10), (env.carol, C, 10)), key="k-debit"),
        key="k-debit",
    )


def test_unknown_community(env: Env, owner: Conn) -> None:
    missing = 2**40
    before = owner.execute("SELECT count(*) FROM idempotency").fetchone()
    env.rejects(
        ErrorCode.COMMUNITY_NOT_FOUND,
        lambda: env.send(((env.alice, P, -10), (env.bob, P, 10)), community_id=missing),
    )
    assert owner.execute("SELECT count(*) FROM idempotency").fetchone() == before
    env.rejects(
        ErrorCode.COMMUNITY_NOT_FOUND,
        lambda: env.ledger.reverse(ReverseRequest(missing, uuid7(), "k-rev")),
    )


def test_insufficient_funds(env: Env) -> None:
    err = env.rejects(
        ErrorCode.INSUFFICIENT_FUNDS, lambda: env.send(((env.alice, P, -101), (env.bob, P, 101))), key="k-1"
    )
    assert err.detail == {"account_id": str(env.alice), "available": 100, "requested": 101}
    # A pending hold counts against what is available.
    env.send(((env.carol, C, -50), (env.dave, C, 50)), key="hold", phase=Phase.PENDING)
    env.rejects(
        ErrorCode.INSUFFICIENT_FUNDS,
        lambda: env.send(((env.carol, C, -11), (env.dave, C, 11)), key="k-2"),
        key="k-2",
    )


def test_credit_limit_is_the_floor(env: Env, communities: Communities) -> None:
    spec = AccountSpec(OwnerKind.PERSON, C, AccountFlags.NON_NEGATIVE, owner_id=uuid.uuid4(), credit_limit=30)
    borrower = communities.open_account(env.c, spec)
    env.send(((borrower, C, -30), (env.carol, C, 30)), key="k-borrow")
    env.rejects(
        ErrorCode.INSUFFICIENT_FUNDS,
        lambda: env.send(((borrower, C, -1), (env.carol, C, 1)), key="k-2"),
        key="k-2",
    )
    assert env.ledger.balance(env.c, borrower).posted == -30


# ------------------------------------------------------------------------------------ precedence


Build = Callable[["Env", uuid.UUID], TransferRequest]

# (faults the request has, how to build it): the code reported must be the earliest fault in ErrorCode.
_PRECEDENCE_CASES = [
    pytest.param(
        {ErrorCode.ACCOUNT_NOT_FOUND, ErrorCode.UNBALANCED_POSTINGS},
        lambda e, ghost: e.request(((ghost, P, -10), (e.bob, P, 9))),
        id="unknown-account+unbalanced",
    ),
    pytest.param(
        {ErrorCode.MALFORMED_ID, ErrorCode.INVALID_IDEMPOTENCY_KEY},
        lambda e, ghost: e.request((("x", P, -1), (e.bob, P, 1)), key=""),
        id="malformed-id+bad-key",
    ),
    pytest.param(
        {ErrorCode.INVALID_IDEMPOTENCY_KEY, ErrorCode.INVALID_KIND},
        lambda e, ghost: e.request(((e.alice, P, -1), (e.bob, P, 1)), key=" ", kind="Bad Kind"),
        id="bad-key+bad-kind",
    ),
    pytest.param(
        {ErrorCode.INVALID_KIND, ErrorCode.NON_CANONICAL_TEXT, ErrorCode.NO_POSTINGS},
        lambda e, ghost: e.request((), kind="Bad Kind", metadata={"n": "\x01"}),
        id="bad-kind+control-char+no-postings",
    ),
    pytest.param(
        {ErrorCode.NON_CANONICAL_TEXT, ErrorCode.NO_POSTINGS, ErrorCode.UNBALANCED_POSTINGS},
        lambda e, ghost: e.request((), metadata={"n": "e\u0301"}),
        id="nfd-text+no-postings",
    ),
    pytest.param(
        {ErrorCode.INVALID_UNIT, ErrorCode.INVALID_AMOUNT},
        lambda e, ghost: e.request(((e.alice, "hours", 0), (e.bob, P, 0))),
        id="bad-unit+zero-amount",
    ),
    pytest.param(
        {ErrorCode.INVALID_AMOUNT, ErrorCode.AMOUNT_OVERFLOW, ErrorCode.UNBALANCED_POSTINGS},
        lambda e, ghost: e.request(((e.alice, P, 0), (e.bob, P, 2**60))),
        id="zero-amount-then-overflow",
    ),
    pytest.param(
        {ErrorCode.AMOUNT_OVERFLOW, ErrorCode.DUPLICATE_ACCOUNT},
        lambda e, ghost: e.request(((e.alice, P, 2**60), (e.alice, P, -(2**60)))),
        id="overflow+duplicate",
    ),
    pytest.param(
        {ErrorCode.DUPLICATE_ACCOUNT, ErrorCode.UNBALANCED_POSTINGS},
        lambda e, ghost: e.request(((e.alice, P, -5), (e.alice, P, 4))),
        id="duplicate+unbalanced",
    ),
    pytest.param(
        {ErrorCode.UNBALANCED_POSTINGS, ErrorCode.INVALID_TIMEOUT},
        lambda e, ghost: e.request(((e.alice, P, -5), (e.bob, P, 4)), timeout_us=5),
        id="unbalanced+timeout-on-single",
    ),
    pytest.param(
        {ErrorCode.INVALID_KIND, ErrorCode.IDEMPOTENCY_CONFLICT},
        lambda e, ghost: e.request(((e.alice, P, -2), (e.bob, P, 2)), key="used", kind="Bad Kind"),
        id="bad-kind+key-conflict",
    ),
    pytest.param(
        {ErrorCode.IDEMPOTENCY_CONFLICT, ErrorCode.ACCOUNT_NOT_FOUND},
        lambda e, ghost: e.request(((ghost, P, -1), (e.bob, P, 1)), key="used"),
        id="key-conflict+unknown-account",
    ),
    pytest.param(
        {ErrorCode.COMMUNITY_NOT_FOUND, ErrorCode.ACCOUNT_NOT_FOUND},
        lambda e, ghost: e.request(((ghost, P, -1), (e.bob, P, 1)), community_id=2**40, key="k-cnf"),
        id="unknown-community+unknown-account",
    ),
    pytest.param(
        {ErrorCode.ACCOUNT_NOT_FOUND, ErrorCode.UNIT_MISMATCH},
        lambda e, ghost: e.request(((e.carol, P, -1), (ghost, P, 1)), key="k-anf"),
        id="unit-mismatch-then-unknown-account",
    ),
    pytest.param(
        {ErrorCode.UNIT_MISMATCH, ErrorCode.ACCOUNT_CLOSED},
        lambda e, ghost: e.request(((e.closed_points, P, -1), (e.carol, P, 1)), key="k-um"),
        id="closed-then-unit-mismatch",
    ),
    pytest.param(
        {ErrorCode.ACCOUNT_CLOSED, ErrorCode.INSUFFICIENT_FUNDS},
        lambda e, ghost: e.request(((e.closed_coins, C, -1000), (e.carol, C, 1000)), key="k-ac"),
        id="closed+insufficient",
    ),
    # MALFORMED_REQUEST comes first even when written after other faults; per-posting checks are
    # compared across postings; metadata overflow comes after units.
    pytest.param(
        {ErrorCode.MALFORMED_REQUEST, ErrorCode.MALFORMED_ID},
        lambda e, ghost: e.request((("x", P, -1), (e.bob, P, 1)), metadata={"rate": 1.5}),
        id="float-metadata+malformed-id",
    ),
    pytest.param(
        {ErrorCode.MALFORMED_REQUEST, ErrorCode.INVALID_KIND},
        lambda e, ghost: e.request(((e.alice, P, -1), (e.bob, P, 1)), kind="Bad Kind", phase=Phase.POST),
        id="bad-phase+bad-kind",
    ),
    pytest.param(
        {ErrorCode.MALFORMED_REQUEST, ErrorCode.UNBALANCED_POSTINGS},
        lambda e, ghost: e.request(((e.alice, P, -1), (e.bob, P, 2)), effective_us=-1),
        id="negative-effective-time+unbalanced",
    ),
    pytest.param(
        {ErrorCode.INVALID_AMOUNT, ErrorCode.AMOUNT_OVERFLOW},
        lambda e, ghost: e.request(((e.alice, P, 2**60), (e.bob, P, 0))),
        id="overflow-then-zero-amount",
    ),
    pytest.param(
        {ErrorCode.INVALID_UNIT, ErrorCode.AMOUNT_OVERFLOW},
        lambda e, ghost: e.request(((e.alice, "hours", -1), (e.bob, "hours", 1)), metadata={"n": 2**60}),
        id="bad-unit+metadata-overflow",
    ),
]


@pytest.mark.parametrize(("faults", "build"), _PRECEDENCE_CASES)
def test_precedence_follows_the_enum_order(env: Env, faults: set[ErrorCode], build: Build) -> None:
    """Each request has several faults; the one reported is the earliest in ErrorCode."""
    env.send(((env.alice, P, -1), (env.bob, P, 1)), key="used")
    req = build(env, uuid7())
    expected = min(faults, key=lambda code: code.precedence)
    env.rejects(expected, lambda: env.ledger.transfer(req))


def test_balance_overflow(env: Env) -> None:
    env.rejects(
        ErrorCode.BALANCE_OVERFLOW,
        lambda: env.send(((env.points_issuance, P, -MAX_AMOUNT), (env.bob, P, MAX_AMOUNT)), key="k-big"),
        key="k-big",
    )


def test_resolve_and_reverse_precedence(env: Env) -> None:
    single = env.send(((env.alice, P, -10), (env.bob, P, 10)), key="single")
    held = env.send(((env.carol, C, -10), (env.dave, C, 10)), key="held", phase=Phase.PENDING)
    c = env.c
    env.rejects(
        ErrorCode.MALFORMED_ID, lambda: env.ledger.resolve(ResolveRequest(c, "pending", Phase.POST, ""))
    )
    env.rejects(ErrorCode.MALFORMED_ID, lambda: env.ledger.reverse(ReverseRequest(c, "transfer_id", "k")))
    env.rejects(
        ErrorCode.INVALID_IDEMPOTENCY_KEY,
        lambda: env.ledger.reverse(ReverseRequest(c, single.transfer_id, "", reason="\x00")),
    )
    env.rejects(
        ErrorCode.NON_CANONICAL_TEXT,
        lambda: env.ledger.reverse(ReverseRequest(c, single.transfer_id, "k-r", reason="e\u0301")),
    )
    env.rejects(
        ErrorCode.MALFORMED_REQUEST,
        lambda: env.ledger.resolve(ResolveRequest(c, held.transfer_id, Phase.SINGLE, "k-s")),
    )
    env.rejects(
        ErrorCode.MALFORMED_REQUEST,
        lambda: env.ledger.resolve(
            ResolveRequest(c, held.transfer_id, Phase.VOID, "k-v", amounts={env.carol: 1, env.dave: 1})
        ),
    )
    env.rejects(
        ErrorCode.INVALID_AMOUNT,
        lambda: env.ledger.resolve(
            ResolveRequest(c, held.transfer_id, Phase.POST, "k-0", amounts={env.carol: 0, env.dave: 0})
        ),
    )
    env.rejects(
        ErrorCode.TRANSFER_NOT_FOUND,
        lambda: env.ledger.reverse(ReverseRequest(c, uuid7(), "k-tnf")),
        key="k-tnf",
    )
    env.rejects(
        ErrorCode.PENDING_NOT_FOUND,
        lambda: env.ledger.resolve(ResolveRequest(c, single.transfer_id, Phase.POST, "k-pnf")),
        key="k-pnf",
    )
    env.rejects(
        ErrorCode.CANNOT_REVERSE_PENDING,
        lambda: env.ledger.reverse(ReverseRequest(c, held.transfer_id, "k-crp")),
        key="k-crp",
    )
    env.rejects(
        ErrorCode.POSTINGS_DO_NOT_MATCH_PENDING,
        lambda: env.ledger.resolve(
            ResolveRequest(c, held.transfer_id, Phase.POST, "k-m", amounts={env.carol: 5})
        ),
        key="k-m",
    )
    # Over the reservation on one side and unbalanced: the per-posting check comes first.
    env.rejects(
        ErrorCode.POST_EXCEEDS_PENDING,
        lambda: env.ledger.resolve(
            ResolveRequest(c, held.transfer_id, Phase.POST, "k-x", amounts={env.carol: 11, env.dave: 5})
        ),
        key="k-x",
    )
    env.rejects(
        ErrorCode.UNBALANCED_POSTINGS,
        lambda: env.ledger.resolve(
            ResolveRequest(c, held.transfer_id, Phase.POST, "k-u", amounts={env.carol: 4, env.dave: 5})
        ),
        key="k-u",
    )
    env.ledger.resolve(ResolveRequest(c, held.transfer_id, Phase.VOID, "k-void"))
    env.rejects(
        ErrorCode.PENDING_ALREADY_VOIDED,
        lambda: env.ledger.resolve(ResolveRequest(c, held.transfer_id, Phase.POST, "k-again")),
        key="k-again",
    )
    env.rejects(
        ErrorCode.CANNOT_REVERSE_PENDING,
        lambda: env.ledger.reverse(ReverseRequest(c, held.transfer_id, "k-crp2")),
        key="k-crp2",
    )
    env.ledger.reverse(ReverseRequest(c, single.transfer_id, "k-rev"))
    env.rejects(
        ErrorCode.ALREADY_REVERSED,
        lambda: env.ledger.reverse(ReverseRequest(c, single.transfer_id, "k-rev2")),
        key="k-rev2",
    )


def test_posting_an_expired_pending(pool: ConnectionPool[Conn], env: Env) -> None:
    now = [1_900_000_000_000_000]
    ledger = Ledger(pool, clock=lambda: now[0])
    c = env.c
    held = ledger.transfer(
        env.request(
            ((env.carol, C, -10), (env.dave, C, 10)), key="held", phase=Phase.PENDING, timeout_us=1_000_000
        )
    )
    now[0] += 1_000_000  # the timeout is inclusive: at timeout_at the reservation is gone
    env.rejects(
        ErrorCode.PENDING_EXPIRED,
        lambda: ledger.resolve(ResolveRequest(c, held.transfer_id, Phase.POST, "k-late")),
        key="k-late",
    )
    assert ledger.expire_pending(c) == 1
    env.rejects(
        ErrorCode.PENDING_ALREADY_VOIDED,
        lambda: ledger.resolve(ResolveRequest(c, held.transfer_id, Phase.POST, "k-later")),
        key="k-later",
    )
    assert ledger.balance(c, env.carol).available == 60


# ----------------------------------------------------------------------------------- idempotency


def test_failed_key_replays_its_failure_even_after_funding(env: Env) -> None:
    req = env.request(((env.alice, P, -150), (env.bob, P, 150)), key="too-much")
    env.rejects(ErrorCode.INSUFFICIENT_FUNDS, lambda: env.ledger.transfer(req), key="too-much")
    env.fund(env.alice, P, 100)  # now 200 available: the same request would succeed if new
    err = env.rejects(ErrorCode.INSUFFICIENT_FUNDS, lambda: env.ledger.transfer(req), key="too-much")
    assert err.detail["requested"] == 150
    assert env.ledger.balance(env.c, env.alice).posted == 200
    # A new key with the same request succeeds.
    assert env.ledger.transfer(replace(req, idempotency_key="enough")).replayed is False


def test_failed_key_replays_account_not_found(env: Env) -> None:
    req = env.request(((uuid7(), P, -1), (env.bob, P, 1)), key="ghost")
    for _ in range(2):
        env.rejects(ErrorCode.ACCOUNT_NOT_FOUND, lambda: env.ledger.transfer(req), key="ghost")


def test_same_key_different_request_conflicts(env: Env) -> None:
    first = env.send(((env.alice, P, -10), (env.bob, P, 10)), key="k-same")
    same = env.send(((env.alice, P, -10), (env.bob, P, 10)), key="k-same")
    assert (same.replayed, same.transfer_id, same.receipt) == (True, first.transfer_id, first.receipt)
    variants: list[dict[str, Any]] = [
        {"postings": ((env.alice, P, -11), (env.bob, P, 11))},
        {"postings": ((env.bob, P, 10), (env.alice, P, -10))},  # order is part of the request
        {"kind": "other"},
        {"metadata": {"note": "x"}},
        {"effective_us": 1},
        {"actor_id": uuid7()},
        {"phase": Phase.PENDING},
    ]
    for variant in variants:
        postings = variant.pop("postings", ((env.alice, P, -10), (env.bob, P, 10)))
        env.rejects(
            ErrorCode.IDEMPOTENCY_CONFLICT, lambda p=postings, v=variant: env.send(p, key="k-same", **v)
        )
    assert stored_outcome(env.owner, env.c, "k-same") == (first.transfer_id, None)
    # A failed key conflicts in the same way.
    env.rejects(
        ErrorCode.INSUFFICIENT_FUNDS,
        lambda: env.send(((env.alice, P, -500), (env.bob, P, 500)), key="k-fail"),
        key="k-fail",
    )
    env.rejects(
        ErrorCode.IDEMPOTENCY_CONFLICT,
        lambda: env.send(((env.alice, P, -5), (env.bob, P, 5)), key="k-fail"),
    )
    assert stored_outcome(env.owner, env.c, "k-fail") == (None, "INSUFFICIENT_FUNDS")
    # A key names one request whatever its kind: reusing it for a reversal conflicts too.
    env.rejects(
        ErrorCode.IDEMPOTENCY_CONFLICT,
        lambda: env.ledger.reverse(ReverseRequest(env.c, first.transfer_id, "k-same")),
    )


# ------------------------------------------------------------------------------- account flags


@pytest.mark.parametrize(
    ("owner_kind", "unit", "flags", "owner_id", "credit_limit"),
    [
        (OwnerKind.COMMUNITY, P, AccountFlags.HOT | AccountFlags.NON_NEGATIVE, None, 0),
        (OwnerKind.COMMUNITY, P, AccountFlags.HOT | AccountFlags.LOTS | AccountFlags.NON_NEGATIVE, None, 0),
        (OwnerKind.PERSON, P, AccountFlags.LOTS, uuid.UUID(int=1), 0),  # LOTS needs NON_NEGATIVE
        (OwnerKind.PERSON, P, AccountFlags.LOTS | AccountFlags.NON_NEGATIVE, uuid.UUID(int=1), 5),
        (OwnerKind.PERSON, C, AccountFlags.LOTS | AccountFlags.NON_NEGATIVE, uuid.UUID(int=1), 0),
        (OwnerKind.PERSON, C, AccountFlags.NON_NEGATIVE, uuid.UUID(int=1), -1),
        (OwnerKind.PERSON, Unit.SCORE_POINTS, AccountFlags.NONE, uuid.UUID(int=1), 10),
        (OwnerKind.COMMUNITY, C, AccountFlags.NONE, uuid.UUID(int=1), 0),  # system accounts have no owner
        (OwnerKind.HOUSEHOLD, Unit.SCORE_POINTS, AccountFlags.NONE, None, 0),  # members have one
    ],
)
def test_invalid_account_flags(
    communities: Communities,
    community: CommunityInfo,
    owner: Conn,
    owner_kind: OwnerKind,
    unit: Unit,
    flags: AccountFlags,
    owner_id: uuid.UUID | None,
    credit_limit: int,
) -> None:
    spec = AccountSpec(owner_kind, unit, flags, owner_id=owner_id, credit_limit=credit_limit)
    with pytest.raises(LedgerError) as exc_info:
        spec.validate()
    assert exc_info.value.code == ErrorCode.INVALID_ACCOUNT_FLAGS
    count = "SELECT count(*) FROM account WHERE community_id = %s"
    before = owner.execute(count, (community.community_id,)).fetchone()
    with pytest.raises(LedgerError) as exc_info:
        communities.open_account(community.community_id, spec)
    assert exc_info.value.code == ErrorCode.INVALID_ACCOUNT_FLAGS
    assert owner.execute(count, (community.community_id,)).fetchone() == before


def test_open_account_in_unknown_community(communities: Communities) -> None:
    spec = AccountSpec(OwnerKind.PERSON, C, AccountFlags.NON_NEGATIVE, owner_id=uuid.uuid4())
    with pytest.raises(LedgerError) as exc_info:
        communities.open_account(2**40, spec)
    assert exc_info.value.code == ErrorCode.COMMUNITY_NOT_FOUND


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"key": "k\n"}, ErrorCode.INVALID_IDEMPOTENCY_KEY),
        ({"kind": "award\n"}, ErrorCode.INVALID_KIND),
        ({"transfer_id": "01900000-0000-7000-8000-00000000000a\n"}, ErrorCode.MALFORMED_ID),
    ],
)
def test_trailing_newline_is_refused_with_its_code(env: Env, change: dict[str, Any], code: ErrorCode) -> None:
    env.rejects(code, lambda: env.send(((env.points_issuance, P, -1), (env.alice, P, 1)), **change))
