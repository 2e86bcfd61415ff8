#!/usr/bin/env bash
# The whole test suite: starts the services the tests need when they are not running,
# then runs every test (nextest), every doc test and the Python package's pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/services.sh
ensure_services

# Telemetry: promtool checks the Prometheus text, Phoenix receives OTLP (stopped on exit).
source scripts/promtool.sh
source scripts/phoenix.sh
trap stop_phoenix EXIT
ensure_promtool
ensure_phoenix

# Alerting: Alertmanager and Prometheus from Debian's packages; each test starts its own.
source scripts/alertmanager.sh
ensure_alertmanager

# The server as a user builds it (default features), kept apart from the all-features build
# below, for the "as shipped" contract test (tests/shipped_binary.rs).
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build -p bulwark-server
mkdir -p "$target_dir/shipped"
cp "$target_dir/debug/bulwark" "$target_dir/shipped/bulwark"
BULWARK_SHIPPED_BIN="$(cd "$target_dir/shipped" && pwd)/bulwark"
export BULWARK_SHIPPED_BIN

cargo nextest run --workspace --all-features --no-fail-fast "$@"
source scripts/schemathesis.sh && run_schemathesis
cargo test --workspace --all-features --doc
# The Python package: its wheel (maturin, into the project's venv) and its pytest suite.
bash scripts/python.sh
# The dashboard in headless Chromium (installed when missing); writes docs/images/.
source scripts/browser.sh && run_browser_tests
