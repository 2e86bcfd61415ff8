"""Bulwark's Python package beside the Python library a user would pick instead, same run.

    bash crates/bulwark-py/bench/run.sh          # builds a release wheel, installs peers, runs

Each figure is the median of several timed batches (time.perf_counter_ns); ratios are
Bulwark / peer (below 1 means Bulwark is faster). Prints a markdown table.
"""

import argparse
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bulwark  # noqa: E402
from bulwark import (  # noqa: E402
    CircuitBreakerConfig,
    RateLimitConfig,
    RateLimiter,
    StateCheckpointManager,
    circuit_breaker,
    circuit_breaker_registry,
    telemetry,
)
from original_checkpoint import OriginalCheckpointManager  # noqa: E402


def per_call(fn, n, repeats=7):
    """Median ns per call of fn() over `repeats` batches of n calls."""
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter_ns() - start) / n)
    return statistics.median(samples)


def per_op(setup_and_run, repeats):
    """Median ns of a single slow operation (setup excluded by the callable)."""
    samples = []
    for _ in range(repeats):
        samples.append(setup_and_run())
    return statistics.median(samples)


ROWS = []


def row(name, ours, peer, peer_name):
    ROWS.append((name, ours, peer, peer_name))
    print(f"{name:55s} bulwark {fmt(ours):>10s}  {peer_name} {fmt(peer):>10s}  ratio {ours / peer:.3f}", flush=True)


def fmt(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.2f} µs"


def bench_ratelimit(n):
    """One check per call under the original's default limit (100 per minute, burst 20): the
    first 120 are admitted, the rest refused, on both sides."""
    from limits import parse, storage, strategies

    limit = parse("120/minute")
    moving = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    fixed = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    ours = RateLimiter(RateLimitConfig(max_requests=100, time_window=60, burst_size=20))
    t_ours = per_call(ours.try_acquire, n)
    t_moving = per_call(lambda: moving.hit(limit, "user"), n)
    t_fixed = per_call(lambda: fixed.hit(limit, "user"), n)
    row("try_acquire vs limits moving window (memory)", t_ours, t_moving, "limits")
    row("try_acquire vs limits fixed window (memory)", t_ours, t_fixed, "limits")


def bench_breaker(n):
    import pybreaker

    def work():
        return 1

    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    ours = circuit_breaker_registry.get_or_create("bench-call", CircuitBreakerConfig())

    @circuit_breaker(CircuitBreakerConfig(), name="bench-decorated")
    def decorated():
        return 1

    @pb
    def pb_decorated():
        return 1

    bare = per_call(work, n)
    t_call = per_call(lambda: ours.call(work), n) - per_call(lambda: work(), n)
    t_pb_call = per_call(lambda: pb.call(work), n) - per_call(lambda: work(), n)
    t_dec = per_call(decorated, n) - bare
    t_pb_dec = per_call(pb_decorated, n) - bare
    row("breaker.call(fn) overhead vs pybreaker.call", t_call, t_pb_call, "pybreaker")
    row("@circuit_breaker overhead vs @pybreaker", t_dec, t_pb_dec, "pybreaker")


