"""Random transfer histories keep every ledger invariant and match a pure-Python balance model.

test_invariants_tamper.py checks that check_community reports each kind of tampering."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg_pool import ConnectionPool

from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import Phase, Posting, ResolveRequest, ReverseRequest, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import Communities
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.services.results import TransferResult
from ledger.store.db import Conn

pytestmark = pytest.mark.slow

DAY_US = 86_400_000_000
START_US = time.time_ns() // 1000
# A handful of lot expiries (None: never expires), so that spends have several lots to choose from.
EXPIRIES = st.sampled_from([None, START_US + 30 * DAY_US, START_US + 90 * DAY_US, START_US + 365 * DAY_US])
AMOUNTS = st.integers(min_value=1, max_value=150)
# How a post differs from its reservation: 0 whole, < 0 partial, > 0 more than reserved (refused).
EXTRAS = st.one_of(st.just(0), st.integers(-150, -1), st.integers(1, 5))
TIMEOUTS = st.sampled_from([0, 60_000_000, 3_600_000_000])  # 0: no timeout


class FakeClock:
    """The ledger's clock, moved only by the test, so that pending timeouts are decided exactly."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


@dataclass
class ModelAccount:
    name: str
    unit: Unit
    floor: int | None  # None: may go negative without limit (hot system accounts, household scores)
    hot: bool = False  # hot accounts keep no running balance on their postings
    posted: int = 0
    pending_in: int = 0
    pending_out: int = 0
    version: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.pending_out


@dataclass
class ModelTransfer:
    transfer_id: uuid.UUID
    phase: Phase
    postings: list[tuple[uuid.UUID, int]]  # (account, signed amount) as stored
    reversed: bool = False
    resolved: Phase | None = None  # pending only: POST or VOID once resolved
    timeout_at_us: int | None = None


@dataclass
class Sent:
    """A request already sent once, to send again with the same key: it must give the same outcome."""

    send: Callable[[], TransferResult]
    transfer_id: uuid.UUID | None
    error: ErrorCode | None


@dataclass
class Model:
    accounts: dict[uuid.UUID, ModelAccount] = field(default_factory=dict)
    transfers: list[ModelTransfer] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def shortfall(self, changes: list[tuple[uuid.UUID, int]]) -> bool:
        """Would lowering ``available`` by these (negative) changes take a floored account below its floor?"""
        for account_id, delta in changes:
            acc = self.accounts[account_id]
            if delta < 0 and acc.floor is not None and acc.available + delta < acc.floor:
                return True
        return False


def _member(communities: Communities, community_id: int, unit: Unit, credit_limit: int = 0) -> uuid.UUID:
    spec = AccountSpec(
        OwnerKind.PERSON, unit, member_account_flags(unit), owner_id=uuid.uuid4(), credit_limit=credit_limit
    )
    return communities.open_account(community_id, spec)


