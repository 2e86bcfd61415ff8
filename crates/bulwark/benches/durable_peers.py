"""The durable bench's peers, run in the same bench run (scripts/bench-durable.sh, called by
crates/bulwark/benches/durable.rs): the same work as Bulwark's cases, for docs/PERFORMANCE.md.

* LangGraph, a StateGraph of BENCH_STEPS trivial nodes (each adds one to an int), invoked to
  the end, with SqliteSaver (WAL, PRAGMA synchronous=FULL) and PostgresSaver (fresh schema),
  durability="sync" (each step's checkpoint is written before the next step runs).
* LangGraph's functional API: an entrypoint making BENCH_STEPS trivial @task calls (tasks are
  LangGraph's memoized effects), same savers.
* DBOS Transact: a workflow of BENCH_STEPS trivial @DBOS.step calls on the same PostgreSQL
  (its own fresh database), each step's output recorded before the next.

Prints one JSON object: per case the mean / median milliseconds of one whole run.
"""

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
from importlib.metadata import PackageNotFoundError, version

STEPS = int(os.environ.get("BENCH_STEPS", "100"))
URL = os.environ.get("BULWARK_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
SCHEMA = "langgraph_durable_bench"
DBOS_DB = "bulwark_dbos_bench"
BUDGET_S = float(os.environ.get("BENCH_SECONDS", "3"))


def measure(fn, warmup=2, min_runs=5, max_runs=200):
    for _ in range(warmup):
        fn()
    times = []
    deadline = time.perf_counter() + BUDGET_S
    while len(times) < min_runs or (time.perf_counter() < deadline and len(times) < max_runs):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return {"mean_ms": statistics.fmean(times), "median_ms": statistics.median(times), "n": len(times)}


def with_search_path(url, schema):
    sep = "&" if "?" in url else "?"
    return url + sep + "options=" + urllib.parse.quote(f"-c search_path={schema}")


def with_database(url, database):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def graph(saver):
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        n: int

    def node(state):
        return {"n": state["n"] + 1}

    builder = StateGraph(State)
    previous = START
    for i in range(STEPS):
        builder.add_node(f"s{i}", node)
        builder.add_edge(previous, f"s{i}")
        previous = f"s{i}"
    builder.add_edge(previous, END)
    return builder.compile(checkpointer=saver)


def tasks(saver):
    from langgraph.func import entrypoint, task

    @task
    def one(i):
        return 1

    @entrypoint(checkpointer=saver)
    def effects(n: int) -> int:
        for i in range(STEPS):
            n += one(i).result()
        return n

    return effects


def bench_langgraph(saver, label, out):
    counter = iter(range(10**9))
    for name, app, start in (("nodes", graph(saver), {"n": 0}), ("tasks", tasks(saver), 0)):

        def run():
            config = {"configurable": {"thread_id": f"{label}-{name}-{next(counter)}"}, "recursion_limit": STEPS + 10}
            result = app.invoke(start, config, durability="sync")
            value = result["n"] if isinstance(result, dict) else result
            assert value == STEPS, value

        out[f"langgraph_{label}_{STEPS}_{name}"] = measure(run)


def sqlite_cases(out):
    from langgraph.checkpoint.sqlite import SqliteSaver

    with tempfile.TemporaryDirectory() as folder:
        conn = sqlite3.connect(os.path.join(folder, "langgraph.sqlite"), check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        conn.execute("PRAGMA synchronous=FULL")
        out["sqlite_journal"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
        bench_langgraph(saver, "sqlite", out)
        conn.close()


def postgres_cases(out):
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver

    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    with PostgresSaver.from_conn_string(with_search_path(URL, SCHEMA)) as saver:
        saver.setup()
        bench_langgraph(saver, "postgres", out)


def dbos_cases(out):
    try:
        import psycopg
        from dbos import DBOS
    except ImportError as e:
        out[f"dbos_{STEPS}_steps"] = {"skipped": f"dbos is not installed ({e})"}
        return
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DBOS_DB} WITH (FORCE)")
    DBOS(config={"name": "bulwark-durable-bench", "system_database_url": with_database(URL, DBOS_DB)})

    @DBOS.step()
    def one(i):
        return 1

    @DBOS.workflow()
    def steps(n):
        for i in range(STEPS):
            n += one(i)
        return n

    DBOS.launch()
    try:

        def run():
            assert steps(0) == STEPS

        out[f"dbos_{STEPS}_steps"] = measure(run)
    finally:
        DBOS.destroy()


def main():
    out = {}
    versions = {"python": sys.version.split()[0]}
    for package in ("langgraph", "langgraph-checkpoint-sqlite", "langgraph-checkpoint-postgres", "psycopg", "dbos"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    out["versions"] = versions
    for cases in (sqlite_cases, postgres_cases, dbos_cases):
        try:
            cases(out)
        except Exception as e:  # a peer that cannot run here is reported, not fatal
            out[cases.__name__] = {"skipped": f"{type(e).__name__}: {e}"}
            print(f"{cases.__name__} failed: {type(e).__name__}: {e}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
