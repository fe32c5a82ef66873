#!/usr/bin/env bash
# The full test pass: lint, the dashboard's unit tests, then pytest on PostgreSQL, Redis and
# RabbitMQ on localhost. A service that is installed but stopped is started; a missing one is a
# failure (never a skip), so a green run always means the real services were exercised.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
port_open() { (echo > "/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

wait_for_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 1; done
  echo "FAIL: $name is not answering on 127.0.0.1:$port" >&2
  exit 1
}

ensure_service() {
  local name=$1 port=$2 start_cmd=$3 probe=$4
  port_open "$port" && return 0
  if command -v "$probe" >/dev/null 2>&1; then
    echo "Starting $name ..."
    bash -c "$start_cmd" || true
    wait_for_port "$name" "$port"
  else
    echo "FAIL: $name is needed on 127.0.0.1:$port and is not installed (CI=${CI:-false})." >&2
    exit 1
  fi
}

ensure_service PostgreSQL 5432 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' pg_ctlcluster
ensure_service Redis 6379 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /tmp --logfile /tmp/redis-ci.log' redis-server
ensure_service RabbitMQ 5672 'rabbitmq-server -detached' rabbitmq-server

# The suite's own vhost: on "/", where the README's RabbitMQ-backed `make run` puts its queues, a
# developer's worker ran the tests' tasks against their own database and the tests' purge dropped their
# queued work. Without rabbitmqctl here (a server in a container) "/" it is, said so.
TEST_VHOST=controlplane_test
if [ -z "${TEST_CELERY_BROKER_URL:-}" ]; then
  if command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl -q add_vhost "$TEST_VHOST" >/dev/null \
      && rabbitmqctl -q set_permissions -p "$TEST_VHOST" guest '.*' '.*' '.*' >/dev/null; then
    TEST_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/$TEST_VHOST"
  else
    echo "note: no RabbitMQ vhost $TEST_VHOST (rabbitmqctl failed or is missing): the tests use \"/\"" >&2
    TEST_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"
  fi
fi

# The browser tests drive Debian's Chromium (never a browser a test tool downloads).
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing Debian's chromium and chromium-driver"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  # In an if: under set -e a failure inside an && list went on to a 20-minute run the browser tests then failed.
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
    echo "FAIL: Debian's chromium is needed by the browser tests and could not be installed (apt-get)." >&2
    exit 1
  fi
fi

echo "== ruff"
$VENV/bin/ruff check .
$VENV/bin/ruff format --check .

echo "== dashboard unit tests (vitest)"
(cd frontend && npm test --silent)

echo "== pytest (PostgreSQL, Redis, RabbitMQ)"
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/controlplane}"
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
export CELERY_BROKER_URL="$TEST_CELERY_BROKER_URL"
# Small pools: one pytest process, plus the worker processes some tests start.
export DB_POOL_MIN_SIZE=2 DB_POOL_MAX_SIZE=10
VAR_DIR="$(mktemp -d)"
export VAR_DIR
trap 'rm -rf "$VAR_DIR"' EXIT
# A failure is run again, twice at most: a test that passes only on a rerun is listed as RERUN in the
# summary (-raR), a flake to fix rather than a pass to ignore; one that fails three times fails the run.
$VENV/bin/pytest -raR --reruns 2 --reruns-delay 1 --durations=30 "$@"
