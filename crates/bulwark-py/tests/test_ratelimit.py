"""RateLimitConfig, RateLimiter, RateLimitError and @rate_limit, sync and async."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from bulwark import RateLimitConfig, RateLimitError, RateLimiter, rate_limit

HOUR = 3600.0


def test_config_keeps_the_originals_fields_and_defaults():
    config = RateLimitConfig(max_requests=10, time_window=60, burst_size=5)
    assert (config.max_requests, config.time_window, config.burst_size) == (10, 60, 5)
    assert config.capacity == 15
    default = RateLimitConfig()
    assert (default.max_requests, default.time_window, default.burst_size) == (100, 60.0, 20)
    assert config == RateLimitConfig(max_requests=10, time_window=60, burst_size=5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_requests": 0}, "max_requests must be at least 1"),
        ({"time_window": 0}, "time_window must be longer than zero"),
        ({"time_window": -1}, "time_window must be a finite number"),
        ({"time_window": float("nan")}, "time_window must be a finite number"),
        ({"burst_size": -1}, "burst_size must be between 0"),
        ({"max_requests": 2**32}, "max_requests must be between 0"),
    ],
)
def test_bad_config_is_a_value_error_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RateLimitConfig(**kwargs)


def test_try_acquire_admits_capacity_then_refuses():
    limiter = RateLimiter(RateLimitConfig(max_requests=3, time_window=HOUR, burst_size=2))
    assert [limiter.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    assert limiter.available == 0
    limiter.reset()
    assert limiter.available == 5
    assert limiter.try_acquire(tokens=5) is True
    assert limiter.try_acquire(tokens=1) is False


def test_more_tokens_than_capacity_is_an_error_not_false():
    limiter = RateLimiter(RateLimitConfig(max_requests=2, time_window=HOUR, burst_size=0))
    with pytest.raises(ValueError, match="3 token"):
        limiter.try_acquire(tokens=3)
    assert limiter.available == 2  # nothing taken


def test_check_raises_rate_limit_error_with_retry_after():
    limiter = RateLimiter(RateLimitConfig(max_requests=1, time_window=HOUR, burst_size=0))
    limiter.check()
    with pytest.raises(RateLimitError) as caught:
        limiter.check()
    assert 0 < caught.value.retry_after <= HOUR
    assert "rate limited" in str(caught.value)


def test_named_limiters_are_shared_through_the_registry(unique):
    name = unique("shared")
    config = RateLimitConfig(max_requests=2, time_window=HOUR, burst_size=0)
    a, b = RateLimiter(config, name=name), RateLimiter(config, name=name)
    assert a.try_acquire() and b.try_acquire()
    assert not a.try_acquire()
    assert a.name == name


def test_decorator_refuses_before_the_function_runs(unique):
    calls = []

    @rate_limit(RateLimitConfig(max_requests=2, time_window=HOUR, burst_size=0), name=unique())
    def tool(x):
        """Doc kept."""
        calls.append(x)
        return x * 2

    assert tool(1) == 2 and tool(2) == 4
    with pytest.raises(RateLimitError):
        tool(3)
    assert calls == [1, 2]
    assert tool.__name__ == "tool" and tool.__doc__ == "Doc kept."
    assert tool.limiter.available == 0


async def test_async_decorator_refuses_and_passes_results(unique):
    @rate_limit(RateLimitConfig(max_requests=1, time_window=HOUR, burst_size=0), name=unique())
    async def tool(x):
        await asyncio.sleep(0)
        return x + 1

    assert await tool(1) == 2
    with pytest.raises(RateLimitError):
        await tool(2)


async def test_async_wait_variant_waits_on_the_loop_instead_of_raising(unique):
    # 1 token per 50 ms: the second call must wait for the refill, not fail.
    @rate_limit(RateLimitConfig(max_requests=1, time_window=0.05, burst_size=0), name=unique(), wait=True)
    async def tool():
        return "ok"

    assert await tool() == "ok"
    assert tool.limiter.wait_time() > 0  # empty now: a wait is needed ...
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.ensure_future(ticker())
    assert await tool() == "ok"  # ... and it waited without blocking the loop
    t.cancel()
    assert ticks > 1


async def test_async_wait_longer_than_max_wait_raises_at_once(unique):
    limiter = RateLimiter(RateLimitConfig(max_requests=1, time_window=HOUR, burst_size=0))
    limiter.check()
    with pytest.raises(RateLimitError):
        await limiter.acquire_async(max_wait=0.01)


def test_sync_wait_releases_the_gil(max_gap_while):
    limiter = RateLimiter(RateLimitConfig(max_requests=1, time_window=0.3, burst_size=0))
    limiter.check()
    gap, iterations = max_gap_while(lambda: limiter.acquire(max_wait=5.0))
    # The wait is about 300 ms; had the GIL been held, this thread would have stalled for it.
    assert iterations > 100
    assert gap < 0.15
    assert limiter.available == 0  # the waiter took the refilled token


def test_sync_wait_longer_than_max_wait_raises():
    limiter = RateLimiter(RateLimitConfig(max_requests=1, time_window=HOUR, burst_size=0))
    limiter.check()
    with pytest.raises(RateLimitError) as caught:
        limiter.acquire(max_wait=0.01)
    assert caught.value.retry_after > 0.01


def test_limiter_admits_exactly_capacity_under_threads():
    limiter = RateLimiter(RateLimitConfig(max_requests=500, time_window=HOUR, burst_size=0))

    def grab(_):
        return sum(limiter.try_acquire() for _ in range(200))

    with ThreadPoolExecutor(max_workers=8) as pool:
        admitted = sum(pool.map(grab, range(8)))
    assert admitted == 500
