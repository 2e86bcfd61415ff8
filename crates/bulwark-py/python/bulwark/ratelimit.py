"""Rate limiting: ``RateLimiter(config).try_acquire()`` and the ``@rate_limit(config)``
decorator for plain and ``async def`` functions.

A limiter is a token bucket holding ``max_requests + burst_size`` tokens, refilled
continuously at ``max_requests / time_window`` (GCRA in Rust: one atomic word, no thread).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Callable, Optional, TypeVar

from . import _native
from ._native import RateLimitConfig, RateLimitError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["RateLimitConfig", "RateLimitError", "RateLimiter", "rate_limit"]


class RateLimiter(_native.RateLimiter):
    """A token bucket. ``try_acquire(tokens=1)`` never waits; ``check`` raises
    ``RateLimitError`` (with ``retry_after`` seconds); ``acquire`` waits with the GIL released;
    ``await acquire_async(...)`` waits without blocking the event loop.

    With ``name``, the limiter is the process registry's limiter of that name (shared by
    every caller, listed by ``/api/observability/rate-limiters``).
    """

    async def acquire_async(self, tokens: int = 1, max_wait: float = 30.0) -> None:
        """Waits on the event loop until ``tokens`` are taken; raises ``RateLimitError``
        at once when that would take longer than ``max_wait`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while True:
            wait = self.wait_time(tokens)
            if wait == 0.0:
                return
            if loop.time() + wait > deadline:
                self.check(tokens)  # raises RateLimitError with retry_after, or takes them
                return
            await asyncio.sleep(wait)


def rate_limit(
    config: Optional[RateLimitConfig] = None,
    *,
    name: Optional[str] = None,
    tokens: int = 1,
    wait: bool = False,
    max_wait: float = 30.0,
) -> Callable[[F], F]:
    """Limits calls of the decorated function (sync or ``async def``).

    Each call takes ``tokens``; a refused call raises ``RateLimitError`` before the function
    runs. With ``wait=True`` a call waits instead (at most ``max_wait`` seconds: a sync
    function sleeps with the GIL released, a coroutine awaits). The limiter is registered as
    ``name`` (default: the function's module and qualified name) and is the wrapper's
    ``.limiter`` attribute.
    """

    def decorate(fn: F) -> F:
        limiter = RateLimiter(config, name=name or f"{fn.__module__}.{fn.__qualname__}")
        if inspect.iscoroutinefunction(fn):
            if wait:

                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    await limiter.acquire_async(tokens, max_wait)
                    return await fn(*args, **kwargs)

            else:
                check = limiter.check

                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    check(tokens)
                    return await fn(*args, **kwargs)

        elif wait:
            acquire = limiter.acquire

            def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                acquire(tokens, max_wait)
                return fn(*args, **kwargs)

        else:
            check = limiter.check

            def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                check(tokens)
                return fn(*args, **kwargs)

        functools.update_wrapper(wrapper, fn)
        wrapper.limiter = limiter  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
