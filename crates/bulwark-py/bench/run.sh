#!/usr/bin/env bash
# Runs crates/bulwark-py/bench/bench.py: a release wheel of the bindings (maturin --release,
# into target/wheels) and the peers (limits, pybreaker, opentelemetry-sdk, langgraph with its
# SQLite saver) in the venv ${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv-pybench, created when
# missing. Arguments go to bench.py (--calls N, --checkpoints N).
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv="${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv-pybench"
target_dir="${CARGO_TARGET_DIR:-target}"
if ! "$venv/bin/python" -c 'import limits, pybreaker, opentelemetry.sdk, langgraph.checkpoint.sqlite' 2>/dev/null; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" limits pybreaker \
    opentelemetry-sdk langgraph langgraph-checkpoint-sqlite
fi
[ -x "$venv/bin/maturin" ] || "$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2"
rm -rf "$target_dir/wheels"
"$venv/bin/maturin" build --quiet --release --manifest-path crates/bulwark-py/Cargo.toml --out "$target_dir/wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$target_dir"/wheels/bulwark-*.whl
exec "$venv/bin/python" crates/bulwark-py/bench/bench.py "$@"
