#!/usr/bin/env bash
# Times LangGraph (a StateGraph of trivial nodes with its SQLite and PostgreSQL savers) and,
# when it installs, DBOS Transact's step overhead on the same PostgreSQL, for the durable
# bench (crates/bulwark/benches/durable.rs calls this in the same run). Makes its venv on first
# use in ${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv-bench and reuses it.
# Usage: bash scripts/bench-durable.sh OUT.json   (BULWARK_POSTGRES_URL as for the Rust bench)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${BULWARK_CACHE:-$HOME/.cache/bulwark}"
VENV="$CACHE/venv-bench"
mkdir -p "$CACHE"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import langgraph, langgraph.checkpoint.sqlite, langgraph.checkpoint.postgres, psycopg" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet langgraph langgraph-checkpoint-sqlite langgraph-checkpoint-postgres "psycopg[binary]"
fi
# DBOS is optional: the bench says so when it is missing.
if ! "$VENV/bin/python" -c "import dbos" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet dbos || echo "dbos did not install; its case is skipped" >&2
fi
exec "$VENV/bin/python" crates/bulwark/benches/durable_peers.py "$@"
