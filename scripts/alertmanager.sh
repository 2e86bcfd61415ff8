# Sourced by the test scripts: Prometheus Alertmanager and Prometheus from Debian's packages
# (`prometheus-alertmanager`, `prometheus`) for the alerting end-to-end tests.
#
#   ensure_alertmanager   installs the packages when a binary is missing (never starts the
#                         services the packages ship), then exports BULWARK_ALERTMANAGER_BIN,
#                         BULWARK_AMTOOL_BIN, BULWARK_PROMETHEUS_BIN and BULWARK_PROMTOOL.
#
# Each test starts its own Alertmanager / Prometheus on free 127.0.0.1 ports with a config it
# generates in a temporary folder (the config names the test's own webhook receiver, whose port
# is only known inside the test), and kills it when the test ends, so a test can also stop and
# restart Alertmanager while an alert fires. Packages the Debian postinst starts as services
# are stopped again, so nothing listens on the packages' fixed ports.
# When the install fails outside CI the variables stay unset and the tests skip with a
# message; in CI (CI=true) the tests fail instead.

alertmanager_find() {
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
    if [ -x "/usr/bin/$name" ]; then
      echo "/usr/bin/$name"
      return 0
    fi
  done
  return 1
}

ensure_alertmanager() {
  local missing=()
  alertmanager_find prometheus-alertmanager alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  alertmanager_find prometheus >/dev/null || missing+=(prometheus)
  if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "alertmanager: installing the Debian packages ${missing[*]}" >&2
    # policy-rc.d keeps the packages' postinst from starting their services.
    local policy=/usr/sbin/policy-rc.d created_policy=""
    if [ ! -e "$policy" ] && [ -w /usr/sbin ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    { timeout 300 apt-get -o DPkg::Lock::Timeout=900 update -qq &&
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=900 \
        install -y -qq --no-install-recommends "${missing[@]}"; } >&2 ||
      echo "alertmanager: install failed" >&2
    [ -n "$created_policy" ] && rm -f "$policy"
  fi
  local bin
  if bin="$(alertmanager_find prometheus-alertmanager alertmanager)"; then
    export BULWARK_ALERTMANAGER_BIN="$bin"
  fi
  if bin="$(alertmanager_find amtool)"; then
    export BULWARK_AMTOOL_BIN="$bin"
  fi
  if bin="$(alertmanager_find prometheus)"; then
    export BULWARK_PROMETHEUS_BIN="$bin"
  fi
  if bin="$(alertmanager_find promtool)"; then
    export BULWARK_PROMTOOL="$bin"
  fi
}
