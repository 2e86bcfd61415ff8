"""Circuit breaking: ``@circuit_breaker(config)`` for plain and ``async def`` functions,
``circuit_breaker_registry.get_or_create(name, config)`` and ``breaker.call(fn, *args)``.

CLOSED opens after ``failure_threshold`` consecutive failures; OPEN rejects with
``CircuitBreakerOpenError`` (the function does not run) until ``timeout`` seconds have
passed; HALF_OPEN admits at most ``half_open_max_calls`` trial calls at once, and
``success_threshold`` successes close it again while any failure reopens it.
"""

from __future__ import annotations

import functools
import inspect
from enum import Enum
from typing import Any, Awaitable, Callable, Optional, TypeVar, Union

from ._native import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    circuit_breaker_registry,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerOpenError",
    "CircuitState",
    "call_async",
    "circuit_breaker",
    "circuit_breaker_registry",
]


class CircuitState(str, Enum):
    """A breaker's state; equal to the string ``breaker.state`` returns."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


async def call_async(
    breaker: CircuitBreaker, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """``await fn(*args, **kwargs)`` through ``breaker`` (the async form of ``breaker.call``).
    A cancelled call gives its trial slot back without counting."""
    permit = breaker.acquire()
    try:
        result = await fn(*args, **kwargs)
    except BaseException as error:
        permit.failure(error)
        raise
    permit.success()
    return result


def circuit_breaker(
    config: Union[CircuitBreakerConfig, str, None] = None,
    maybe_config: Optional[CircuitBreakerConfig] = None,
    *,
    name: Optional[str] = None,
) -> Callable[[F], F]:
    """Wraps the decorated function (sync or ``async def``) in the breaker ``name`` (default:
    the function's module and qualified name), created with ``config``. Also accepts
    ``@circuit_breaker("name", config)``. The breaker is the wrapper's ``.breaker``."""
    if isinstance(config, str):
        name, config = config, maybe_config

    def decorate(fn: F) -> F:
        breaker = circuit_breaker_registry.get_or_create(
            name or f"{fn.__module__}.{fn.__qualname__}", config
        )
        if inspect.iscoroutinefunction(fn):

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                return await call_async(breaker, fn, *args, **kwargs)

        else:
            call = breaker.call

            def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                return call(fn, *args, **kwargs)

        functools.update_wrapper(wrapper, fn)
        wrapper.breaker = breaker  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
