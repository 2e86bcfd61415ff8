#!/usr/bin/env bash
# Times LangGraph's SqliteSaver (put / get_tuple) on the same chat-history states the criterion
# checkpoint bench writes to target/checkpoint-bench/. Creates its own venv on first use.
# Usage: bash scripts/bench-langgraph.sh [STATE.json ...]   (after `cargo bench -p bulwark --bench checkpoint`)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/langgraph-venv
VERSION="${LANGGRAPH_SQLITE_VERSION:-3.1.2}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "langgraph-checkpoint-sqlite==$VERSION"
fi
STATES=("$@")
if [ ${#STATES[@]} -eq 0 ]; then
    STATES=(target/checkpoint-bench/state-100k.json target/checkpoint-bench/state-1m.json)
fi
for state in "${STATES[@]}"; do
    if [ ! -f "$state" ]; then
        echo "missing $state: run cargo bench -p bulwark --bench checkpoint first" >&2
        exit 1
    fi
done
"$VENV/bin/python" crates/bulwark/benches/langgraph_saver.py "${STATES[@]}"
