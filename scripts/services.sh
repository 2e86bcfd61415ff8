# Sourced by the test scripts: starts PostgreSQL and Redis when they are not answering.
# In CI (CI=true) a service that cannot be started fails the run.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "error: $name is not answering on 127.0.0.1:$port" >&2
  return 1
}

ensure_services() {
  if ! port_open 6379 && command -v redis-server >/dev/null 2>&1; then
    echo "starting redis-server" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  fi
  if ! port_open 5432 && [ -d /etc/postgresql ]; then
    echo "starting postgresql" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  fi
  if [ "${CI:-}" = "true" ]; then
    wait_port 6379 redis
    wait_port 5432 postgresql
  fi
}
