# Sourced by scripts/test.sh: `run_browser_tests` runs the dashboard's browser tests
# (crates/bulwark-server/tests/browser, node --test) in headless Chromium against a real
# `bulwark serve`, and saves the screenshots to docs/images/.
# Installs the Debian packages chromium and chromium-driver when missing, and playwright-core
# from npm into ${BULWARK_CACHE:-$HOME/.cache/bulwark}/playwright (the Debian Chromium is the
# browser; Playwright downloads none). Outside CI a missing piece skips with a message; with
# CI=true it fails the run.

browser_missing() {
  echo "browser tests: $1" >&2
  if [ "${CI:-}" = "true" ]; then
    return 1
  fi
  echo "browser tests: skipped (CI=true makes this a failure)" >&2
  return 2
}

ensure_browser() {
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "browser tests: installing the Debian packages chromium and chromium-driver" >&2
    { apt-get -o DPkg::Lock::Timeout=900 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends chromium chromium-driver; } >&2 ||
      echo "browser tests: apt-get install failed" >&2
  fi
  command -v chromium >/dev/null 2>&1 || { browser_missing "no chromium"; return; }
  command -v node >/dev/null 2>&1 || { browser_missing "no node"; return; }
  PLAYWRIGHT_DIR="${BULWARK_CACHE:-$HOME/.cache/bulwark}/playwright"
  if [ ! -d "$PLAYWRIGHT_DIR/node_modules/playwright-core" ]; then
    mkdir -p "$PLAYWRIGHT_DIR"
    [ -f "$PLAYWRIGHT_DIR/package.json" ] || echo '{"private":true}' >"$PLAYWRIGHT_DIR/package.json"
    (cd "$PLAYWRIGHT_DIR" && npm install --no-audit --no-fund --silent playwright-core@1.65) >&2 ||
      { browser_missing "npm install playwright-core failed"; return; }
  fi
  export PLAYWRIGHT_DIR
  CHROMIUM="$(command -v chromium)"
  export CHROMIUM
}

run_browser_tests() {
  local status=0
  ensure_browser || status=$?
  [ "$status" -eq 2 ] && return 0
  [ "$status" -ne 0 ] && return "$status"
  local target_dir="${CARGO_TARGET_DIR:-target}"
  cargo build -p bulwark-server --all-features
  BULWARK_BIN="$(cd "$target_dir/debug" && pwd)/bulwark" \
    BULWARK_SCREENSHOTS="$(pwd)/docs/images" \
    node --test crates/bulwark-server/tests/browser/
}
