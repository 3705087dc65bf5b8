"""Group commit: transfers that arrive together are written together.

Under concurrent load (an HTTP server's worker threads) each single-phase transfer would otherwise
be its own transaction: its own claim, its own lock round trip, its own chain-head lock and its own
durable commit. Here callers queue their request and wait; a writer thread per community takes whatever has
queued since its last write and hands it to ``Ledger.transfer_many``, which writes the group in
one transaction. An idle service pays nothing extra: a request that finds the writer idle is
written at once, on its own, through the single path. Under load the writer waits briefly for a
group to fill to the size of the last one (GATHER_S) and lingers before its thread ends (LINGER_S).

Every caller gets exactly the outcome ``Ledger.transfer`` would have given it (a result, a replay,
or its LedgerError); ``transfer_many`` falls back to the single path whenever a group cannot commit
whole. Pending, post and void requests are not grouped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import deque
from dataclasses import dataclass

import anyio.to_thread

from ledger.domain.errors import LedgerError
from ledger.domain.transfers import Phase, TransferRequest
from ledger.services.ledger import Ledger
from ledger.services.results import TransferResult

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)

#: Most requests written in one transaction: a bound on one group's latency and on what a failed
#: group retries one by one.
MAX_GROUP = 64
#: Under load, how long the writer waits for the next group to fill up to the size of the last one
#: (its callers answer and come back at about the same time). A lone request on an idle service
#: never waits: the last group then had one request or none.
GATHER_S = 0.002
#: How long a writer whose queue ran dry waits for more before its thread ends: under steady load
#: the next request comes within a client's round trip, and a thread started per group costs more.
LINGER_S = 0.005


@dataclass(slots=True)
class _Waiter:
    request: TransferRequest
    # A thread caller blocks on ``done``; an event-loop caller awaits ``woken`` (on its loop) instead.
    done: threading.Event | None = None
    woken: asyncio.Future[None] | None = None
    outcome: TransferResult | BaseException | None = None


def _wake_all(futures: list[asyncio.Future[None]]) -> None:
    """On a caller's event loop: wake each of its callers of one group."""
    for woken in futures:
        if not woken.done():
            woken.set_result(None)


def _holds(queue: deque[_Waiter], count: int) -> bool:
    return len(queue) >= count


def _answer(waiter: _Waiter) -> TransferResult:
    outcome = waiter.outcome
    if isinstance(outcome, BaseException):
        raise outcome
    assert outcome is not None
    return outcome


class GroupCommit:
    """``transfer(request)`` with the ledger's semantics, grouped with concurrent callers' requests.

    Each community has its own queue and, while that queue is not empty, its own writer thread
    (which ends when the queue runs dry): communities are written in parallel, as their logs are
    independent; one community's groups are written one after another, as its chain is one.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_group: int = MAX_GROUP,
        gather_s: float = GATHER_S,
        linger_s: float = LINGER_S,
    ) -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self._ledger = ledger
        self._max_group = max_group
        self._gather_s = gather_s
        self._linger_s = linger_s
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified when a writer's wait is over
        self._queues: dict[int, deque[_Waiter]] = {}  # only communities with a running writer
        # How many queued requests each community's writer is waiting for: it is woken only then,
        # not by every request while the event loop is still taking the rest of a group.
        self._wanted: dict[int, int] = {}
        self._closed = False

    def transfer(self, request: TransferRequest) -> TransferResult:
        if request.phase is not Phase.SINGLE:
            return self._ledger.transfer(request)
        done = threading.Event()
        waiter = _Waiter(request, done=done)
        self._enqueue(waiter)
        done.wait()
        return _answer(waiter)

    async def transfer_async(self, request: TransferRequest) -> TransferResult:
        """``transfer`` for a caller on an event loop: it awaits its outcome instead of parking a
        worker thread (the writer thread wakes the loop when the group is written)."""
        if request.phase is not Phase.SINGLE:
            return await anyio.to_thread.run_sync(self._ledger.transfer, request)
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(request, woken=woken)
        self._enqueue(waiter)
        await woken
        return _answer(waiter)

    def _enqueue(self, waiter: _Waiter) -> None:
        community_id = waiter.request.community_id
        with self._lock:
            if self._closed:
                raise RuntimeError("the group-commit writer is closed")
            queue = self._queues.get(community_id)
            start = queue is None
            if queue is None:
                queue = self._queues[community_id] = deque()
            queue.append(waiter)
            if not start and len(queue) >= self._wanted.get(community_id, 1):
                self._arrived.notify_all()
        if start:
            name = f"vledger-group-commit-{community_id}"
            threading.Thread(target=self._drain, args=(community_id, queue), name=name, daemon=True).start()

    def close(self) -> None:
        """Refuse new requests (those already queued are still written)."""
        with self._lock:
            self._closed = True

    def _drain(self, community_id: int, queue: deque[_Waiter]) -> None:
        last = 0  # the size of the last group written
        while True:
            with self._lock:
                if not queue:
                    self._wanted[community_id] = 1
                    self._arrived.wait_for(lambda: bool(queue), timeout=self._linger_s)
                    if not queue:
                        del self._queues[community_id]
                        del self._wanted[community_id]
                        return
                want = min(last, self._max_group)
                if len(queue) < want:
                    self._wanted[community_id] = want
                    self._arrived.wait_for(functools.partial(_holds, queue, want), timeout=self._gather_s)
                self._wanted[community_id] = 1
                group = [queue.popleft() for _ in range(min(len(queue), self._max_group))]
            self._write(group)
            last = len(group)

    def _write(self, group: list[_Waiter]) -> None:
        outcomes: list[TransferResult | LedgerError] | None = None
        failure: BaseException | None = None
        try:
            outcomes = self._ledger.transfer_many([w.request for w in group])
        except Exception as exc:  # the database is down, the pool closed: every caller sees it
            log.warning("group commit of %d transfers failed: %s", len(group), type(exc).__name__)
            failure = exc
        # Event-loop callers are woken by one call per loop for the whole group: a cross-thread
        # wake-up per caller cost the loop a callback and the writer a lock each.
        loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for i, waiter in enumerate(group):
            waiter.outcome = failure if outcomes is None else outcomes[i]
            if waiter.done is not None:
                waiter.done.set()
            elif waiter.woken is not None:
                loops.setdefault(waiter.woken.get_loop(), []).append(waiter.woken)
        for loop, futures in loops.items():
            with contextlib.suppress(RuntimeError):  # the caller's event loop has closed
                loop.call_soon_threadsafe(_wake_all, futures)
