"""``observability_router``: a FastAPI ``APIRouter`` serving the original's
``/api/observability`` routes from this process's registries and stores (the same JSON
shapes as ``bulwark serve``)::

    from fastapi import FastAPI
    from bulwark.fastapi import observability_router

    app = FastAPI()
    app.include_router(observability_router)

Checkpoint routes serve ``bulwark.checkpoint.default_manager()``: the most recently created
``StateCheckpointManager`` (or the one given to ``set_default_manager``).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Optional

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from . import _native
from .checkpoint import default_manager
from ._native import CheckpointNotFoundError, CheckpointCorruptedError

__all__ = ["observability_router", "MAX_LIMIT"]

#: The largest page the list routes return.
MAX_LIMIT = 1000

observability_router = APIRouter(prefix="/api/observability", tags=["observability"])


def _json(text: str, status: int = 200) -> Response:
    return Response(content=text, status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _manager_or_error() -> Any:
    manager = default_manager()
    if manager is None:
        return None, _error(503, "unavailable", "no StateCheckpointManager has been created in this process")
    return manager, None


def _check_limit(limit: int) -> Optional[JSONResponse]:
    if not 1 <= limit <= MAX_LIMIT:
        return _error(400, "bad_request", f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return None


@observability_router.get("/health")
def health() -> Response:
    """Per-component health; 503 when a component is unhealthy."""
    components: Dict[str, Dict[str, str]] = {}
    manager = default_manager()
    if manager is None:
        components["checkpoint_store"] = {"status": "degraded", "message": "no checkpoint manager created"}
    else:
        directory = str(manager.checkpoint_dir)
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".health-"):
                pass
            components["checkpoint_store"] = {"status": "healthy", "message": f"fs store at {directory} is writable"}
        except OSError as error:
            components["checkpoint_store"] = {"status": "unhealthy", "message": f"{directory}: {error}"}
    limiters = json.loads(_native.rate_limiters_json())["rate_limiters"]
    components["rate_limiters"] = {"status": "healthy", "message": f"{len(limiters)} limiter(s), local backend"}
    stats = json.loads(_native.trace_store_stats_json())
    components["trace_store"] = {
        "status": "healthy",
        "message": f"in memory: {stats['spans']} span(s) in {stats['traces']} trace(s)",
    }
    breakers = json.loads(_native.circuit_breakers_json())["circuit_breakers"]
    open_ = [b["name"] for b in breakers if b["state"] in ("open", "forced_open")]
    components["circuit_breakers"] = (
        {"status": "degraded", "message": f"open: {', '.join(open_)}"}
        if open_
        else {"status": "healthy", "message": f"{len(breakers)} breaker(s), none open"}
    )
    statuses = {c["status"] for c in components.values()}
    overall = "unhealthy" if "unhealthy" in statuses else "degraded" if "degraded" in statuses else "healthy"
    return JSONResponse(
        {"status": overall, "components": components, "version": _native.__version__},
        status_code=503 if overall == "unhealthy" else 200,
    )


@observability_router.get("/rate-limiters")
def rate_limiters() -> Response:
    """The named rate limiters with their config and available tokens."""
    return _json(_native.rate_limiters_json())


@observability_router.get("/circuit-breakers")
def circuit_breakers() -> Response:
    """Every breaker's state and counts."""
    return _json(_native.circuit_breakers_json())


@observability_router.get("/circuit-breakers/{name}")
def circuit_breaker(name: str) -> Response:
    """One breaker's snapshot; 404 when unknown."""
    text = _native.circuit_breaker_json(name)
    if text is None:
        return _error(404, "not_found", f"no circuit breaker named {name!r}")
    return _json(text)


def _breaker_action(name: str, action: str) -> Response:
    breaker = _native.circuit_breaker_registry.get(name)
    if breaker is None:
        return _error(404, "not_found", f"no circuit breaker named {name!r}")
    getattr(breaker, action)()
    text = _native.circuit_breaker_json(name)
    return _json(text or "{}")


@observability_router.post("/circuit-breakers/{name}/reset")
def reset_circuit_breaker(name: str) -> Response:
    """Back to CLOSED with zeroed counts."""
    return _breaker_action(name, "reset")


@observability_router.post("/circuit-breakers/{name}/force-open")
def force_open_circuit_breaker(name: str) -> Response:
    """FORCED_OPEN: rejects every call until reset."""
    return _breaker_action(name, "force_open")


@observability_router.post("/circuit-breakers/{name}/disable")
def disable_circuit_breaker(name: str) -> Response:
    """DISABLED: lets every call through until reset."""
    return _breaker_action(name, "disable")


