"""Login throttling: a sliding window of attempts per key (a username, a client address)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginLimiter:
    """Sliding one-minute window of login attempts per key ("user:<name>", "ip:<addr>").

    Refused attempts are not counted, so a locked-out key recovers a minute after its last allowed
    attempt and nobody can keep someone else locked out for longer by hammering. Keys idle for a
    window are dropped, and at most ``max_keys`` are tracked (least recently used go first).
    """

    WINDOW_S = 60.0

    def __init__(
        self,
        attempts_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 100_000,
    ) -> None:
        if attempts_per_minute < 1:
            raise ValueError("attempts_per_minute must be at least 1")
        self._limit = attempts_per_minute
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str) -> float | None:
        """Record an attempt: None if allowed, else the seconds until the next one will be."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            window = self._hits.get(key)
            if window is None:
                window = self._hits[key] = deque()
            while window and window[0] <= now - self.WINDOW_S:
                window.popleft()
            if len(window) >= self._limit:
                return window[0] + self.WINDOW_S - now
            window.append(now)
            self._hits.move_to_end(key)
            while len(self._hits) > self._max_keys:
                self._hits.popitem(last=False)
            return None

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._hits)

    def _sweep(self, now: float) -> None:
        # Keys are ordered by last allowed attempt, so idle ones sit at the front.
        while self._hits:
            key, window = next(iter(self._hits.items()))
            if window and window[-1] > now - self.WINDOW_S:
                break
            del self._hits[key]