def test_random_histories_keep_invariants_and_match_the_model(
    pool: ConnectionPool[Conn], communities: Communities, region_id: int, owner: Conn
) -> None:
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock(START_US)
            self.ledger = Ledger(pool, clock=self.clock)
            # A fresh community per example: hypothesis reuses the function-scoped fixtures.
            info = communities.create_community(region_id, f"p-{uuid.uuid4().hex[:12]}", "性质测试社区")
            self.c = info.community_id
            self.model = Model()
            self.by_unit: dict[Unit, list[uuid.UUID]] = {}
            self.issuance: dict[Unit, uuid.UUID] = {}
            self.members: dict[Unit, list[uuid.UUID]] = {}
            self.keys = 0
            system = [
                (SystemAccount.ISSUANCE, Unit.SERVICE_MINUTES, None),
                (SystemAccount.ISSUANCE, Unit.POINTS, None),
                (SystemAccount.REDEMPTION_SINK, Unit.POINTS, None),
                (SystemAccount.ISSUANCE, Unit.COIN_MINUTES, None),
                (SystemAccount.DONATION_POOL, Unit.COIN_MINUTES, 0),
                (SystemAccount.ISSUANCE, Unit.SCORE_POINTS, None),
            ]
            for code, unit, floor in system:
                self._add(
                    info.system_accounts[(code, unit)], f"{code}:{unit}", unit, floor, hot=floor is None
                )
                if code == SystemAccount.ISSUANCE:
                    self.issuance[unit] = info.system_accounts[(code, unit)]
            members = [(Unit.POINTS, 0, 0)] * 3 + [(Unit.COIN_MINUTES, 0, 0), (Unit.COIN_MINUTES, 30, -30)]
            members += [(Unit.SCORE_POINTS, 0, None)] * 2 + [(Unit.SERVICE_MINUTES, 0, 0)] * 2
            for i, (unit, limit, floor) in enumerate(members):
                account_id = _member(communities, self.c, unit, limit)
                self._add(account_id, f"member{i}:{unit}", unit, floor)
                self.members.setdefault(unit, []).append(account_id)

        def _add(
            self, account_id: uuid.UUID, name: str, unit: Unit, floor: int | None, *, hot: bool = False
        ) -> None:
            self.model.accounts[account_id] = ModelAccount(name, unit, floor, hot)
            self.by_unit.setdefault(unit, []).append(account_id)

        def _key(self) -> str:
            self.keys += 1
            return f"k{self.keys}"

        def _send(self, send: Callable[[], TransferResult], error: ErrorCode | None) -> TransferResult | None:
            """Send once; the model predicted ``error`` (None: success). Remember it for replays."""
            if error is not None:
                with pytest.raises(LedgerError) as exc_info:
                    send()
                assert exc_info.value.code == error
                self.model.sent.append(Sent(send, None, error))
                return None
            result = send()
            assert not result.replayed
            self.model.sent.append(Sent(send, result.transfer_id, None))
            return result

        def _record(self, result: TransferResult, phase: Phase, timeout_at_us: int | None = None) -> None:
            """Apply a committed transfer's postings to the model and check what the result reports."""
            postings = [(p.account_id, p.amount) for p in result.postings]
            for p in result.postings:
                acc = self.model.accounts[p.account_id]
                acc.version += 1
                if phase in (Phase.SINGLE, Phase.POST):
                    acc.posted += p.amount
                elif phase == Phase.PENDING:
                    if p.amount < 0:
                        acc.pending_out -= p.amount
                    else:
                        acc.pending_in += p.amount
                expected = (None, None) if acc.hot else (acc.posted, acc.version)
                assert (p.balance_after, p.account_version) == expected, acc.name
            self.model.transfers.append(
                ModelTransfer(result.transfer_id, phase, postings, timeout_at_us=timeout_at_us)
            )

        def _release(self, pending: ModelTransfer) -> None:
            for account_id, amount in pending.postings:
                acc = self.model.accounts[account_id]
                if amount < 0:
                    acc.pending_out += amount
                else:
                    acc.pending_in -= amount

        # ------------------------------------------------------------------------------ rules

        @initialize()
        def fund_members(self) -> None:
            """Start members with something to spend, so that spends and holds do not all overdraw."""
            for unit in (Unit.POINTS, Unit.COIN_MINUTES, Unit.SERVICE_MINUTES):
                for member in self.members[unit]:
                    req = TransferRequest(
                        self.c,
                        "award",
                        (Posting(self.issuance[unit], unit, -200), Posting(member, unit, 200)),
                        self._key(),
                    )
                    result = self._send(lambda req=req: self.ledger.transfer(req), None)
                    assert result is not None
                    self._record(result, Phase.SINGLE)

        @rule(unit=st.sampled_from(list(Unit)), data=st.data(), amount=st.integers(1, 300), expiry=EXPIRIES)
        def issue(self, unit: Unit, data: st.DataObject, amount: int, expiry: int | None) -> None:
            """Credit a member from the community's hot issuance account (points get a dated lot)."""
            member = data.draw(st.sampled_from(self.members[unit]))
            expires = expiry if unit == Unit.POINTS else None
            req = TransferRequest(
                self.c,
                "award",
                (Posting(self.issuance[unit], unit, -amount), Posting(member, unit, amount, expires)),
                self._key(),
            )
            result = self._send(lambda: self.ledger.transfer(req), None)
            assert result is not None
            self._record(result, Phase.SINGLE)

        @rule(data=st.data(), points=AMOUNTS, coins=AMOUNTS, expiry=EXPIRIES)
        def award_service(self, data: st.DataObject, points: int, coins: int, expiry: int | None) -> None:
            """One transfer in two units: each unit sums to zero on its own."""
            person = data.draw(st.sampled_from(self.members[Unit.POINTS]))
            coin_account = data.draw(st.sampled_from(self.members[Unit.COIN_MINUTES]))
            req = TransferRequest(
                self.c,
                "service",
                (
                    Posting(self.issuance[Unit.POINTS], Unit.POINTS, -points),
                    Posting(person, Unit.POINTS, points, expiry),
                    Posting(self.issuance[Unit.COIN_MINUTES], Unit.COIN_MINUTES, -coins),
                    Posting(coin_account, Unit.COIN_MINUTES, coins),
                ),
                self._key(),
            )
            result = self._send(lambda: self.ledger.transfer(req), None)
            assert result is not None
            self._record(result, Phase.SINGLE)

        @rule(unit=st.sampled_from(list(Unit)), data=st.data(), amount=AMOUNTS, expiry=EXPIRIES)
        def move(self, unit: Unit, data: st.DataObject, amount: int, expiry: int | None) -> None:
            """Any two accounts of a unit; overdrafts must fail and change nothing."""
            self._move(unit, data, amount, expiry, None)

        @rule(
            unit=st.sampled_from(list(Unit)),
            data=st.data(),
            amount=AMOUNTS,
            expiry=EXPIRIES,
            timeout=TIMEOUTS,
        )
        def hold(
            self, unit: Unit, data: st.DataObject, amount: int, expiry: int | None, timeout: int
        ) -> None:
            """A pending transfer (``timeout`` 0: none) between two accounts of a unit."""
            self._move(unit, data, amount, expiry, timeout)

        def _move(
            self, unit: Unit, data: st.DataObject, amount: int, expiry: int | None, timeout: int | None
        ) -> None:
            pending = timeout is not None
            src, dst = data.draw(st.permutations(self.by_unit[unit]))[:2]
            expires = expiry if unit == Unit.POINTS else None
            phase = Phase.PENDING if pending else Phase.SINGLE
            postings = (Posting(src, unit, -amount), Posting(dst, unit, amount, expires))
            req = TransferRequest(
                self.c, "move", postings, self._key(), phase=phase, timeout_us=timeout or None
            )
            error = ErrorCode.INSUFFICIENT_FUNDS if self.model.shortfall([(src, -amount)]) else None
            result = self._send(lambda: self.ledger.transfer(req), error)
            if result is not None:
                self._record(result, phase, timeout_at_us=self.clock.now_us + timeout if timeout else None)

        @precondition(lambda self: self._open_pending())
        @rule(data=st.data(), void=st.booleans(), extra=EXTRAS)
        def settle(self, data: st.DataObject, void: bool, extra: int) -> None:
            """Post (whole when ``extra`` is 0, partial when < 0, over the reservation when > 0) or void
            an unresolved pending transfer; expired ones may only be voided."""
            self._resolve(data.draw(st.sampled_from(self._open_pending())), void, extra)

        @precondition(lambda self: self.model.transfers)
        @rule(data=st.data(), void=st.booleans(), extra=EXTRAS)
        def resolve(self, data: st.DataObject, void: bool, extra: int) -> None:
            """Resolve any transfer: only unresolved pending ones may be resolved."""
            self._resolve(data.draw(st.sampled_from(self.model.transfers)), void, extra)

        def _open_pending(self) -> list[ModelTransfer]:
            return [t for t in self.model.transfers if t.phase == Phase.PENDING and t.resolved is None]

        def _due(self) -> list[ModelTransfer]:
            now = self.clock.now_us
            return [t for t in self._open_pending() if t.timeout_at_us is not None and t.timeout_at_us <= now]

        def _resolve(self, target: ModelTransfer, void: bool, extra: int) -> None:
            partial: dict[uuid.UUID, int] | None = None
            magnitude = abs(target.postings[0][1])
            if not void and extra != 0:
                magnitude = max(1, magnitude + extra) if extra < 0 else magnitude + extra
                partial = dict.fromkeys((a for a, _ in target.postings), magnitude)
            phase = Phase.VOID if void else Phase.POST
            req = ResolveRequest(self.c, target.transfer_id, phase, self._key(), amounts=partial)
            if target.phase != Phase.PENDING:
                error: ErrorCode | None = ErrorCode.PENDING_NOT_FOUND
            elif target.resolved == Phase.POST:
                error = ErrorCode.PENDING_ALREADY_POSTED
            elif target.resolved == Phase.VOID:
                error = ErrorCode.PENDING_ALREADY_VOIDED
            elif not void and target.timeout_at_us is not None and target.timeout_at_us <= self.clock.now_us:
                error = ErrorCode.PENDING_EXPIRED
            elif partial is not None and magnitude > abs(target.postings[0][1]):
                error = ErrorCode.POST_EXCEEDS_PENDING
            else:
                error = None
            result = self._send(lambda: self.ledger.resolve(req), error)
            if result is None:
                return
            self._release(target)
            target.resolved = phase
            self._record(result, phase)
            if not void:
                assert sorted(abs(p.amount) for p in result.postings) == [magnitude] * len(target.postings)

        @precondition(lambda self: self.model.transfers)
        @rule(data=st.data())
        def reverse(self, data: st.DataObject) -> None:
            """Reverse any transfer: pending and void ones and second reversals must fail."""
            target = data.draw(st.sampled_from(self.model.transfers))
            req = ReverseRequest(self.c, target.transfer_id, self._key())
            mirror = [(a, -amount) for a, amount in target.postings]
            if target.phase in (Phase.PENDING, Phase.VOID):
                error: ErrorCode | None = ErrorCode.CANNOT_REVERSE_PENDING
            elif target.reversed:
                error = ErrorCode.ALREADY_REVERSED
            elif self.model.shortfall(mirror):
                error = ErrorCode.INSUFFICIENT_FUNDS
            else:
                error = None
            result = self._send(lambda: self.ledger.reverse(req), error)
            if result is not None:
                target.reversed = True
                assert [(p.account_id, p.amount) for p in result.postings] == mirror
                self._record(result, Phase.SINGLE)

        @precondition(lambda self: any(t.timeout_at_us is not None for t in self._open_pending()))
        @rule(minutes=st.sampled_from([1, 30, 61]))
        def tick(self, minutes: int) -> None:
            """Let time pass: timed-out pending transfers can no longer be posted, only voided."""
            self.clock.now_us += minutes * 60_000_000

        @precondition(lambda self: self._due())
        @rule()
        def expire(self) -> None:
            """Void every timed-out pending transfer."""
            due = self._due()
            assert self.ledger.expire_pending(self.c) == len(due)
            for pending in due:
                self._release(pending)
                pending.resolved = Phase.VOID
                for account_id, _ in pending.postings:
                    self.model.accounts[account_id].version += 1

        @precondition(lambda self: self.model.sent)
        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            """The same key with the same request: the first outcome again, whatever changed since."""
            sent = data.draw(st.sampled_from(self.model.sent))
            if sent.error is not None:
                with pytest.raises(LedgerError) as exc_info:
                    sent.send()
                assert exc_info.value.code == sent.error
            else:
                result = sent.send()
                assert result.replayed
                assert result.transfer_id == sent.transfer_id

        # ------------------------------------------------------------------------- invariants

        @invariant()
        def invariants_hold(self) -> None:
            assert check_community(owner, self.c) == []

        @invariant()
        def balances_match_model(self) -> None:
            views = self.ledger.balances(self.c, list(self.model.accounts))
            for account_id, acc in self.model.accounts.items():
                view = views[account_id]
                got = (view.posted, view.pending_in, view.pending_out, view.version)
                assert got == (acc.posted, acc.pending_in, acc.pending_out, acc.version), acc.name

    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
