"""Database work run in submission order by one background thread, so the caller computes while
the server works.

The batch path uses it for its writes: while Python formats the rows of the next thousand transfers,
the server inserts the previous thousand. psycopg releases the GIL while it waits for the server, so
the two overlap on two cores. One connection serves one thread at a time: once work is submitted,
the caller must not touch the connection until ``finish`` (or ``abandon``) returns.

After a task fails, later tasks are skipped (the transaction is aborted anyway); ``finish`` raises
the first failure. Small batches run their work inline (``threaded=False``): a thread is not worth
starting for a few statements.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["OrderedWork", "SkippedError"]

T = TypeVar("T")


class SkippedError(RuntimeError):
    """A task did not run because an earlier one failed."""


class OrderedWork:
    """Tasks run one after another, in the order submitted, in a background thread or inline."""

    def __init__(self, *, threaded: bool) -> None:
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="vledger-ordered-work") if threaded else None
        )
        self._failed: BaseException | None = None
        self._last: Future[object] | None = None

    def submit(self, task: Callable[[], T]) -> Future[T]:
        """Queue a task; its future holds its result. Raises at once if an earlier task failed."""
        if self._failed is not None:
            raise self._failed
        if self._executor is None:
            done: Future[T] = Future()
            try:
                done.set_result(task())
            except BaseException as exc:
                self._failed = exc
                raise
            return done
        future = self._executor.submit(self._guarded, task)
        self._last = future  # type: ignore[assignment]
        return future

    def _guarded(self, task: Callable[[], T]) -> T:
        if self._failed is not None:
            raise SkippedError("an earlier task failed")
        try:
            return task()
        except BaseException as exc:
            self._failed = exc
            raise

    def finish(self) -> None:
        """Wait for every task; raise the first failure. The connection is the caller's again."""
        try:
            if self._last is not None:
                self._last.exception()  # waits; the failure (if any) is kept in self._failed
        finally:
            self._close()
        if self._failed is not None:
            raise self._failed

    def abandon(self) -> None:
        """After the caller failed: skip what has not started, wait for what has (the caller then
        rolls back). Never raises."""
        if self._failed is None:
            self._failed = SkippedError("the caller failed")
        self._close()

    def _close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
