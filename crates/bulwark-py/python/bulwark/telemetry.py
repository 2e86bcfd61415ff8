"""Telemetry: ``telemetry.trace(name, attributes=...)``, ``telemetry.tracer.start_span`` /
``end_span``, the ``with telemetry.tracer.span(...)`` form, and ``telemetry.metrics``.

Spans get W3C ids (128-bit trace, 64-bit span) and land in the same trace store and OTLP
exporter as the process's Rust spans (``OTEL_EXPORTER_OTLP_ENDPOINT`` turns export on). The
current span lives in a ``contextvars.ContextVar``: a span started while another is current
is its child, across ``await`` and in the tasks a coroutine starts (each task gets a copy of
the context), never across unrelated tasks or threads.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar, Union, overload

from . import _native
from ._native import Span

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Metrics", "Span", "Tracer", "current_span", "flush", "metrics", "span", "trace", "tracer"]

_current: contextvars.ContextVar[Optional[Span]] = contextvars.ContextVar(
    "bulwark_current_span", default=None
)
_start = _native.start_span


def current_span() -> Optional[Span]:
    """The span current in this context, if any."""
    return _current.get()


class Tracer:
    """Starts and ends spans; ``start_span`` makes the new span current in this context and
    ``end_span`` makes its parent current again."""

    def start_span(
        self,
        name: str,
        attributes: Optional[Mapping[str, Any]] = None,
        parent: Optional[Span] = None,
    ) -> Span:
        """Starts ``name`` as a child of ``parent`` (default: the current span)."""
        span = _start(name, dict(attributes) if attributes else None, parent if parent is not None else _current.get())
        _current.set(span)
        return span

    def end_span(self, span: Span, status: Optional[str] = None) -> None:
        """Ends ``span`` (setting ``status`` first when given)."""
        if status is not None:
            span.set_status(status)
        span.end()
        if _current.get() is span:
            _current.set(span.parent)

    def get_current_span(self) -> Optional[Span]:
        """The span current in this context, if any."""
        return _current.get()

    def span(self, name: str, attributes: Optional[Mapping[str, Any]] = None) -> "_Scope":
        """``with tracer.span(name) as span:`` — a child of the current span, current inside
        the block; an exception is recorded on it (ERROR status) and re-raised."""
        return _Scope(name, dict(attributes) if attributes else None)

    # The original tracer's context-manager name.
    start_as_current_span = span


class Metrics:
    """Counters, gauges and histograms in the process's metrics registry (the one
    ``/api/observability/metrics`` and Prometheus read)."""

    increment_counter = staticmethod(_native.increment_counter)
    set_gauge = staticmethod(_native.set_gauge)
    record_histogram = staticmethod(_native.record_histogram)

    def get_metrics(self) -> Dict[str, Any]:
        """Every metric as the JSON snapshot."""
        return json.loads(_native.metrics_json())

    def render_prometheus(self) -> str:
        """Every metric as Prometheus text."""
        return _native.metrics_prometheus()

    def reset(self) -> None:
        """Zeroes counters and histograms; gauges keep their values."""
        _native.metrics_reset()


tracer = Tracer()
metrics = Metrics()
span = tracer.span


class _Scope:
    """One span, current while the ``with`` block (or the decorated call) runs."""

    __slots__ = ("_name", "_attributes", "_span", "_token")

    def __init__(self, name: str, attributes: Optional[Dict[str, Any]]) -> None:
        self._name = name
        self._attributes = attributes

    def __enter__(self) -> Span:
        self._span = _start(self._name, self._attributes, _current.get())
        self._token = _current.set(self._span)
        return self._span

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if error is not None:
            self._span.record_exception(error)
        _current.reset(self._token)
        self._span.end()


def _wrap(fn: F, name: str, attributes: Optional[Dict[str, Any]]) -> F:
    if inspect.iscoroutinefunction(fn):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _Scope(name, attributes):
                return await fn(*args, **kwargs)

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            with _Scope(name, attributes):
                return fn(*args, **kwargs)

    functools.update_wrapper(wrapper, fn)
    return wrapper  # type: ignore[return-value]


@overload
def trace(name: F) -> F: ...
@overload
def trace(name: Optional[str] = None, attributes: Optional[Mapping[str, Any]] = None) -> Callable[[F], F]: ...
def trace(name: Union[str, Callable[..., Any], None] = None, attributes: Optional[Mapping[str, Any]] = None) -> Any:
    """Traces each call of the decorated function (sync or ``async def``) as a span named
    ``name`` (default: the function's qualified name), a child of the current span; an
    exception is recorded on the span (``exception`` event, ERROR status) and re-raised.
    Works as ``@trace``, ``@trace()`` and ``@trace("name", attributes={...})``."""
    if callable(name):
        return _wrap(name, name.__qualname__, None)
    attrs = dict(attributes) if attributes else None

    def decorate(fn: F) -> F:
        return _wrap(fn, name or fn.__qualname__, attrs)

    return decorate


def flush() -> None:
    """Sends every span waiting for OTLP export now."""
    _native.flush()
