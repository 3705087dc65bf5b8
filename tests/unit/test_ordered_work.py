"""OrderedWork: tasks in submission order, results through futures, the first failure wins."""

from __future__ import annotations

import functools
import threading
import time

import pytest

from ledger.store.ordered_work import OrderedWork, SkippedError


@pytest.mark.parametrize("threaded", [True, False])
def test_tasks_run_in_order_and_return_results(threaded: bool) -> None:
    work = OrderedWork(threaded=threaded)
    seen: list[int] = []

    def task(i: int) -> int:
        time.sleep(0.001 * (i % 3))  # uneven durations must not reorder anything
        seen.append(i)
        return i * i

    futures = [work.submit(functools.partial(task, i)) for i in range(20)]
    work.finish()
    assert seen == list(range(20))
    assert [f.result() for f in futures] == [i * i for i in range(20)]


def test_threaded_tasks_run_off_the_callers_thread() -> None:
    work = OrderedWork(threaded=True)
    future = work.submit(threading.get_ident)
    work.finish()
    assert future.result() != threading.get_ident()


def test_a_failure_skips_later_tasks_and_finish_raises_it() -> None:
    work = OrderedWork(threaded=True)
    ran: list[str] = []
    release = threading.Event()

    def fail() -> None:
        release.wait(5)
        raise ValueError("boom")

    work.submit(lambda: ran.append("first"))
    work.submit(fail)
    later = work.submit(lambda: ran.append("later"))  # queued before the failure happens
    release.set()
    with pytest.raises(ValueError, match="boom"):
        work.finish()
    assert ran == ["first"]
    assert isinstance(later.exception(), SkippedError)
    with pytest.raises(ValueError, match="boom"):
        work.submit(lambda: ran.append("after"))
    assert ran == ["first"]


def test_inline_failure_raises_at_once_and_again_at_finish() -> None:
    work = OrderedWork(threaded=False)

    def fail() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        work.submit(fail)
    with pytest.raises(KeyError):
        work.finish()


def test_abandon_skips_what_has_not_started_and_waits_for_what_has() -> None:
    work = OrderedWork(threaded=True)
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(5)
        ran.append("slow")

    work.submit(slow)
    queued = work.submit(lambda: ran.append("queued"))
    assert started.wait(5)
    threading.Timer(0.05, release.set).start()
    work.abandon()
    assert ran == ["slow"]  # the running task finished before abandon returned
    assert queued.cancelled() or isinstance(queued.exception(), SkippedError)
