#!/usr/bin/env bash
# The whole test suite: starts the services the tests need when they are not running,
# then runs every test (nextest) and every doc test.
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

cargo nextest run --workspace --all-features --no-fail-fast "$@"
source scripts/schemathesis.sh && run_schemathesis
cargo test --workspace --all-features --doc
