"""Worker processes for the verifier: chunks in, results out in any order, and at the end each
worker's posted sums (kept per worker so that they are merged once, not once per chunk)."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterable
from multiprocessing.process import BaseProcess
from typing import Any

from ledger.audit.verify_leaves import ChunkJob, ChunkResult, Sums, check_chunk

__all__ = ["WorkerPool"]

_POLL_S = 1.0


def _work(tasks: Any, results: Any) -> None:
    """A worker's loop: check chunks until the None sentinel, then send the sums it kept."""
    sums: Sums = {}
    try:
        while (job := tasks.get()) is not None:
            results.put(check_chunk(job, sums))
        results.put(sums)
    except Exception as exc:
        results.put(RuntimeError(f"a verifier worker failed: {exc!r}"))


class WorkerPool:
    """``jobs`` processes started with forkserver (no inherited threads or open files).

    As with any multiprocessing program, a script that calls the verifier with workers must
    guard its entry point with ``if __name__ == "__main__":``.
    """

    def __init__(self, jobs: int) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["ledger.audit.verify_leaves"])
        self._tasks = context.Queue()
        self._results = context.Queue()
        self._procs: list[BaseProcess] = [
            context.Process(target=_work, args=(self._tasks, self._results), daemon=True) for _ in range(jobs)
        ]
        for proc in self._procs:
            proc.start()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _get(self) -> object:
        while True:
            try:
                item = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in self._procs):
                    raise RuntimeError("a verifier worker process died") from None
                continue
            if isinstance(item, Exception):
                raise item
            return item

    def run(self, jobs: Iterable[ChunkJob], merge: Callable[[ChunkJob, ChunkResult], bool]) -> Sums | None:
        """Check every job, handing it and its result to ``merge`` in job order until it returns False.

        Returns the merged posted sums, or None if ``merge`` stopped the run.
        """
        window = 2 * len(self._procs) + 1  # chunks in flight: enough to keep workers busy, no more
        inflight: dict[int, ChunkJob] = {}
        pending: dict[int, ChunkResult] = {}
        source = iter(jobs)
        submitted = merged = 0
        exhausted = False
        while True:
            while not exhausted and submitted - merged < window:
                job = next(source, None)
                if job is None:
                    exhausted = True
                else:
                    assert job.sequence == submitted
                    inflight[submitted] = job
                    self._tasks.put(job)
                    submitted += 1
            if merged == submitted:
                break
            item = self._get()
            assert isinstance(item, ChunkResult)
            pending[item.sequence] = item
            while merged in pending:
                if not merge(inflight.pop(merged), pending.pop(merged)):
                    return None
                merged += 1
        return self._drain()

    def _drain(self) -> Sums:
        for _ in self._procs:
            self._tasks.put(None)
        total: Sums = {}
        for _ in self._procs:
            sums = self._get()
            assert isinstance(sums, dict)
            for key, amount in sums.items():
                total[key] = total.get(key, 0) + amount
        return total

    def close(self) -> None:
        """Stop the workers (only ours), whether they finished or not."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join()
        self._tasks.cancel_join_thread()
        self._tasks.close()
        self._results.close()
