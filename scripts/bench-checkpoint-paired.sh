#!/usr/bin/env bash
# Paired rounds on the 1 MB state: Bulwark's default save/load (criterion, filtered) right
# before LangGraph's SqliteSaver put/get_tuple, ROUNDS times, so that both sides see the same
# machine load. Run the full bench once first (it writes the state files).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    cargo bench -p bulwark --bench checkpoint -- --warm-up-time 1 --measurement-time 3 \
        'checkpoint/1m/(floor_write_fsync_rename|save/zstd1|load/zstd1)$' 2>/dev/null \
        | grep -E '^checkpoint/|time:'
    bash scripts/bench-langgraph.sh target/checkpoint-bench/state-1m.json
done
