#!/usr/bin/env bash
# Paired rounds on the 1 MB state: Bulwark's default save/load (criterion, filtered), each
# round followed in the same run by LangGraph's SqliteSaver put/get_tuple on the same state
# (the bench calls scripts/bench-langgraph.sh), ROUNDS times, so that both sides see the same
# machine load. Prints each round's comparison table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round"
    cargo bench -p bulwark --bench checkpoint -- --warm-up-time 1 --measurement-time 3 \
        'checkpoint/1m/(floor_write_fsync_rename|save/zstd1|load/zstd1)$' 2>/dev/null \
        | sed -n '/beside LangGraph/,$p'
done
