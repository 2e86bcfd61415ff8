"""telemetry.trace, tracer.start_span / end_span, the context-manager form and metrics;
spans nest by Python's call structure (contextvars, across await) and land in the process's
trace store (the one the observability API reads) and its OTLP exporter."""

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bulwark import _native, telemetry


def tree(trace_id):
    text = _native.trace_json(trace_id)
    assert text is not None, f"trace {trace_id} is not in the store"
    return json.loads(text)


def spans_by_name(trace_id):
    out = {}

    def walk(nodes):
        for node in nodes:
            out[node["name"]] = node
            walk(node["children"])

    walk(tree(trace_id)["roots"])
    return out


def test_telemetry_is_installed():
    assert _native.telemetry_status() is None


def test_ids_are_w3c():
    span = telemetry.tracer.start_span(name="ids")
    assert re.fullmatch(r"[0-9a-f]{32}", span.trace_id)
    assert re.fullmatch(r"[0-9a-f]{16}", span.span_id)
    assert span.traceparent == f"00-{span.trace_id}-{span.span_id}-01"
    telemetry.tracer.end_span(span)
    assert not span.is_recording


def test_sync_decorator_nests_by_call():
    @telemetry.trace("outer-sync", attributes={"priority": "high"})
    def outer():
        return inner(), telemetry.current_span().span_id

    @telemetry.trace("inner-sync")
    def inner():
        s = telemetry.current_span()
        return s.trace_id, s.parent_span_id

    (trace_id, parent_of_inner), outer_id = outer()
    spans = spans_by_name(trace_id)
    assert parent_of_inner == outer_id
    assert spans["inner-sync"]["parent_span_id"] == spans["outer-sync"]["span_id"] == outer_id
    assert spans["outer-sync"]["attributes"]["priority"] == "high"
    assert telemetry.current_span() is None


async def test_async_nesting_follows_await_and_tasks_not_threads():
    seen = {}

    @telemetry.trace("step")
    async def step(i):
        await asyncio.sleep(0.001 * (3 - i))  # interleave the steps
        s = telemetry.current_span()
        seen[i] = (s.span_id, s.parent_span_id)

    @telemetry.trace("workflow")
    async def workflow():
        await asyncio.sleep(0)
        await asyncio.gather(*(step(i) for i in range(3)))
        return telemetry.current_span()

    root = await workflow()
    assert all(parent == root.span_id for _, parent in seen.values())
    assert len({sid for sid, _ in seen.values()}) == 3
    summary = json.loads(_native.traces_json("workflow", None, None, 10))["traces"]
    assert any(t["trace_id"] == root.trace_id and t["span_count"] == 4 for t in summary)


async def test_an_exception_marks_the_span_and_is_reraised():
    @telemetry.trace("fails")
    async def fails():
        raise KeyError("missing")

    with pytest.raises(KeyError):
        await fails()
    summary = json.loads(_native.traces_json("fails", True, None, 1))["traces"][0]
    assert summary["has_error"] is True
    span = spans_by_name(summary["trace_id"])["fails"]
    assert span["status"]["code"] == "ERROR"
    assert "KeyError" in span["status"]["message"]
    assert span["events"][0]["name"] == "exception"


def test_manual_spans_and_the_context_manager_form():
    tracer = telemetry.tracer
    span = tracer.start_span(name="manual-root", attributes={"agent": "planner", "n": 3, "ok": True, "x": 0.5})
    with tracer.span("block", attributes={"tool": "search"}) as block:
        assert block.parent_span_id == span.span_id
        block.add_event("cache_miss", {"key": "q1"})
    child = tracer.start_span(name="manual-child")
    assert child.parent_span_id == span.span_id
    tracer.end_span(child)
    assert tracer.get_current_span() is span
    span.set_status("OK")
    tracer.end_span(span)
    assert tracer.get_current_span() is None
    spans = spans_by_name(span.trace_id)
    assert set(spans) == {"manual-root", "block", "manual-child"}
    assert spans["manual-root"]["status"]["code"] == "OK"
    assert spans["manual-root"]["attributes"] == {"agent": "planner", "n": 3, "ok": True, "x": 0.5}
    assert spans["block"]["events"][0]["name"] == "cache_miss"
    with pytest.raises(ValueError, match="status must be"):
        span.set_status("FINE")


def test_metrics_reach_the_registry():
    telemetry.metrics.increment_counter("py_requests_total", labels={"route": "/chat"})
    telemetry.metrics.increment_counter("py_requests_total", 2, labels={"route": "/chat"})
    telemetry.metrics.set_gauge("py_queue_depth", 7.0)
    telemetry.metrics.record_histogram("py_latency_seconds", 0.25, labels={"route": "/chat"})
    text = telemetry.metrics.render_prometheus()
    assert 'py_requests_total{route="/chat"} 3' in text
    assert "py_queue_depth 7" in text
    assert 'py_latency_seconds_count{route="/chat"} 1' in text
    snapshot = telemetry.metrics.get_metrics()
    assert "py_requests_total" in json.dumps(snapshot)
    with pytest.raises(ValueError):
        telemetry.metrics.set_gauge("py_requests_total", 1.0, labels={"route": "/chat"})  # a counter


class _Collector(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("content-length", 0))
        type(self).bodies.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_python_spans_go_out_through_the_otlp_exporter():
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code = textwrap.dedent(
            """
            from bulwark import telemetry
            @telemetry.trace("exported-from-python")
            def work():
                return telemetry.current_span().trace_id
            print(work())
            telemetry.flush()
            """
        )
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}",
                   OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        trace_id = bytes.fromhex(out.stdout.strip())
    finally:
        server.shutdown()
    posts = [body for path, body in _Collector.bodies if path == "/v1/traces"]
    assert posts, _Collector.bodies
    assert any(b"exported-from-python" in body and trace_id in body for body in posts)
