"""GroupCommit's writer under load: it waits (briefly) for a group to fill to the last group's size,
never delays a lone request on an idle service, and lingers before its thread ends.

A fake ledger records the groups it is given; long gather and linger times keep the tests
independent of the machine's speed."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any, cast

from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.group_commit import GroupCommit
from ledger.services.ledger import Ledger
from ledger.services.results import TransferResult


class _Recorder:
    """Stands in for Ledger.transfer_many: records each group's size; can hold the first write."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.threads: set[int] = set()
        self.hold = threading.Event()
        self.hold.set()
        self.writing = threading.Event()

    def transfer_many(self, requests: list[TransferRequest]) -> list[TransferResult]:
        self.writing.set()
        self.hold.wait(10)
        self.groups.append(len(requests))
        self.threads.add(threading.get_ident())
        return [cast(TransferResult, r.idempotency_key) for r in requests]


def _request(key: str, community_id: int = 1) -> TransferRequest:
    a, b = uuid.uuid4(), uuid.uuid4()
    postings = (Posting(a, Unit.POINTS, -1), Posting(b, Unit.POINTS, 1))
    return TransferRequest(community_id, "award", postings, key)


def _post_all(group: GroupCommit, keys: list[str]) -> list[threading.Thread]:
    threads = [threading.Thread(target=group.transfer, args=(_request(k),)) for k in keys]
    for t in threads:
        t.start()
    return threads


def test_after_a_group_of_three_the_next_group_waits_to_fill_to_three() -> None:
    fake = _Recorder()
    group = GroupCommit(cast(Ledger, fake), gather_s=5.0, linger_s=2.0)
    fake.hold.clear()
    first = _post_all(group, ["a"])  # written alone: the writer was idle
    assert fake.writing.wait(5)
    queued = _post_all(group, ["b", "c", "d"])  # queue behind the first write
    time.sleep(0.2)
    fake.hold.set()
    for t in first + queued:
        t.join(10)
    assert fake.groups == [1, 3]
    # Under load now: one request arrives, the writer waits for two more rather than writing it alone.
    later = _post_all(group, ["e"])
    time.sleep(0.3)
    later += _post_all(group, ["f", "g"])
    for t in later:
        t.join(10)
    assert fake.groups == [1, 3, 3]
    assert len(fake.threads) == 1  # the writer lingered between groups instead of ending


def test_a_lone_request_on_an_idle_service_is_not_delayed() -> None:
    fake = _Recorder()
    group = GroupCommit(cast(Ledger, fake), gather_s=5.0, linger_s=0.05)
    for key in ("a", "b", "c"):
        started = time.perf_counter()
        assert group.transfer(_request(key)) == key
        assert time.perf_counter() - started < 2.0  # far below the gather time: no waiting
    assert fake.groups == [1, 1, 1]


def test_a_writer_whose_queue_stays_empty_ends() -> None:
    fake = _Recorder()
    group = GroupCommit(cast(Ledger, fake), linger_s=0.05)
    group.transfer(_request("a", community_id=3))
    deadline = time.monotonic() + 5
    while any(t.name == "vledger-group-commit-3" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the writer thread did not end"
        time.sleep(0.01)


def test_a_gathering_writer_is_woken_only_when_its_group_is_complete() -> None:
    """Requests that arrive while the writer gathers do not wake it one by one (each wake-up would
    take the GIL from the event loop that is still receiving the rest): only the one that completes
    the group does, or the first request after an empty queue."""
    fake = _Recorder()
    group = GroupCommit(cast(Ledger, fake), gather_s=5.0, linger_s=2.0)
    fake.hold.clear()
    first = _post_all(group, ["a"])
    assert fake.writing.wait(5)
    queued = _post_all(group, ["b", "c", "d"])
    time.sleep(0.2)
    fake.hold.set()
    for t in first + queued:
        t.join(10)
    assert fake.groups == [1, 3]
    woken: list[int] = []
    real = group._arrived.notify_all

    def counted() -> None:
        woken.append(len(fake.groups))
        real()

    group._arrived.notify_all = counted  # type: ignore[method-assign]
    later = _post_all(group, ["e"])  # the writer waits for any request: this one wakes it
    time.sleep(0.3)
    later += _post_all(group, ["f"])  # two of three: no wake-up
    time.sleep(0.3)
    assert len(woken) == 1
    later += _post_all(group, ["g"])  # the third: the group is complete
    for t in later:
        t.join(10)
    assert fake.groups == [1, 3, 3] and len(woken) == 2


def test_event_loop_callers_of_one_group_are_woken_by_one_call_per_loop() -> None:
    """The writer hands a group's outcomes back to an event loop with one cross-thread call, not
    one per caller; every caller still gets its own outcome, and a thread caller mixed in too."""
    fake = _Recorder()
    group = GroupCommit(cast(Ledger, fake), gather_s=5.0, linger_s=0.5)
    fake.hold.clear()
    calls: list[int] = []

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(callback, "__name__", "") == "_wake_all":  # not the executor's own calls
                calls.append(len(args[0]))
            return real(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[assignment]
        first = asyncio.ensure_future(group.transfer_async(_request("a")))  # written alone
        await asyncio.to_thread(fake.writing.wait, 5)
        rest = [asyncio.ensure_future(group.transfer_async(_request(k))) for k in "bcdef"]
        await asyncio.sleep(0.2)  # all five are queued behind the held first write
        threaded = _post_all(group, ["g"])
        await asyncio.sleep(0.1)
        fake.hold.set()
        answers: list[object] = list(await asyncio.gather(first, *rest))
        for t in threaded:
            await asyncio.to_thread(t.join, 10)
        return answers

    answers = asyncio.run(main())
    assert answers == list("abcdef")  # each caller its own outcome (the fake answers the key)
    assert fake.groups == [1, 6]
    assert calls == [1, 5]  # one wake-up for the lone write, one for the five of the second group
