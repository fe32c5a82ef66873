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

# The suite's own vhosts: on "/", where the README's RabbitMQ-backed `make run` puts its queues, a
# developer's worker ran the tests' tasks against their own database and the tests' purge dropped their
# queued work. Without rabbitmqctl here (a server in a container) "/" it is, said so, and the suite runs as
# one pytest (two would purge each other's queues).
TEST_VHOST=controlplane_test
own_vhost() {
  command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl -q add_vhost "$1" >/dev/null \
    && rabbitmqctl -q set_permissions -p "$1" guest '.*' '.*' '.*' >/dev/null
}
if [ -z "${TEST_CELERY_BROKER_URL:-}" ]; then
  if own_vhost "$TEST_VHOST"; then
    TEST_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/$TEST_VHOST"
    if [ -z "${TEST_CELERY_BROKER_URL_2:-}" ] && own_vhost "${TEST_VHOST}_2"; then
      TEST_CELERY_BROKER_URL_2="amqp://guest:guest@127.0.0.1:5672/${TEST_VHOST}_2"
    fi
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

# The whole suite runs as two pytest processes at once, each on services of its own (a database, a Redis
# db, a RabbitMQ vhost, a runtime folder): most of a test's time is spent waiting on a worker, a server or a
# browser, so two share this machine's two cores (one process took 45 of CI's 60 minutes). The second takes
# SECOND_HALF; the first everything else, so a new test folder is never left out. What shares one service by
# name stays together: the e2e stack (its database and Redis db 13), the benchmarks (Redis db 14) and the
# tests that run make in the checkout. Otherwise (ONE_PROCESS says why) one pytest runs, as before.
# Balanced on the test time each folder took (junit XML of a two-process run): 1,911 s a process.
SECOND_HALF=(
  tests/e2e tests/benchmarks tests/test_bench_scripts.py tests/dashboard
  tests/clinical tests/security tests/inference tests/resources tests/deploy
)

# Small pools: one pytest process, plus the worker processes some tests start.
export DB_POOL_MIN_SIZE=2 DB_POOL_MAX_SIZE=10
# A failed attempt's traceback is printed with its RERUN line: a flake that passed on its rerun left no trace.
PYTEST_OPTIONS=(-raR --reruns 2 --reruns-delay 1 --rerun-show-tracebacks --durations=30)
DATABASE="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/controlplane}"
REDIS="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"

