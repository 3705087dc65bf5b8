"""LoginLimiter: a sliding one-minute window per key, driven by a fake clock (no database)."""

from __future__ import annotations

import threading

import pytest

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.services.identity import LoginLimiter, check_password, new_secret, token_hash


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_allows_the_limit_then_reports_the_wait() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(3, clock)
    for _ in range(3):
        assert limiter.hit("user:alice") is None
        clock.advance(10)
    # Attempts at 1000, 1010, 1020; now 1030: the first leaves the window at 1060.
    assert limiter.hit("user:alice") == pytest.approx(30.0)


def test_window_slides_one_attempt_at_a_time() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(2, clock)
    assert limiter.hit("k") is None  # t=1000
    clock.advance(30)
    assert limiter.hit("k") is None  # t=1030
    clock.advance(29)
    assert limiter.hit("k") == pytest.approx(1.0)  # t=1059: the 1000 attempt leaves at 1060
    clock.advance(1)
    assert limiter.hit("k") is None  # t=1060: one slot freed
    assert limiter.hit("k") == pytest.approx(30.0)  # the 1030 attempt leaves at 1090


def test_refused_attempts_do_not_extend_the_lockout() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(1, clock)
    assert limiter.hit("k") is None
    for _ in range(50):
        clock.advance(1)
        assert limiter.hit("k") is not None
    clock.advance(10)  # 61 s after the only allowed attempt
    assert limiter.hit("k") is None


def test_keys_are_independent_and_reset_clears_one() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(1, clock)
    assert limiter.hit("user:alice") is None
    assert limiter.hit("ip:10.0.0.1") is None
    assert limiter.hit("user:alice") is not None
    assert limiter.hit("user:bob") is None
    limiter.reset("user:alice")
    assert limiter.hit("user:alice") is None
    assert limiter.hit("ip:10.0.0.1") is not None
    limiter.reset("never-seen")  # harmless


def test_idle_keys_are_dropped() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(5, clock)
    for i in range(100):
        limiter.hit(f"ip:{i}")
    assert len(limiter) == 100
    clock.advance(61)
    limiter.hit("ip:new")
    assert len(limiter) == 1


def test_memory_is_bounded_by_max_keys() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(5, clock, max_keys=10)
    for i in range(1000):
        limiter.hit(f"ip:{i}")
    assert len(limiter) == 10
    # The most recent keys are kept (and still limited).
    for _ in range(4):
        assert limiter.hit("ip:999") is None
    assert limiter.hit("ip:999") is not None


def test_concurrent_hits_never_exceed_the_limit() -> None:
    limiter = LoginLimiter(50, FakeClock())
    allowed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = sum(1 for _ in range(100) if limiter.hit("user:shared") is None)
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50


def test_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LoginLimiter(0)


def test_token_secrets_are_prefixed_random_and_hash_to_32_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b
    assert a.startswith("vl_") and len(a) == 46
    assert "=" not in a and "+" not in a and "/" not in a
    assert len(token_hash(a)) == 32 and token_hash(a) != token_hash(b)


@pytest.mark.parametrize("password", ["", "short", "1234567", "x" * 1025])
def test_password_length_rules(password: str) -> None:
    with pytest.raises(LedgerError) as err:
        check_password(password)
    assert err.value.code == ErrorCode.INVALID_FIELD and err.value.field == "password"


def test_password_of_minimum_length_is_accepted() -> None:
    check_password("12345678")
