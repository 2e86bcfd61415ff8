"""16 threads calling LangGraph's `put` for 10 s, each on its own thread id, with the 100 KB
chat state the checkpoint bench writes: SqliteSaver (WAL, synchronous=FULL, one shared
connection as SqliteSaver requires) and PostgresSaver (a pool of 16 connections, a fresh schema
on the local PostgreSQL, dropped afterwards). Prints one JSON object per saver: saves/s and the
p50 / p99 of `put`.

Usage (from scripts/bench-langgraph-concurrent.sh):
    python langgraph_concurrent.py STATE.json SECONDS THREADS [POSTGRES_URL]
"""

import json
import os
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from importlib.metadata import version

from langgraph.checkpoint.base import empty_checkpoint


def drive(saver, state, seconds, threads):
    latencies = [[] for _ in range(threads)]
    deadline = [0.0]
    start_barrier = threading.Barrier(threads + 1)

    def writer(k):
        config = {"configurable": {"thread_id": f"thread-{k}", "checkpoint_ns": ""}}
        start_barrier.wait()
        while time.perf_counter() < deadline[0]:
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"state": state}
            checkpoint["channel_versions"] = {"state": 1}
            t0 = time.perf_counter_ns()
            config = saver.put(config, checkpoint, {"source": "loop", "step": 1}, {"state": 1})
            latencies[k].append((time.perf_counter_ns() - t0) / 1e6)

    workers = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    deadline[0] = time.perf_counter() + seconds
    begun = time.perf_counter()
    start_barrier.wait()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - begun
    all_ms = sorted(x for per in latencies for x in per)
    return {
        "saves": len(all_ms),
        "saves_per_s": len(all_ms) / elapsed,
        "p50_ms": statistics.median(all_ms),
        "p99_ms": all_ms[min(len(all_ms) - 1, int(len(all_ms) * 0.99))],
        "threads": threads,
        "seconds": elapsed,
    }


def sqlite(path, state, seconds, threads):
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = os.path.join(os.path.dirname(path), "langgraph-concurrent.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    conn = sqlite3.connect(db, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    conn.execute("PRAGMA synchronous=FULL")
    result = drive(saver, state, seconds, threads)
    result["saver"] = "SqliteSaver"
    result["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
    result["version"] = version("langgraph-checkpoint-sqlite")
    conn.close()
    os.remove(db)
    return result


def postgres(url, state, seconds, threads):
    import psycopg
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool
    from langgraph.checkpoint.postgres import PostgresSaver

    schema = "lg_bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row,
                  "options": f"-c search_path={schema}"}
        with ConnectionPool(url, min_size=threads, max_size=threads, kwargs=kwargs) as pool:
            saver = PostgresSaver(pool)
            saver.setup()
            result = drive(saver, state, seconds, threads)
        result["saver"] = "PostgresSaver"
        result["version"] = version("langgraph-checkpoint-postgres")
        return result
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    path, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    with open(path, "rb") as f:
        state = json.loads(f.read())
    print(json.dumps(sqlite(path, state, seconds, threads)), flush=True)
    if len(sys.argv) > 4:
        print(json.dumps(postgres(sys.argv[4], state, seconds, threads)), flush=True)
