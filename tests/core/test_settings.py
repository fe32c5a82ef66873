"""Embedded defaults versus PostgreSQL/Redis/RabbitMQ, and the production guard rails."""

import json
import os

import pytest
from django.conf import settings
from django.db import connection

from tests.helpers import embedded_env, run_python

# Each child's whole run (django.setup and what the test asks of it), bounded well above what a loaded host takes, as
# tests/core/test_health.py's children are: run_python's 60 s default is less than a child took on a 2-core CI host
# running two test processes. What a test asserts is what the child printed or how it exited, never how fast.
CHILD_SECONDS = 300


def _python(code: str, env: dict[str, str]):
    return run_python(code, env, timeout=CHILD_SECONDS)


DUMP_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"],
    "options": {k: v for k, v in db.get("OPTIONS", {}).items()},
    "conn_max_age": db.get("CONN_MAX_AGE"),
    "cache": settings.CACHES["default"]["BACKEND"],
    "channels": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "broker": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG,
}, default=str))
"""


def _settings_for(env):
    result = _python(DUMP_SETTINGS, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_defaults_need_no_server(tmp_path):
    dumped = _settings_for(embedded_env(tmp_path))
    assert dumped["engine"] == "apps.core.sqlite_private"  # Django's SQLite backend, its new file private
    assert dumped["options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in dumped["options"]["init_command"]
    assert dumped["cache"].endswith("FileBasedCache")
    assert dumped["channels"] == "channels.layers.InMemoryChannelLayer"
    assert dumped["broker"] == "filesystem://localhost//"
    assert dumped["debug"] is True
    assert (tmp_path / "broker" / "queue").is_dir()


def test_service_urls_select_postgres_pool_redis_and_rabbitmq(tmp_path):
    dumped = _settings_for(
        embedded_env(
            tmp_path,
            DATABASE_URL="postgres://app@db.example:5432/cp",
            REDIS_URL="redis://cache.example:6379/0",
            CELERY_BROKER_URL="amqp://guest:guest@mq.example:5672//",
            DB_POOL_MIN_SIZE="10",
            DB_POOL_MAX_SIZE="50",
        )
    )
    assert dumped["engine"] == "apps.core.postgresql"  # Django's, its pool checking a connection before handing it out
    assert dumped["options"]["pool"] == {"min_size": 10, "max_size": 50, "timeout": 10.0}
    assert dumped["conn_max_age"] == 0
    assert dumped["cache"] == "django_redis.cache.RedisCache"
    assert dumped["channels"] == "channels_redis.core.RedisChannelLayer"
    assert dumped["broker"].startswith("amqp://")


def test_postgres_connections_give_up_on_a_database_gone_without_a_reset(tmp_path):
    """Without socket limits a request waited on a dead socket for the kernel's two hours after a failover that
    moved the database's address; the URL's own values win over the defaults."""
    dumped = _settings_for(embedded_env(tmp_path, DATABASE_URL="postgres://app@db.example:5432/cp"))
    assert {k: dumped["options"].get(k) for k in ("connect_timeout", "keepalives", "keepalives_idle")} == {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
    }
    named = _settings_for(embedded_env(tmp_path, DATABASE_URL="postgres://app@db.example:5432/cp?connect_timeout=20"))
    assert int(named["options"]["connect_timeout"]) == 20


def test_this_processes_connections_carry_the_socket_limits():
    assert connection.get_connection_params()["keepalives_idle"] == 10


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ({}, "SECRET_KEY, ALLOWED_HOSTS"),
        ({"SECRET_KEY": "x" * 50}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": "cp.example.org"}, "SECRET_KEY"),
    ],
)
def test_debug_off_refuses_to_start_without_secrets(tmp_path, extra, missing):
    env = embedded_env(tmp_path, DEBUG="false", **extra)
    for name in ("SECRET_KEY", "ALLOWED_HOSTS"):
        if name not in extra:
            env.pop(name, None)
    result = _python("import django; django.setup()", env)
    assert result.returncode != 0
    assert f"required: {missing}." in result.stderr


def test_debug_off_with_secrets_hardens_cookies(tmp_path):
    env = embedded_env(tmp_path, DEBUG="false", SECRET_KEY="s" * 50, ALLOWED_HOSTS="cp.example.org")
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0)"
    )
    result = _python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


@pytest.mark.django_db
def test_this_suite_runs_on_postgres_through_the_native_pool():
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.fail("The suite must run on PostgreSQL: use `make test`.")
    assert connection.vendor == "postgresql"
    connection.ensure_connection()
    assert connection.pool is not None
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"


@pytest.mark.parametrize(
    "secret_key",
    [
        "django-insecure-embedded-development-key-only",
        "replace-with-50-random-characters",
        "django-insecure-" + "x" * 50,
    ],
)
def test_debug_off_refuses_a_published_secret_key(tmp_path, secret_key):
    env = embedded_env(tmp_path, DEBUG="false", SECRET_KEY=secret_key, ALLOWED_HOSTS="cp.example.org")
    result = _python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "SECRET_KEY is a published placeholder" in result.stderr


def test_debug_off_refuses_the_example_secrets_placeholders(tmp_path):
    """deploy/k8s/secret.example.yaml copied without filling it in: its other keys are published too."""
    env = embedded_env(tmp_path, DEBUG="false", SECRET_KEY="s" * 50, ALLOWED_HOSTS="cp.example.org",
                       CACHE_KEY_SECRET="replace-with-64-random-hex-characters",
                       AUDIT_CHAIN_KEY="replace-with-64-random-hex-characters",
                       METRICS_TOKEN="replace-with-a-long-random-token")  # fmt: skip
    result = _python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "CACHE_KEY_SECRET, AUDIT_CHAIN_KEY, METRICS_TOKEN still hold the example's placeholder" in result.stderr
    filled = dict.fromkeys(("CACHE_KEY_SECRET", "AUDIT_CHAIN_KEY", "METRICS_TOKEN"), "f" * 64)
    env = embedded_env(tmp_path, DEBUG="false", SECRET_KEY="s" * 50, ALLOWED_HOSTS="cp.example.org", **filled)
    assert _python("import django; django.setup()", env).returncode == 0


def test_static_files_collect_outside_var_dir_when_told(tmp_path):
    """The image collects into /app/staticfiles: VAR_DIR is a volume in its pods, which would hide them."""
    env = embedded_env(tmp_path, STATIC_ROOT=str(tmp_path / "collected"))
    result = _python(
        "import django; django.setup(); from django.conf import settings; print(settings.STATIC_ROOT)", env
    )
    assert result.stdout.strip() == str(tmp_path / "collected")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DB_POOL_MAX_SIZE", "fifty", "DB_POOL_MAX_SIZE must be a whole number"),
        ("CACHE_SINGLE_FLIGHT_WAIT_SECONDS", "soon", "CACHE_SINGLE_FLIGHT_WAIT_SECONDS must be a number"),
        ("DATABASE_URL", "db.example:5432", "DATABASE_URL is not a database URL"),
        ("DATABASE_URL", "mongodb://u:hunter2@db.example/cp", "DATABASE_URL is not a database URL"),
        # Started, then a system check's traceback ("Please supply the NAME value") named no variable.
        ("DATABASE_URL", "postgres://u:hunter2@", "DATABASE_URL names no database"),
        ("DATABASE_URL", "postgres://u:hunter2@db.example:5432/", "DATABASE_URL names no database"),
        ("CACHE_ENCRYPTION_KEYS", "not-a-key", "CACHE_ENCRYPTION_KEYS must be 32 random bytes"),
        ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE must be an IANA time zone name"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be plain or json"),
        ("READYZ_REQUIRED", "database,databse", "READYZ_REQUIRED names no /readyz check: databse"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        # Started, with a system the API refuses when a client names it.
        ("MRN_SYSTEM", "notauri", "MRN_SYSTEM must be an absolute URI"),
        # Started, then every patient created without a system was a 400 on a field the client never sent.
        ("MRN_SYSTEM", "http://hospital.example.org/" + "a" * 300, "MRN_SYSTEM must be an absolute URI of at most 255"),
    ],
)
def test_a_bad_value_names_its_variable(tmp_path, variable, value, message):
    result = _python("import django; django.setup()", embedded_env(tmp_path, **{variable: value}))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured") and message in last_line
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # Each of these started, and failed later: at the first query (psycopg_pool refuses the pool), on
        # every sign-in, or silently (a typo read as false).
        ("DB_POOL_MIN_SIZE", "-5", "DB_POOL_MIN_SIZE must be at least 0; it is -5"),
        ("DB_POOL_MIN_SIZE", "60", "DB_POOL_MIN_SIZE (60) must be at most DB_POOL_MAX_SIZE (50)"),
        ("DB_POOL_TIMEOUT", "-1", "DB_POOL_TIMEOUT must be more than 0"),
        ("DB_POOL_TIMEOUT", "2.5s", "DB_POOL_TIMEOUT must be a number"),
        ("DEBUG", "fasle", "DEBUG must be true or false"),
        ("SESSION_COOKIE_AGE", "-1", "SESSION_COOKIE_AGE must be at least 1"),
        ("LIVE_PORT", "99999", "LIVE_PORT must be at least 1 and at most 65535"),
        ("RESOURCE_CPU_PCT", "500", "RESOURCE_CPU_PCT must be at least 1 and at most 100"),
        ("METRICS_ALLOWED_IPS", "127.0.0.1,prometheus", "METRICS_ALLOWED_IPS must list addresses or CIDR networks"),
        ("REDIS_URL", "cache.example:6379", "REDIS_URL must be a Redis URL"),
        ("EMAIL_URL", "smtp.example.org", "EMAIL_URL is not an e-mail URL"),
        # Without its scheme a CSRF origin never matched: every admin form behind the ingress was refused.
        (
            "CSRF_TRUSTED_ORIGINS",
            "controlplane.example.org",
            "CSRF_TRUSTED_ORIGINS must start with http:// or https://",
        ),
        ("LIVE_WEBSOCKET_URL", "cp.example.org/ws/metrics/", "LIVE_WEBSOCKET_URL must start with ws:// or wss://"),
        ("SCALING_PROMETHEUS_URL", "prometheus:9090", "SCALING_PROMETHEUS_URL must start with http:// or https://"),
        ("CELERY_BROKER_URL", "rabbitmq:5672", "CELERY_BROKER_URL must be a broker URL"),
        # A port that is no number was django-environ's ValueError, naming neither variable.
        ("DATABASE_URL", "postgres://app:secret@db:54x2/cp", "DATABASE_URL is not a database URL"),
        ("DATABASE_REPLICA_URL", "postgres://app:secret@db:54x2/cp", "DATABASE_REPLICA_URL is not a database URL"),
        # Given PostgreSQL's pool options, a SQLite replica failed every read routed to it.
        ("DATABASE_REPLICA_URL", "sqlite:////tmp/replica.db", "DATABASE_REPLICA_URL must be a PostgreSQL URL"),
        # 0.4 ms rounded to a statement timeout of 0 ms (none); past 2^31-1 ms PostgreSQL refused it at each run.
        ("OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS", "0.0004", "OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS must be at least 0.001"),
        ("OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS", "3000000", "OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS must be at least 0.001"),
        # Past timedelta's range every checker pass raised OverflowError.
        ("OPTIMIZER_RUN_DEADLINE_SECONDS", "10" + "0" * 14, "OPTIMIZER_RUN_DEADLINE_SECONDS must be at least 1 and"),
        ("SCALING_APPLY_STUCK_SECONDS", "10" + "0" * 14, "SCALING_APPLY_STUCK_SECONDS must be at least 1 and at"),
        ("OPTIMIZER_CACHE_WINDOW_MINUTES", "10" + "0" * 14, "OPTIMIZER_CACHE_WINDOW_MINUTES must be at least 1 and"),
        ("DB_POOL_TIMEOUT", "10" + "0" * 14, "DB_POOL_TIMEOUT must be "),
        ("CACHE_SINGLE_FLIGHT_WAIT_SECONDS", "10" + "0" * 14, "CACHE_SINGLE_FLIGHT_WAIT_SECONDS must be "),
        ("CACHE_REDIS_BREAKER_SECONDS", "10" + "0" * 14, "CACHE_REDIS_BREAKER_SECONDS must be "),
        ("METRICS_FLUSH_SECONDS", "10" + "0" * 14, "METRICS_FLUSH_SECONDS must be "),
        ("METRICS_EXIT_FLUSH_SECONDS", "10" + "0" * 14, "METRICS_EXIT_FLUSH_SECONDS must be "),
        ("ALERT_WEBHOOK_TIMEOUT_SECONDS", "10" + "0" * 14, "ALERT_WEBHOOK_TIMEOUT_SECONDS must be "),
        ("CELERY_BROKER_CONNECTION_TIMEOUT", "10" + "0" * 14, "CELERY_BROKER_CONNECTION_TIMEOUT must be "),
        ("AUDIT_GROUP_COMMIT_GATHER_MS", "10" + "0" * 14, "AUDIT_GROUP_COMMIT_GATHER_MS must be "),
        ("OPTIMIZER_SERVICE_WINDOW_MINUTES", "10" + "0" * 14, "OPTIMIZER_SERVICE_WINDOW_MINUTES must be "),
        ("SCALING_APPLY_TIMEOUT_SECONDS", "10" + "0" * 14, "SCALING_APPLY_TIMEOUT_SECONDS must be "),
        ("SCALING_HISTORY_DAYS", "10" + "0" * 14, "SCALING_HISTORY_DAYS must be "),
        ("WORKER_HEARTBEAT_INTERVAL_SECONDS", "10" + "0" * 14, "WORKER_HEARTBEAT_INTERVAL_SECONDS must be "),
        ("WORKER_HEARTBEAT_MAX_AGE_SECONDS", "10" + "0" * 14, "WORKER_HEARTBEAT_MAX_AGE_SECONDS must be "),
        ("API_TOKEN_FAILURE_BUDGET_SECONDS", "10" + "0" * 14, "API_TOKEN_FAILURE_BUDGET_SECONDS must be "),
        ("SESSION_COOKIE_AGE", "10" + "0" * 14, "SESSION_COOKIE_AGE must be "),
        ("AXES_COOLOFF_HOURS", "10" + "0" * 14, "AXES_COOLOFF_HOURS must be "),
    ],
)
def test_a_value_out_of_its_range_stops_start_up_naming_its_variable(tmp_path, variable, value, message):
    env = embedded_env(tmp_path, **{"DB_POOL_MIN_SIZE": "10", "DB_POOL_MAX_SIZE": "50", variable: value})
    result = _python("import django; django.setup()", env)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured") and message in last_line


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # Each started: /readyz said "degraded" with a KeyError or ValueError, every enqueue or Redis use failed,
        # and the worker and beat stopped on a traceback that named no variable.
        ("CELERY_BROKER_URL", "ampq://guest:guest@rabbitmq:5672//", "CELERY_BROKER_URL names no broker transport"),
        ("CELERY_BROKER_URL", "amqp://guest:guest@rabbitmq:56x2//", "CELERY_BROKER_URL has a port that is no number"),
        ("CELERY_BROKER_URL", "amqp://mq1:5672//;amqp://mq2:x//", "CELERY_BROKER_URL has a port that is no number"),
        ("REDIS_URL", "redis://redis:63790x/0", "REDIS_URL has a port that is no number"),
        # redis-py ignores a database that is no number: db 0, perhaps another deployment's, was used silently.
        ("REDIS_URL", "redis://redis:6379/cache", "REDIS_URL names a database that is no number"),
        # Set, results are stored: each enqueue loaded the backend, and a typo failed every one (a 500) and the worker.
        ("CELERY_RESULT_BACKEND", "rdis://guest:guest@redis:6379/1", "CELERY_RESULT_BACKEND names no result backend"),
    ],
)
def test_a_service_url_no_client_can_use_stops_start_up_naming_its_variable(tmp_path, variable, value, message):
    result = _python("import django; django.setup()", embedded_env(tmp_path, **{variable: value}))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured") and message in last_line
    assert "guest:guest" not in result.stderr  # a URL carries a password: never echoed


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CELERY_BROKER_URL", "amqp://guest:guest@rabbitmq:5672//"),
        ("CELERY_BROKER_URL", "pyamqp://guest@mq1//;pyamqp://guest@mq2:5673//"),
        ("CELERY_BROKER_URL", "redis://redis:6379/1"),
        ("CELERY_BROKER_URL", "sqla+postgresql://app@db/cp"),
        ("REDIS_URL", "rediss://:secret@redis:6380/2"),
        ("REDIS_URL", "redis://redis"),
        ("REDIS_URL", "unix:///var/run/redis.sock?db=3"),
        ("CELERY_RESULT_BACKEND", "redis://redis:6379/1"),
        ("CELERY_RESULT_BACKEND", "rpc://"),
    ],
)
def test_usable_service_urls_start(tmp_path, variable, value):
    result = _python("import django; django.setup()", embedded_env(tmp_path, **{variable: value}))
    assert result.returncode == 0, result.stderr


def test_a_number_in_exponent_form_is_read_as_written(tmp_path):
    """django-environ dropped every character that is not a digit, so 1e3 read 13."""
    code = "import django; django.setup(); from django.conf import settings as s; print(s.DB_POOL_TIMEOUT)"
    result = _python(code, embedded_env(tmp_path, DB_POOL_TIMEOUT="1e3"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "1000.0"


def test_the_mrn_system_is_read_in_the_spelling_patients_are_stored_under(tmp_path):
    """The loader filters and writes settings.MRN_SYSTEM as it is; patients' systems are normalised on save."""
    code = "import django; django.setup(); from django.conf import settings as s; print(s.MRN_SYSTEM)"
    result = _python(code, embedded_env(tmp_path, MRN_SYSTEM="HTTP://Hospital.Example.org/MRN/"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "http://hospital.example.org/MRN"


def test_django_environs_warnings_do_not_echo_a_database_urls_password(tmp_path):
    env = embedded_env(tmp_path, DATABASE_URL=f"sqlite://u:hunter2@/{tmp_path}/x.db", PYTHONWARNINGS="always")
    result = _python("import django; django.setup()", env)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize("hosts", [",", " , "])
def test_debug_off_with_allowed_hosts_naming_no_host_refuses_to_start(tmp_path, hosts):
    """ALLOWED_HOSTS="," passed the check and answered every request with a 400."""
    env = embedded_env(tmp_path, DEBUG="false", SECRET_KEY="s" * 50, ALLOWED_HOSTS=hosts)
    result = _python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "required: ALLOWED_HOSTS." in result.stderr


def test_allowed_hosts_entries_are_stripped(tmp_path):
    env = embedded_env(tmp_path, DEBUG="false", SECRET_KEY="s" * 50, ALLOWED_HOSTS="cp.example.org, api.example.org")
    code = "import django; django.setup(); from django.conf import settings as s; print(s.ALLOWED_HOSTS)"
    result = _python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "['cp.example.org', 'api.example.org']"


def test_list_entries_written_with_spaces_after_the_commas_are_read_stripped(tmp_path):
    """READYZ_REQUIRED="database, cache" stopped start-up on a check named " cache", a key after ", " in
    CACHE_ENCRYPTION_KEYS was refused as not base64, and " localhost" in BENCHMARK_TOKEN_HOSTS matched no host."""
    key = "A" * 43 + "="
    env = embedded_env(
        tmp_path,
        READYZ_REQUIRED="database, cache",
        CACHE_ENCRYPTION_KEYS=f"{key}, {key}",
        BENCHMARK_TOKEN_HOSTS="127.0.0.1, localhost",
    )
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.READYZ_REQUIRED, len(s.CACHE_ENCRYPTION_KEYS), s.BENCHMARK_TOKEN_HOSTS)"
    )
    result = _python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['database', 'cache'] 2 ['127.0.0.1', 'localhost']"


def test_hosts_to_serve_without_debug_said_stop_start_up(tmp_path):
    """ALLOWED_HOSTS set and DEBUG forgotten ran a deployment with DEBUG's default, on: tracebacks with their
    local variables (patient rows) on every error page. Said outright, DEBUG=true still starts."""
    env = embedded_env(tmp_path, ALLOWED_HOSTS="controlplane.example.org")
    env.pop("DEBUG", None)
    result = _python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS names controlplane.example.org but DEBUG is not set" in result.stderr
    assert _python("import django; django.setup()", {**env, "DEBUG": "true"}).returncode == 0
    local = embedded_env(tmp_path, ALLOWED_HOSTS="127.0.0.1,localhost")
    local.pop("DEBUG", None)
    assert _python("import django; django.setup()", local).returncode == 0
