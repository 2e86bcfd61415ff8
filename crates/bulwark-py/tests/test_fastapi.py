"""bulwark.fastapi.observability_router through a real server (uvicorn on a free port),
touring every route of the original's /api/observability."""

import shutil
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from bulwark import (
    CircuitBreakerConfig,
    RateLimitConfig,
    RateLimiter,
    StateCheckpointManager,
    circuit_breaker_registry,
    telemetry,
)
from bulwark.checkpoint import set_default_manager
from bulwark.fastapi import observability_router


@pytest.fixture(scope="module")
def server():
    app = FastAPI()
    app.include_router(observability_router)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/observability", timeout=10) as client:
        yield client
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def manager(tmp_path):
    m = StateCheckpointManager(checkpoint_dir=tmp_path / "ck")
    set_default_manager(m)
    return m


def test_health(server, manager):
    reply = server.get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert set(body["components"]) == {"checkpoint_store", "rate_limiters", "trace_store", "circuit_breakers"}
    assert body["components"]["checkpoint_store"]["status"] == "healthy"


def test_health_is_unhealthy_when_the_store_cannot_write(server, tmp_path):
    m = StateCheckpointManager(checkpoint_dir=tmp_path / "gone")
    set_default_manager(m)
    # The folder is replaced by a file: nothing can be written there any more.
    shutil.rmtree(tmp_path / "gone")
    (tmp_path / "gone").write_text("not a folder")
    reply = server.get("/health")
    assert reply.status_code == 503
    assert reply.json()["components"]["checkpoint_store"]["status"] == "unhealthy"


def test_rate_limiters(server, unique):
    name = unique("api")
    limiter = RateLimiter(RateLimitConfig(max_requests=5, time_window=60, burst_size=1), name=name)
    limiter.try_acquire(tokens=2)
    listed = {l["name"]: l for l in server.get("/rate-limiters").json()["rate_limiters"]}
    assert listed[name]["capacity"] == 6 and listed[name]["available"] == 4
    assert listed[name]["config"]["max_requests"] == 5


def test_circuit_breaker_routes(server, unique):
    name = unique("search_api")
    breaker = circuit_breaker_registry.get_or_create(name, CircuitBreakerConfig(failure_threshold=1))
    assert any(b["name"] == name for b in server.get("/circuit-breakers").json()["circuit_breakers"])
    assert server.get(f"/circuit-breakers/{name}").json()["state"] == "closed"
    assert server.post(f"/circuit-breakers/{name}/force-open").json()["state"] == "forced_open"
    assert breaker.state == "forced_open"
    assert server.get("/health").json()["components"]["circuit_breakers"]["status"] == "degraded"
    assert server.post(f"/circuit-breakers/{name}/disable").json()["state"] == "disabled"
    assert server.post(f"/circuit-breakers/{name}/reset").json()["state"] == "closed"
    missing = server.get("/circuit-breakers/nope-" + name)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert server.post("/circuit-breakers/nope-" + name + "/reset").status_code == 404


def test_checkpoint_routes(server, manager, checkpoint_dir):
    ids = [manager.save_checkpoint(state={"i": i}, agent_id="a", workflow_id="wf") for i in range(3)]
    listed = server.get("/checkpoints", params={"workflow_id": "wf", "limit": 2}).json()
    assert [c["id"] for c in listed["checkpoints"]] == ids[:0:-1]
    one = server.get(f"/checkpoints/{ids[0]}").json()
    assert one["id"] == ids[0] and one["verified"] is True
    assert server.get("/checkpoints/not-an-id").status_code == 400
    assert server.get("/checkpoints", params={"limit": 0}).status_code == 400
    assert server.delete(f"/checkpoints/{ids[0]}").json()["deleted"] is True
    assert server.delete(f"/checkpoints/{ids[0]}").status_code == 404
    assert server.get(f"/checkpoints/{ids[0]}").status_code == 404
    dry = server.post("/checkpoints/cleanup", json={"keep_last": 1, "dry_run": True}).json()
    assert dry["dry_run"] is True and len(dry["removed"]) == 1
    done = server.post("/checkpoints/cleanup", json={"keep_last": 1}).json()
    assert [r["metadata"]["id"] for r in done["removed"]] == [ids[1]]
    assert server.post("/checkpoints/cleanup", json={"keep_last": -1}).status_code == 400
    assert server.post("/checkpoints/cleanup", json={"bogus": 1}).status_code == 400


def test_a_corrupt_checkpoint_shows_as_unverified(server, manager, tmp_path):
    cid = manager.save_checkpoint(state={"v": 1}, agent_id="a", workflow_id="corrupt")
    path = tmp_path / "ck" / f"{cid}.ckpt"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    body = server.get(f"/checkpoints/{cid}").json()
    assert body["verified"] is False and "corrupt" in body["verification_error"]


def test_trace_routes(server):
    @telemetry.trace("route-tour-root")
    def root():
        with telemetry.tracer.span("route-tour-child"):
            return telemetry.current_span().trace_id

    trace_id = root()
    listed = server.get("/traces", params={"name": "route-tour-root"}).json()["traces"]
    assert listed[0]["trace_id"] == trace_id and listed[0]["span_count"] == 2
    tree = server.get(f"/traces/{trace_id}").json()
    assert tree["roots"][0]["name"] == "route-tour-root"
    assert tree["roots"][0]["children"][0]["name"] == "route-tour-child"
    assert server.get("/traces/xyz").status_code == 400
    assert server.get("/traces/" + "1" * 32).status_code == 404
    assert server.get("/traces", params={"limit": 5000}).status_code == 400


def test_metrics_routes(server):
    telemetry.metrics.increment_counter("route_tour_total", 4)
    telemetry.metrics.set_gauge("route_tour_gauge", 2.5)
    assert "route_tour_total" in server.get("/metrics").text
    assert "route_tour_total 4" in server.get("/metrics/prometheus").text
    assert server.post("/metrics/reset").json() == {"reset": True}
    text = server.get("/metrics/prometheus").text
    assert "route_tour_total 0" in text and "route_tour_gauge 2.5" in text
