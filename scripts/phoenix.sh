# Sourced by the test scripts: a real OTLP receiver (Arize Phoenix) on 127.0.0.1 for the
# telemetry end-to-end test.
#
#   ensure_phoenix   installs arize-phoenix into the per-machine cache venv
#                    ${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv when missing (never into the
#                    clone; an existing ./.venv/bin/phoenix is reused instead), starts
#                    `phoenix serve` offline on 127.0.0.1:$PHOENIX_PORT (default 6006) with a
#                    fresh temporary working dir, waits for /healthz and exports
#                    BULWARK_PHOENIX_URL. An already answering Phoenix is reused.
#   stop_phoenix     stops the Phoenix this script started (by its pid) and removes its dir.
#
# Install and start are bounded (BULWARK_PHOENIX_INSTALL_TIMEOUT, default 600 s;
# BULWARK_PHOENIX_START_TIMEOUT, default 120 s). When they fail outside CI the variable stays
# unset and the test skips with a message; in CI (CI=true) the test fails instead.

BULWARK_PHOENIX_PID=""
BULWARK_PHOENIX_DIR=""

phoenix_healthy() {
  curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz" >/dev/null 2>&1
}

ensure_phoenix() {
  local port="${PHOENIX_PORT:-6006}"
  local root
  root="$(pwd)"
  if phoenix_healthy "$port"; then
    export BULWARK_PHOENIX_URL="http://127.0.0.1:$port"
    echo "phoenix: reusing the one answering at $BULWARK_PHOENIX_URL" >&2
    return 0
  fi
  local venv="${BULWARK_CACHE:-$HOME/.cache/bulwark}/venv"
  local phoenix="$venv/bin/phoenix"
  if [ ! -x "$phoenix" ] && [ -x "$root/.venv/bin/phoenix" ]; then
    phoenix="$root/.venv/bin/phoenix"
  fi
  if [ ! -x "$phoenix" ]; then
    echo "phoenix: installing arize-phoenix into $venv (takes a minute or two)" >&2
    mkdir -p "$(dirname "$venv")"
    if ! { [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"; } ||
      ! timeout "${BULWARK_PHOENIX_INSTALL_TIMEOUT:-600}" \
        "$venv/bin/pip" install --quiet --disable-pip-version-check arize-phoenix >&2; then
      echo "phoenix: install failed; the Phoenix end-to-end test will not find a receiver" >&2
      return 0
    fi
  fi
  BULWARK_PHOENIX_DIR="$(mktemp -d -t bulwark-phoenix.XXXXXX)"
  PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$port" PHOENIX_WORKING_DIR="$BULWARK_PHOENIX_DIR" \
    PHOENIX_GRPC_PORT="${PHOENIX_GRPC_PORT:-4317}" \
    PHOENIX_TELEMETRY_ENABLED=false PHOENIX_ALLOW_EXTERNAL_RESOURCES=false \
    "$phoenix" serve >"$BULWARK_PHOENIX_DIR/phoenix.log" 2>&1 &
  BULWARK_PHOENIX_PID=$!
  local deadline=$((SECONDS + ${BULWARK_PHOENIX_START_TIMEOUT:-120}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if phoenix_healthy "$port"; then
      export BULWARK_PHOENIX_URL="http://127.0.0.1:$port"
      echo "phoenix: serving at $BULWARK_PHOENIX_URL (pid $BULWARK_PHOENIX_PID)" >&2
      return 0
    fi
    if ! kill -0 "$BULWARK_PHOENIX_PID" 2>/dev/null; then break; fi
    sleep 1
  done
  echo "phoenix: did not become healthy; last log lines:" >&2
  tail -n 20 "$BULWARK_PHOENIX_DIR/phoenix.log" >&2 || true
  stop_phoenix
  return 0
}

stop_phoenix() {
  if [ -n "$BULWARK_PHOENIX_PID" ]; then
    kill "$BULWARK_PHOENIX_PID" 2>/dev/null || true
    wait "$BULWARK_PHOENIX_PID" 2>/dev/null || true
    BULWARK_PHOENIX_PID=""
  fi
  if [ -n "$BULWARK_PHOENIX_DIR" ]; then
    rm -rf "$BULWARK_PHOENIX_DIR"
    BULWARK_PHOENIX_DIR=""
  fi
}

# Run directly (`bash scripts/phoenix.sh`): start Phoenix in the foreground until Ctrl-C.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  trap stop_phoenix EXIT
  ensure_phoenix
  echo "BULWARK_PHOENIX_URL=${BULWARK_PHOENIX_URL:-}"
  [ -n "$BULWARK_PHOENIX_PID" ] && wait "$BULWARK_PHOENIX_PID"
fi
