"""Times LangGraph's SqliteSaver put / get_tuple on the chat-history states that the criterion
checkpoint bench writes, with fsync on (PRAGMA synchronous=FULL), for docs/PERFORMANCE.md.

Usage (from scripts/bench-langgraph.sh): python langgraph_saver.py STATE.json [STATE.json ...]
Prints one JSON object per state.
"""

import json
import os
import sqlite3
import statistics
import sys
import time
from importlib.metadata import version

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver


def measure(fn, iterations, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    cpu_start = time.process_time()
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1e6)
    cpu_ms = (time.process_time() - cpu_start) * 1000 / iterations
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "cpu_ms": cpu_ms,
        "n": iterations,
    }


def bench(path):
    with open(path, "rb") as f:
        raw = f.read()
    state = json.loads(raw)
    db = os.path.join(os.path.dirname(path), "langgraph-" + os.path.basename(path) + ".sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    conn = sqlite3.connect(db, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    conn.execute("PRAGMA synchronous=FULL")
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    config = {"configurable": {"thread_id": "thread-bench", "checkpoint_ns": ""}}
    last = {}

    def put():
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"state": state}
        checkpoint["channel_versions"] = {"state": 1}
        last["config"] = saver.put(config, checkpoint, {"source": "loop", "step": 1}, {"state": 1})

    iterations = 100 if len(raw) > 500_000 else 300
    put_stats = measure(put, iterations)
    get_stats = measure(lambda: saver.get_tuple(last["config"]), iterations)
    checkpoint_id = last["config"]["configurable"]["checkpoint_id"]
    stored = conn.execute(
        "SELECT length(checkpoint) FROM checkpoints WHERE checkpoint_id = ?", (checkpoint_id,)
    ).fetchone()[0]
    tup = saver.get_tuple(last["config"])
    assert tup.checkpoint["channel_values"]["state"] == state
    conn.close()
    return {
        "state": os.path.basename(path),
        "state_bytes": len(raw),
        "stored_bytes": stored,
        "put": put_stats,
        "get_tuple": get_stats,
        "journal_mode": journal,
        "synchronous": synchronous,
        "langgraph_checkpoint_sqlite": version("langgraph-checkpoint-sqlite"),
        "langgraph_checkpoint": version("langgraph-checkpoint"),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(json.dumps(bench(path)))
