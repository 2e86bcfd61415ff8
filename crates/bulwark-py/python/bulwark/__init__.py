"""Bulwark for Python: rate limiting, circuit breaking, durable checkpoints and telemetry for
LLM agent backends, with the original Python module's names, on Bulwark's Rust core.

Switching from the original is a change of import::

    from bulwark import RateLimitConfig, RateLimiter, rate_limit
    from bulwark import CircuitBreakerConfig, circuit_breaker, circuit_breaker_registry
    from bulwark import StateCheckpointManager, AutoCheckpointer
    from bulwark import telemetry
    from bulwark.fastapi import observability_router
"""

from __future__ import annotations

import atexit as _atexit

from . import _native
from ._native import (
    AutoCheckpointer,
    BreakerPermit,
    CheckpointCorruptedError,
    CheckpointError,
    CheckpointNotFoundError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    CircuitBreakerRegistry,
    RateLimitConfig,
    RateLimitError,
    __version__,
    circuit_breaker_registry,
)
from . import telemetry
from .breaker import CircuitState, call_async, circuit_breaker
from .checkpoint import StateCheckpointManager
from .ratelimit import RateLimiter, rate_limit

#: The original's name for the open-circuit error.
CircuitBreakerError = CircuitBreakerOpenError

_atexit.register(_native.shutdown)

__all__ = [
    "AutoCheckpointer",
    "BreakerPermit",
    "CheckpointCorruptedError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerError",
    "CircuitBreakerOpenError",
    "CircuitBreakerRegistry",
    "CircuitState",
    "RateLimitConfig",
    "RateLimitError",
    "RateLimiter",
    "StateCheckpointManager",
    "__version__",
    "call_async",
    "circuit_breaker",
    "circuit_breaker_registry",
    "rate_limit",
    "telemetry",
]