@observability_router.get("/checkpoints")
def checkpoints(
    agent_id: Optional[str] = None,
    workflow_id: Optional[str] = None,
    limit: int = Query(100),
) -> Response:
    """Checkpoint metadata, newest first."""
    bad = _check_limit(limit)
    if bad is not None:
        return bad
    manager, error = _manager_or_error()
    if error is not None:
        return error
    try:
        items = manager.list_checkpoints(agent_id, workflow_id, limit)
    except ValueError as e:
        return _error(400, "bad_request", str(e))
    return JSONResponse({"checkpoints": items, "count": len(items)})


@observability_router.post("/checkpoints/cleanup")
def cleanup_checkpoints(body: Dict[str, Any] = Body(default_factory=dict)) -> Response:
    """Applies a retention policy: ``{"keep_last": N, "max_age": seconds, "dry_run": bool}``."""
    manager, error = _manager_or_error()
    if error is not None:
        return error
    unknown = set(body) - {"keep_last", "max_age", "dry_run"}
    if unknown:
        return _error(400, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
    keep_last = body.get("keep_last", 10)
    max_age = body.get("max_age")
    dry_run = body.get("dry_run", False)
    if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 0:
        return _error(400, "bad_request", "keep_last must be a non-negative integer")
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, (int, float))):
        return _error(400, "bad_request", "max_age must be a number of seconds")
    if not isinstance(dry_run, bool):
        return _error(400, "bad_request", "dry_run must be a boolean")
    try:
        report = manager.cleanup_old_checkpoints(keep_last, max_age, dry_run)
    except ValueError as e:
        return _error(400, "bad_request", str(e))
    return JSONResponse(report)


@observability_router.get("/checkpoints/{checkpoint_id}")
def checkpoint(checkpoint_id: str) -> Response:
    """One checkpoint's metadata, verified (``"verified": false`` and the reason when its
    bytes do not verify)."""
    manager, error = _manager_or_error()
    if error is not None:
        return error
    try:
        meta = manager.get_checkpoint_metadata(checkpoint_id)
    except ValueError as e:
        return _error(400, "bad_request", str(e))
    except CheckpointNotFoundError as e:
        return _error(404, "not_found", str(e))
    try:
        manager.verify_checkpoint(checkpoint_id)
        meta["verified"] = True
    except CheckpointCorruptedError as e:
        meta["verified"] = False
        meta["verification_error"] = str(e)
    return JSONResponse(meta)


@observability_router.delete("/checkpoints/{checkpoint_id}")
def delete_checkpoint(checkpoint_id: str) -> Response:
    """Deletes a checkpoint; 404 when there is none."""
    manager, error = _manager_or_error()
    if error is not None:
        return error
    try:
        deleted = manager.delete_checkpoint(checkpoint_id)
    except ValueError as e:
        return _error(400, "bad_request", str(e))
    if not deleted:
        return _error(404, "not_found", f"checkpoint {checkpoint_id} not found")
    return JSONResponse({"deleted": True, "checkpoint_id": checkpoint_id})


@observability_router.get("/traces")
def traces(
    name: Optional[str] = None,
    has_error: Optional[bool] = None,
    min_duration_ms: Optional[int] = Query(None, ge=0),
    limit: int = Query(100),
) -> Response:
    """Recent traces, newest first."""
    bad = _check_limit(limit)
    if bad is not None:
        return bad
    return _json(_native.traces_json(name, has_error, min_duration_ms, limit))


@observability_router.get("/traces/{trace_id}")
def trace(trace_id: str) -> Response:
    """One trace as a span tree; 400 for a malformed id, 404 when unknown or expired."""
    try:
        text = _native.trace_json(trace_id)
    except ValueError as e:
        return _error(400, "bad_request", str(e))
    if text is None:
        return _error(404, "not_found", f"no trace {trace_id}")
    return _json(text)


@observability_router.get("/metrics")
def metrics() -> Response:
    """Every metric as JSON."""
    return _json(_native.metrics_json())


@observability_router.post("/metrics/reset")
def reset_metrics() -> Response:
    """Zeroes counters and histograms; gauges stay."""
    _native.metrics_reset()
    return JSONResponse({"reset": True})


@observability_router.get("/metrics/prometheus")
def prometheus() -> Response:
    """Every metric as Prometheus text exposition."""
    return PlainTextResponse(_native.metrics_prometheus(), media_type="text/plain; version=0.0.4")