def bench_telemetry(n):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel = provider.get_tracer("bench")

    @telemetry.trace("traced", attributes={"agent": "planner"})
    def ours():
        return 1

    @otel.start_as_current_span("traced", attributes={"agent": "planner"})
    def peer():
        return 1

    def peer_and_clear():
        peer()

    t_ours = per_call(ours, n)
    samples = []
    for _ in range(7):
        exporter.clear()
        samples.append(per_call(peer, n, repeats=1))
    t_peer = statistics.median(samples)

    def nested_ours():
        with telemetry.tracer.span("outer"):
            ours()

    def nested_peer():
        with otel.start_as_current_span("outer"):
            peer()

    t_nested = per_call(nested_ours, n // 2)
    exporter.clear()
    t_nested_peer = per_call(nested_peer, n // 2, repeats=3)
    row("@telemetry.trace span vs OTel SDK (in-memory exporter)", t_ours, t_peer, "otel-sdk")
    row("parent + child span vs OTel SDK", t_nested, t_nested_peer, "otel-sdk")


def agent_state(target_bytes=1 << 20):
    """About 1 MB of JSON shaped like an agent's state: a message history with tool calls."""
    messages, size, i = [], 0, 0
    words = "the customer asked about a refund for order and the agent looked it up in".split()
    while size < target_bytes:
        text = " ".join(words[(i + k) % len(words)] for k in range(60)) + f" #{i}"
        msg = {"role": "assistant" if i % 2 else "user", "content": text, "step": i,
               "tool_calls": [{"name": "search", "args": {"q": f"order {i}", "limit": 5}}] if i % 3 == 0 else [],
               "score": i / 7}
        messages.append(msg)
        size += len(text) + 120
        i += 1
    return {"workflow": "support", "messages": messages, "context": {"customer": "c-42", "tier": "gold"}}


def bench_checkpoint(repeats):
    import json

    state = agent_state()
    size_mb = len(json.dumps(state)) / 1e6
    root = tempfile.mkdtemp(prefix="bulwark-pybench-")
    ours = StateCheckpointManager(checkpoint_dir=os.path.join(root, "ours"))
    ours_gzip = StateCheckpointManager(checkpoint_dir=os.path.join(root, "ours-gzip"), compression="gzip")
    original = OriginalCheckpointManager(os.path.join(root, "original"))

    def timed(f):
        def run():
            start = time.perf_counter_ns()
            f()
            return (time.perf_counter_ns() - start) / size_mb

        return run

    ids = {}

    def save(name, manager):
        def f():
            ids[name] = manager.save_checkpoint(state=state, agent_id="agent", workflow_id="wf")

        return timed(f)

    def load(name, manager):
        return timed(lambda: manager.load_checkpoint(ids[name]))

    s_ours = per_op(save("ours", ours), repeats)
    s_gzip = per_op(save("gzip", ours_gzip), repeats)
    s_orig = per_op(save("orig", original), repeats)
    l_ours = per_op(load("ours", ours), repeats)
    l_gzip = per_op(load("gzip", ours_gzip), repeats)
    l_orig = per_op(load("orig", original), repeats)
    row("checkpoint save per MB (zstd) vs original design", s_ours, s_orig, "original")
    row("checkpoint save per MB (gzip) vs original design", s_gzip, s_orig, "original")
    row("checkpoint load per MB (zstd) vs original design", l_ours, l_orig, "original")
    row("checkpoint load per MB (gzip) vs original design", l_gzip, l_orig, "original")

    try:
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError as error:  # pragma: no cover
        print(f"langgraph sqlite saver unavailable: {error}")
        return
    conn = sqlite3.connect(os.path.join(root, "langgraph.sqlite"), check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    config = {"configurable": {"thread_id": "wf", "checkpoint_ns": ""}}
    step = [0]

    def lg_save():
        ck = empty_checkpoint()
        ck["channel_values"] = {"state": state}
        ck["channel_versions"] = {"state": step[0] + 1}
        step[0] += 1
        saver.put(config, ck, {"source": "loop", "step": step[0]}, {"state": step[0]})

    def lg_load():
        got = saver.get_tuple(config)
        assert got.checkpoint["channel_values"]["state"]["workflow"] == "support"

    s_lg = per_op(timed(lg_save), repeats)
    l_lg = per_op(timed(lg_load), repeats)
    row("checkpoint save per MB (zstd) vs LangGraph SqliteSaver", s_ours, s_lg, "langgraph")
    row("checkpoint load per MB (zstd) vs LangGraph SqliteSaver", l_ours, l_lg, "langgraph")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--checkpoints", type=int, default=15)
    args = parser.parse_args()
    print(f"bulwark {bulwark.__version__}, Python {sys.version.split()[0]}", flush=True)
    bench_ratelimit(args.calls)
    bench_breaker(args.calls)
    bench_telemetry(args.calls // 2)
    bench_checkpoint(args.checkpoints)
    print()
    print("| measurement | Bulwark | peer | Bulwark / peer |")
    print("|---|---|---|---|")
    for name, ours, peer, peer_name in ROWS:
        print(f"| {name} | {fmt(ours)} | {peer_name}: {fmt(peer)} | {ours / peer:.2f} |")


if __name__ == "__main__":
    main()
