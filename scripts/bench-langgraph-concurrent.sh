#!/usr/bin/env bash
# 16 threads of LangGraph `put` for 10 s on SqliteSaver and PostgresSaver (local PostgreSQL),
# on the 100 KB state the checkpoint bench writes; called by `cargo bench --bench
# checkpoint_concurrent` after its own run. Makes its venv on first use.
# Usage: bash scripts/bench-langgraph-concurrent.sh STATE.json SECONDS THREADS [POSTGRES_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/langgraph-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import langgraph.checkpoint.postgres" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "langgraph-checkpoint-sqlite==${LANGGRAPH_SQLITE_VERSION:-3.1.2}" \
        "langgraph-checkpoint-postgres==${LANGGRAPH_POSTGRES_VERSION:-3.2.0}" "psycopg[binary,pool]==3.3.9"
fi
"$VENV/bin/python" crates/bulwark/benches/langgraph_concurrent.py "$@"
