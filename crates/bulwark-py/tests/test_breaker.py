"""CircuitBreakerConfig, @circuit_breaker (sync and async), the registry, breaker.call."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bulwark import (
    CircuitBreakerConfig,
    CircuitBreakerError,
    CircuitBreakerOpenError,
    CircuitState,
    call_async,
    circuit_breaker,
    circuit_breaker_registry,
)


class Boom(Exception):
    pass


def fail():
    raise Boom("down")


def test_config_keeps_the_originals_fields_and_defaults():
    c = CircuitBreakerConfig()
    assert (c.failure_threshold, c.success_threshold, c.timeout, c.half_open_max_calls) == (5, 2, 60.0, 3)
    c = CircuitBreakerConfig(failure_threshold=3, success_threshold=1, timeout=30, half_open_max_calls=1)
    assert (c.failure_threshold, c.success_threshold, c.timeout, c.half_open_max_calls) == (3, 1, 30, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"failure_threshold": 0}, "failure_threshold must be at least 1"),
        ({"success_threshold": -1}, "success_threshold must be at least 1"),
        ({"half_open_max_calls": 0}, "half_open_max_calls must be at least 1"),
        ({"timeout": -5}, "timeout must be a finite number"),
    ],
)
def test_bad_config_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CircuitBreakerConfig(**kwargs)


def test_opens_after_threshold_and_rejects_without_calling(unique):
    name = unique("payment")
    breaker = circuit_breaker_registry.get_or_create(name, CircuitBreakerConfig(failure_threshold=2, timeout=60))
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state == CircuitState.OPEN == "open"
    calls = []
    with pytest.raises(CircuitBreakerOpenError) as caught:
        breaker.call(calls.append, 1)
    assert calls == []
    assert caught.value.breaker == name and caught.value.state == "open"
    assert 0 < caught.value.retry_after <= 60
    assert CircuitBreakerError is CircuitBreakerOpenError
    snap = breaker.snapshot()
    assert (snap["failures"], snap["rejected"]) == (2, 1)


def test_call_passes_args_kwargs_and_result(unique):
    breaker = circuit_breaker_registry.get_or_create(unique(), CircuitBreakerConfig())
    assert breaker.call(lambda a, b=0: a + b, 2, b=3) == 5


def test_half_open_closes_after_success_threshold(unique):
    breaker = circuit_breaker_registry.get_or_create(
        unique(), CircuitBreakerConfig(failure_threshold=1, success_threshold=2, timeout=0.02)
    )
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == "open"
    time.sleep(0.05)
    assert breaker.call(lambda: 1) == 1
    assert breaker.state == "half_open"
    assert breaker.call(lambda: 2) == 2
    assert breaker.state == "closed"


def test_unexpected_exceptions_do_not_count_as_failures(unique):
    breaker = circuit_breaker_registry.get_or_create(
        unique(), CircuitBreakerConfig(failure_threshold=1, expected_exception=(Boom,))
    )

    def bad_input():
        raise ValueError("caller's fault")

    for _ in range(3):
        with pytest.raises(ValueError):
            breaker.call(bad_input)
    assert breaker.state == "closed"
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state == "open"


def test_reset_force_open_disable(unique):
    breaker = circuit_breaker_registry.get_or_create(unique(), CircuitBreakerConfig(failure_threshold=1))
    breaker.force_open()
    assert breaker.state == "forced_open"
    with pytest.raises(CircuitBreakerOpenError):
        breaker.call(lambda: None)
    breaker.disable()
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state == "disabled"
    breaker.reset()
    assert breaker.state == "closed"


def test_registry_returns_the_same_breaker_by_name(unique):
    name = unique()
    a = circuit_breaker_registry.get_or_create(name, CircuitBreakerConfig(failure_threshold=1))
    b = circuit_breaker_registry.get_or_create(name, CircuitBreakerConfig(failure_threshold=9))
    with pytest.raises(Boom):
        a.call(fail)
    assert b.state == "open"  # one breaker; the first config wins
    assert name in circuit_breaker_registry.names()
    assert circuit_breaker_registry.get(name).state == "open"
    assert circuit_breaker_registry.get(unique()) is None
    assert any(s["name"] == name for s in circuit_breaker_registry.get_all_states())


def test_sync_decorator(unique):
    @circuit_breaker(CircuitBreakerConfig(failure_threshold=2), name=unique())
    def flaky(ok):
        """Doc."""
        if not ok:
            raise Boom("no")
        return "yes"

    assert flaky(True) == "yes"
    for _ in range(2):
        with pytest.raises(Boom):
            flaky(False)
    with pytest.raises(CircuitBreakerOpenError):
        flaky(True)
    assert flaky.__doc__ == "Doc." and flaky.breaker.state == "open"


def test_decorator_accepts_name_then_config(unique):
    name = unique()

    @circuit_breaker(name, CircuitBreakerConfig(failure_threshold=1))
    def f():
        raise Boom()

    with pytest.raises(Boom):
        f()
    assert circuit_breaker_registry.get(name).state == "open"


async def test_async_decorator_counts_awaited_outcomes(unique):
    @circuit_breaker(CircuitBreakerConfig(failure_threshold=2), name=unique())
    async def tool(ok):
        await asyncio.sleep(0)
        if not ok:
            raise Boom()
        return 42

    assert await tool(True) == 42
    for _ in range(2):
        with pytest.raises(Boom):
            await tool(False)
    with pytest.raises(CircuitBreakerOpenError):
        await tool(True)


async def test_cancelled_async_call_is_not_counted_and_frees_its_trial(unique):
    breaker = circuit_breaker_registry.get_or_create(
        unique(), CircuitBreakerConfig(failure_threshold=1, half_open_max_calls=1, timeout=0.01)
    )
    with pytest.raises(Boom):
        breaker.call(fail)
    await asyncio.sleep(0.03)

    async def slow():
        await asyncio.sleep(10)

    task = asyncio.ensure_future(call_async(breaker, slow))
    await asyncio.sleep(0.01)
    assert breaker.snapshot()["trials_in_flight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.snapshot()["trials_in_flight"] == 0
    assert breaker.state == "half_open"

    async def ok():
        return 1

    assert await call_async(breaker, ok) == 1


def test_half_open_admits_at_most_max_calls_at_once_under_threads(unique):
    breaker = circuit_breaker_registry.get_or_create(
        unique(), CircuitBreakerConfig(failure_threshold=1, success_threshold=10, half_open_max_calls=2, timeout=0.01)
    )
    with pytest.raises(Boom):
        breaker.call(fail)
    time.sleep(0.03)
    lock = threading.Lock()
    in_flight = peak = 0

    def trial():
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)  # releases the GIL: other threads try to get in meanwhile
        with lock:
            in_flight -= 1

    def attempt(_):
        try:
            breaker.call(trial)
            return "ran"
        except CircuitBreakerOpenError:
            return "rejected"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    assert peak <= 2
    assert outcomes.count("ran") >= 2 and "rejected" in outcomes


def test_failure_counts_are_exact_under_threads(unique):
    breaker = circuit_breaker_registry.get_or_create(unique(), CircuitBreakerConfig(failure_threshold=10**6))

    def work(i):
        for j in range(250):
            try:
                breaker.call(fail if (i + j) % 2 else (lambda: None))
            except Boom:
                pass

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(8)))
    snap = breaker.snapshot()
    assert snap["failures"] + snap["successes"] == 2000
    assert snap["failures"] == 1000
