# Sourced by the test scripts (or run directly): the OpenAPI contract test. Starts the built
# `bulwark` binary on a free loopback port with a temporary data folder and a token, runs
# schemathesis against its /api/openapi.json (every phase, a fixed seed, bounded in time)
# and stops the server. Passes only with zero failures (5xx included: `not_a_server_error`
# is among the default checks).
#
#   ensure_schemathesis   installs schemathesis into the per-machine cache venv
#                         ${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv when it is missing there
#                         (never into the clone); reused when present.
#   run_schemathesis      the run; returns non-zero on any failure. Outside CI a missing
#                         schemathesis only warns; in CI (CI=true) it fails the run.
#
# Tunables: BULWARK_SCHEMATHESIS_SEED (default 12), BULWARK_SCHEMATHESIS_EXAMPLES (default
# 60 per operation), BULWARK_SCHEMATHESIS_MAX_TIME (default 180 s), BULWARK_BIN (default
# target/debug/bulwark, built when missing).

bulwark_venv() {
  echo "${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv"
}

ensure_schemathesis() {
  local venv
  venv="$(bulwark_venv)"
  if [ -x "$venv/bin/schemathesis" ]; then
    return 0
  fi
  echo "schemathesis: installing into $venv" >&2
  mkdir -p "$(dirname "$venv")"
  if { [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"; } &&
    timeout "${BULWARK_SCHEMATHESIS_INSTALL_TIMEOUT:-600}" \
      "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2; then
    return 0
  fi
  echo "schemathesis: install failed" >&2
  return 1
}

run_schemathesis() {
  if ! ensure_schemathesis; then
    if [ "${CI:-}" = "true" ]; then
      echo "schemathesis: unavailable in CI; failing" >&2
      return 1
    fi
    echo "schemathesis: unavailable; the contract test did not run" >&2
    return 0
  fi
  local bin="${BULWARK_BIN:-target/debug/bulwark}"
  if [ ! -x "$bin" ]; then
    cargo build --quiet -p bulwark-server --bin bulwark
  fi
  local dir port token pid status
  dir="$(mktemp -d -t bulwark-schemathesis.XXXXXX)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  token="schemathesis-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  printf '%s\n' "$token" >"$dir/token"
  # Generous limits, so that the fuzzer meets the contract rather than the rate limiter.
  BULWARK_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
    --token-file "$dir/token" --workflow-rate-limit 1000000 >"$dir/server.log" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 "http://127.0.0.1:$port/api/observability/health" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "schemathesis: the server did not start; its log:" >&2
      tail -n 20 "$dir/server.log" >&2 || true
      kill "$pid" 2>/dev/null || true
      rm -rf "$dir"
      return 1
    fi
    sleep 0.2
  done
  status=0
  timeout $((${BULWARK_SCHEMATHESIS_MAX_TIME:-180} + 60)) \
    "$(bulwark_venv)/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --phases=examples,coverage,fuzzing,stateful \
    --seed "${BULWARK_SCHEMATHESIS_SEED:-12}" \
    --max-examples "${BULWARK_SCHEMATHESIS_EXAMPLES:-60}" \
    --max-time "${BULWARK_SCHEMATHESIS_MAX_TIME:-180}" \
    --generation-deterministic \
    --no-color --workers 1 --report-dir "$dir/report" || status=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "schemathesis: failures above; server log kept in $dir/server.log" >&2
  else
    rm -rf "$dir"
  fi
  return "$status"
}

# Run directly: `scripts/schemathesis.sh`.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  run_schemathesis
fi
