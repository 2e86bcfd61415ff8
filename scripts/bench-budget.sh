#!/usr/bin/env bash
# Budget reserve + settle (benches/budget.rs: local and Redis) and LiteLLM's router pre-call
# check for the same limits (benches/litellm_budget.py), in one run. Installs LiteLLM into
# ${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv-litellm on first use.
# Usage: bash scripts/bench-budget.sh [criterion args, default: short settings]
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${BULWARK_CACHE:-$HOME/.cache/bulwark}"
VENV="$CACHE/venv-litellm"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import litellm' 2>/dev/null; then
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "litellm==${LITELLM_VERSION:-1.110.2}" redis
fi
REDIS_URL="${BULWARK_REDIS_URL:-redis://127.0.0.1:6379}"
ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then
    ARGS=(--warm-up-time 1 --measurement-time 3)
fi
cargo bench -p bulwark --features redis --bench budget -- "${ARGS[@]}"
"$VENV/bin/python" crates/bulwark/benches/litellm_budget.py --redis "$REDIS_URL" 2>/dev/null