# The second process's database: the first's name with _2 (none when the URL names no database). Its Redis db:
# 12 beside the default 15, else TEST_REDIS_URL_2 (a db derived from a given one may be someone else's).
SECOND_DATABASE=""
if [[ "$DATABASE" =~ ^([^?]*://[^/?]*/)([^/?]+)(\?.*)?$ ]]; then
  SECOND_DATABASE="${BASH_REMATCH[1]}${BASH_REMATCH[2]}_2${BASH_REMATCH[3]}"
fi
SECOND_REDIS="${TEST_REDIS_URL_2:-}"
[ -n "${TEST_REDIS_URL:-}" ] || SECOND_REDIS="${SECOND_REDIS:-redis://127.0.0.1:6379/12}"

ONE_PROCESS=""
if [ $# -gt 0 ]; then ONE_PROCESS="options were given ($*)"
elif [ "${TEST_SHARDS:-2}" = 1 ]; then ONE_PROCESS="TEST_SHARDS=1"
elif [ -z "${TEST_CELERY_BROKER_URL_2:-}" ]; then
  ONE_PROCESS="no second RabbitMQ vhost (TEST_CELERY_BROKER_URL without TEST_CELERY_BROKER_URL_2, or rabbitmqctl failed)"
elif [ -z "$SECOND_REDIS" ]; then ONE_PROCESS="TEST_REDIS_URL without TEST_REDIS_URL_2"
elif [ -z "$SECOND_DATABASE" ]; then ONE_PROCESS="TEST_DATABASE_URL names no database to add _2 to"
fi

FIRST_VAR_DIR="$(mktemp -d)"
SECOND_VAR_DIR="$(mktemp -d)"
SECOND_LOG="$SECOND_VAR_DIR/pytest.log"

# Stopped: each pytest gets one SIGINT (a Ctrl-C: its fixtures stop the workers and servers it started), and both
# are waited for before their folders go. A Ctrl-C reaches each itself (the terminal signals the whole process
# group, as `timeout -s INT` does); a TERM or HUP (a CI cancel, a kill), or an INT to this script alone (`kill -INT`),
# comes here alone and is passed on as a Ctrl-C. Never a second, whatever follows: it would cut a pytest's teardown
# short (a second Ctrl-C at the terminal still reaches each). WITNESS tells an INT to the group from one to this
# script alone: it waits in this group, and an INT ends it (a signal to a group is queued to each of its processes
# before any handles it). Without /proc to look in, an INT is passed on to none, and a later TERM or HUP still is.
FIRST_PID="" SECOND_PID="" STOPPED="" DELIVERED="" WITNESS=""
witness_signalled() {
  local seen
  seen=$(awk '/^State:/ && $2 ~ /^[ZX]$/ { found = 1 } /^(SigPnd|ShdPnd):/ && $2 !~ /^0+$/ { found = 1 }
    END { print found + 0 }' "/proc/$WITNESS/status" 2>/dev/null) || return 0 # gone: ended and reaped
  [ "$seen" = 1 ]
}
say() { echo "$*" >&2 || true; } # a closed terminal (HUP) ends nothing here
on_signal() {
  STOPPED=${STOPPED:-$1}
  if [ -n "$DELIVERED" ]; then
    say "== SIG$1: each pytest has had its SIGINT (on SIG$DELIVERED); still waiting for them"
  elif [ "$1" = INT ] && ! [ -d "/proc/$$" ]; then
    say "== SIGINT: passed on to no pytest, with no /proc to tell a Ctrl-C by (a TERM or HUP would be)"
  elif [ "$1" = INT ] && witness_signalled; then
    DELIVERED=INT
    say "== SIGINT to the process group (Ctrl-C): each pytest has it"
  else
    DELIVERED=$1
    kill -INT $FIRST_PID $SECOND_PID 2>/dev/null || true
    say "== SIG$1: passed on to each pytest as a SIGINT (Ctrl-C)"
  fi
}
(
  trap - INT
  exec tail --pid=$$ -f /dev/null # ends with this script, a SIGKILLed one too
) </dev/null >/dev/null 2>&1 &
WITNESS=$!
trap 'kill "$WITNESS" 2>/dev/null || true; rm -rf "$FIRST_VAR_DIR" "$SECOND_VAR_DIR"' EXIT
for signal in INT TERM HUP; do trap "on_signal $signal" "$signal"; done

# A pytest in the background (so a signal is handled while it runs), told to take SIGINT: a job in the
# background ignores it otherwise, and pytest would never see Ctrl-C. It keeps this script's stdin (--pdb), not
# a background job's /dev/null. Its arguments: DATABASE_URL, REDIS_URL, CELERY_BROKER_URL and VAR_DIR, then pytest's.
start_pytest() {
  local database=$1 redis=$2 broker=$3 var_dir=$4
  shift 4
  (
    trap - INT
    DATABASE_URL="$database" REDIS_URL="$redis" CELERY_BROKER_URL="$broker" VAR_DIR="$var_dir" \
      exec $VENV/bin/pytest "${PYTEST_OPTIONS[@]}" "$@"
  ) <&0 &
}

# A pytest's exit status, in RC. A signal ends `wait` early (over 128) while the pytest runs on: wait again.
wait_for() {
  RC=0
  wait "$1" || RC=$?
  while [ "$RC" -gt 128 ] && kill -0 "$1" 2>/dev/null; do RC=0; wait "$1" || RC=$?; done
}

if [ -n "$ONE_PROCESS" ]; then
  echo "note: the suite runs as one pytest process: $ONE_PROCESS" >&2
  echo "== pytest (PostgreSQL, Redis, RabbitMQ)"
  start_pytest "$DATABASE" "$REDIS" "$TEST_CELERY_BROKER_URL" "$FIRST_VAR_DIR" "$@"
  FIRST_PID=$!
  wait_for "$FIRST_PID"
  exit "$RC"
fi

echo "== pytest (PostgreSQL, Redis, RabbitMQ), two processes: ${SECOND_HALF[*]} in the second (its output follows the first's)"
start_pytest "$SECOND_DATABASE" "$SECOND_REDIS" "$TEST_CELERY_BROKER_URL_2" "$SECOND_VAR_DIR" \
  -o cache_dir="$SECOND_VAR_DIR/.pytest_cache" "${SECOND_HALF[@]}" > "$SECOND_LOG" 2>&1
SECOND_PID=$!
IGNORED=()
for path in "${SECOND_HALF[@]}"; do IGNORED+=("--ignore=$path"); done
start_pytest "$DATABASE" "$REDIS" "$TEST_CELERY_BROKER_URL" "$FIRST_VAR_DIR" "${IGNORED[@]}"
FIRST_PID=$!
wait_for "$FIRST_PID"
FIRST_RC=$RC
wait_for "$SECOND_PID"
SECOND_RC=$RC
echo "== pytest, the second process (${SECOND_HALF[*]})"
cat "$SECOND_LOG"
echo "== pytest: first process exit $FIRST_RC, second $SECOND_RC${STOPPED:+, stopped by SIG$STOPPED}"
[ -z "$STOPPED" ] && [ "$FIRST_RC" = 0 ] && [ "$SECOND_RC" = 0 ]
