# Sourced by the test scripts: `ensure_promtool` exports BULWARK_PROMTOOL, the path of
# Prometheus's `promtool`, installing the Debian package `prometheus` when it is missing.
# When it cannot be installed outside CI the variable stays unset and the test skips with a
# message; in CI (CI=true) the test fails instead.

ensure_promtool() {
  if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "promtool: installing the Debian package prometheus" >&2
    # The service the package would start is not needed: only the promtool binary is.
    { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 \
      apt-get install -y -qq --no-install-recommends prometheus; } >&2 ||
      echo "promtool: install failed" >&2
  fi
  if command -v promtool >/dev/null 2>&1; then
    BULWARK_PROMTOOL="$(command -v promtool)"
    export BULWARK_PROMTOOL
  fi
}
