#!/usr/bin/env bash
# Requests per second of `bulwark serve` on loopback, measured by wrk in a second process:
# GET /api/observability/health and the Prometheus GET /metrics.
#   bash scripts/bench-http.sh                # 10 s per endpoint, 2 threads, 32 connections
#   DURATION=5s CONNECTIONS=64 bash scripts/bench-http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18080}

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk (Debian package)" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi

cargo build --release -p bulwark-server --bin bulwark

data=$(mktemp -d)
target/release/bulwark serve --listen "127.0.0.1:${PORT}" --data-dir "$data" --log warn &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

http() { # METHOD PATH -> status line of the answer
    exec 3<>"/dev/tcp/127.0.0.1/${PORT}" || return 1
    printf '%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
    head -n1 <&3
    exec 3>&-
}

for _ in $(seq 1 200); do
    http GET /api/observability/health 2>/dev/null | grep -q " 200" && break
    sleep 0.05
done
# Give the scrape realistic content: one demo workflow run fills limiter, breaker, step,
# checkpoint and request series.
http POST /api/workflows/bench-warmup/execute >/dev/null

echo "bulwark serve on 127.0.0.1:${PORT}; wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}; $(nproc) cores"
for path in /api/observability/health /metrics; do
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:${PORT}${path}")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    printf '%-28s %10s requests/s   p50 %-9s p99 %-9s %s\n' "GET ${path}" "$rps" "$p50" "$p99" "$errors"
done
