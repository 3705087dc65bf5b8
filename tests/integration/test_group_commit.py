"""Group commit: concurrent single-phase transfers written together give each caller exactly what the
single path would have given it — results, receipts, replays, business failures — and the ledger's
invariants hold afterwards."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from psycopg_pool import ConnectionPool

from ledger.domain.accounts import SystemAccount
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import Phase, Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.communities import CommunityInfo
from ledger.services.group_commit import GroupCommit
from ledger.services.invariants import check_community
from ledger.services.ledger import Ledger
from ledger.services.results import TransferResult
from ledger.store.db import Conn

OpenMember = Callable[..., uuid.UUID]


def _award(
    info: CommunityInfo, member: uuid.UUID, amount: int = 1, key: str | None = None
) -> TransferRequest:
    iss = info.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    return TransferRequest(
        info.community_id,
        "award",
        (Posting(iss, Unit.POINTS, -amount), Posting(member, Unit.POINTS, amount)),
        key or f"award-{uuid.uuid4()}",
    )


def _pay(info: CommunityInfo, payer: uuid.UUID, payee: uuid.UUID, amount: int) -> TransferRequest:
    postings = (Posting(payer, Unit.POINTS, -amount), Posting(payee, Unit.POINTS, amount))
    return TransferRequest(info.community_id, "payment", postings, f"pay-{uuid.uuid4()}")


def _same_as_stored(ledger: Ledger, result: TransferResult) -> None:
    stored = ledger.get_transfer(result.community_id, result.transfer_id)
    assert result == stored


def _clean(pool: ConnectionPool[Conn], community_id: int) -> None:
    with pool.connection() as conn:
        assert check_community(conn, community_id) == []


def test_a_group_answers_what_the_single_path_stores(
    ledger: Ledger, pool: ConnectionPool[Conn], community: CommunityInfo, open_member: OpenMember
) -> None:
    members = [open_member() for _ in range(5)]
    outcomes = ledger.transfer_many([_award(community, m, amount=i + 1) for i, m in enumerate(members)])
    assert all(isinstance(o, TransferResult) and not o.replayed for o in outcomes)
    results = [o for o in outcomes if isinstance(o, TransferResult)]
    indices = [r.receipt.index for r in results]
    assert indices == list(range(indices[0], indices[0] + 5))  # one contiguous run, in request order
    for result in results:
        _same_as_stored(ledger, result)  # the same fields, receipt and balances as a later read
    assert [ledger.balance(community.community_id, m).posted for m in members] == [1, 2, 3, 4, 5]
    _clean(pool, community.community_id)


def test_replays_repeats_and_conflicts_in_one_group(
    ledger: Ledger, pool: ConnectionPool[Conn], community: CommunityInfo, open_member: OpenMember
) -> None:
    a, b = open_member(), open_member()
    earlier = ledger.transfer(_award(community, a, key="k-earlier"))
    twice = _award(community, b, key="k-twice")
    conflicting = _award(community, a, amount=7, key="k-earlier")
    outcomes = ledger.transfer_many(
        [_award(community, a, key="k-earlier"), twice, twice, conflicting, _award(community, b)]
    )
    replay, first, second, conflict, fresh = outcomes
    assert isinstance(replay, TransferResult) and replay.replayed
    assert replay.transfer_id == earlier.transfer_id
    assert isinstance(first, TransferResult) and not first.replayed
    assert isinstance(second, TransferResult) and second.replayed
    assert second.transfer_id == first.transfer_id
    assert isinstance(conflict, LedgerError) and conflict.code is ErrorCode.IDEMPOTENCY_CONFLICT
    assert isinstance(fresh, TransferResult) and not fresh.replayed
    assert ledger.balance(community.community_id, a).posted == 1
    assert ledger.balance(community.community_id, b).posted == 2
    _clean(pool, community.community_id)


def test_a_business_failure_fails_alone_and_is_remembered(
    ledger: Ledger, pool: ConnectionPool[Conn], community: CommunityInfo, open_member: OpenMember
) -> None:
    rich, poor, payee = open_member(), open_member(), open_member()
    ledger.transfer(_award(community, rich, amount=10))
    overdraw = _pay(community, poor, payee, 5)
    outcomes = ledger.transfer_many(
        [_pay(community, rich, payee, 4), overdraw, _pay(community, rich, payee, 6)]
    )
    ok1, failed, ok2 = outcomes
    assert isinstance(ok1, TransferResult) and isinstance(ok2, TransferResult)
    assert isinstance(failed, LedgerError) and failed.code is ErrorCode.INSUFFICIENT_FUNDS
    with pytest.raises(LedgerError) as again:  # the key keeps its failure
        ledger.transfer(overdraw)
    assert again.value.code is ErrorCode.INSUFFICIENT_FUNDS
    assert ledger.balance(community.community_id, rich).posted == 0
    assert ledger.balance(community.community_id, payee).posted == 10
    _clean(pool, community.community_id)


class _GatedLedger(Ledger):
    """Holds the first group until every caller has queued, so that groups really form."""

    def __init__(self, pool: ConnectionPool[Conn], callers: int) -> None:
        super().__init__(pool)
        self.sizes: list[int] = []
        self._queued = threading.Semaphore(0)
        self._callers = callers

    def arrived(self) -> None:
        self._queued.release()

    def transfer_many(self, requests: Sequence[TransferRequest]) -> list[TransferResult | LedgerError]:
        if not self.sizes:
            for _ in range(self._callers):
                assert self._queued.acquire(timeout=30)
        self.sizes.append(len(requests))
        return super().transfer_many(requests)


def test_concurrent_callers_are_grouped_and_each_gets_its_own_outcome(
    pool: ConnectionPool[Conn], community: CommunityInfo, open_member: OpenMember
) -> None:
    callers = 24
    ledger = _GatedLedger(pool, callers)
    group = GroupCommit(ledger, max_group=8)
    members = [open_member() for _ in range(callers)]
    payer = open_member()
    Ledger(pool).transfer(_award(community, payer, amount=3))
    requests = [_award(community, m, amount=i + 1) for i, m in enumerate(members)]
    requests[5] = _pay(community, payer, members[5], 4)  # more than the payer has: fails alone
    requests[9] = TransferRequest(  # pending transfers take the single path, ungrouped
        community.community_id, "hold", _award(community, members[9]).postings, "hold-9", phase=Phase.PENDING
    )

    def call(i: int) -> TransferResult | LedgerError:
        if i != 9:
            ledger.arrived()
        try:
            return group.transfer(requests[i])
        except LedgerError as err:
            return err

    ledger.arrived()  # the pending request never queues: count it here
    with ThreadPoolExecutor(callers) as pool_:
        outcomes = list(pool_.map(call, range(callers)))
    assert max(ledger.sizes) > 1 and sum(ledger.sizes) == callers - 1
    assert all(size <= 8 for size in ledger.sizes)
    for i, outcome in enumerate(outcomes):
        if i == 5:
            assert isinstance(outcome, LedgerError) and outcome.code is ErrorCode.INSUFFICIENT_FUNDS
            continue
        assert isinstance(outcome, TransferResult) and not outcome.replayed
        assert (
            outcome.transfer_id
            == Ledger(pool).get_transfer(community.community_id, outcome.transfer_id).transfer_id
        )
        if i != 9:
            assert ledger.balance(community.community_id, members[i]).posted == i + 1
    indices = sorted(o.receipt.index for o in outcomes if isinstance(o, TransferResult))
    assert indices == list(range(indices[0], indices[0] + len(indices)))  # one contiguous chain
    group.close()
    with pytest.raises(RuntimeError):
        group.transfer(_award(community, members[0]))
    _clean(pool, community.community_id)


def test_groups_and_single_transfers_on_one_hot_account_never_deadlock(
    pool: ConnectionPool[Conn], community: CommunityInfo, open_member: OpenMember
) -> None:
    """Batches lock hot buckets before the log head, as the single path does: with both writing
    against the hot issuance account at once, every transfer commits and nothing deadlocks."""
    ledger = Ledger(pool)
    groups = [GroupCommit(ledger, max_group=4), GroupCommit(ledger, max_group=4)]  # two "processes"
    members = [open_member() for _ in range(8)]
    per_thread = 15

    def work(t: int) -> list[TransferResult | LedgerError]:
        out: list[TransferResult | LedgerError] = []
        for i in range(per_thread):
            request = _award(community, members[(t + i) % len(members)])
            try:
                out.append(ledger.transfer(request) if t % 3 == 0 else groups[t % 2].transfer(request))
            except LedgerError as err:
                out.append(err)
        return out

    with ThreadPoolExecutor(12) as executor:
        outcomes = [o for chunk in executor.map(work, range(12)) for o in chunk]
    assert all(isinstance(o, TransferResult) for o in outcomes), [
        o for o in outcomes if not isinstance(o, TransferResult)
    ][:3]
    iss = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    assert ledger.balance(community.community_id, iss).posted == -12 * per_thread
    _clean(pool, community.community_id)


def test_event_loop_callers_await_their_own_outcomes(
    pool: ConnectionPool[Conn], community: CommunityInfo, open_member: OpenMember
) -> None:
    """transfer_async: callers on an event loop are grouped like threads and each gets its own
    outcome; a pending request goes to the single path on a worker thread."""
    ledger = _GatedLedger(pool, 9)
    group = GroupCommit(ledger)
    members = [open_member() for _ in range(10)]
    requests = [_award(community, m, amount=i + 1) for i, m in enumerate(members)]
    requests[3] = _pay(community, members[0], members[3], 50)  # members[0] has nothing: fails alone
    requests[9] = TransferRequest(
        community.community_id,
        "hold",
        _award(community, members[9]).postings,
        "hold-async",
        phase=Phase.PENDING,
    )

    async def main() -> list[TransferResult | BaseException]:
        for _ in range(9):  # the nine single-phase requests queue before the first group is written
            ledger.arrived()
        return await asyncio.gather(*(group.transfer_async(r) for r in requests), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert max(ledger.sizes) > 1 and sum(ledger.sizes) == 9
    for i, outcome in enumerate(outcomes):
        if i == 3:
            assert isinstance(outcome, LedgerError) and outcome.code is ErrorCode.INSUFFICIENT_FUNDS
        else:
            assert isinstance(outcome, TransferResult) and not outcome.replayed, outcome
    assert outcomes[9].phase == "pending"  # type: ignore[union-attr]
    assert [ledger.balance(community.community_id, m).posted for m in members[:3]] == [1, 2, 3]
    _clean(pool, community.community_id)
