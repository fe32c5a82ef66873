"""Settings for the control plane: one module, driven by environment variables.

With no environment variables set, everything runs embedded on one machine: SQLite (WAL), a
file-based cache shared by every local process, the in-memory channel layer and a Celery broker
on the local filesystem. Setting DATABASE_URL, REDIS_URL and CELERY_BROKER_URL moves each piece to
PostgreSQL, Redis and RabbitMQ/Redis. Nothing here exists only in production.
"""

import base64
import hashlib
import ipaddress
import math
import os
import warnings
import zoneinfo
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from apps.benchmarks.token_hosts import EXAMPLE as TOKEN_HOSTS_EXAMPLE  # plain Python, no Django: safe at settings time
from apps.benchmarks.token_hosts import token_host_problem  # plain Python, no Django: safe at settings time
from apps.caching.bounds import MAX_SINGLE_FLIGHT_WAIT_SECONDS  # plain Python, no Django: safe at settings time
from apps.clinical.identifiers import (
    MAX_SYSTEM_LENGTH,
    URI_PATTERN,
    normalize_system,
)  # plain Python, no Django: safe at settings time
from apps.core.directories import settings_directory  # plain Python, no Django: safe at settings time
from apps.core.static_files import hashed_asset, static_cache_headers  # plain Python, no Django: safe at settings time

BASE_DIR = Path(__file__).resolve().parent.parent


class CheckedEnv(environ.Env):
    """django-environ, except that a value that does not parse stops start-up with a message naming the
    variable and what it takes, not a ValueError from deep inside the parser, nor a guess: django-environ reads
    a word it does not know as false (DEBUG=ture) and drops what is not a digit from a number (1e3 read 13,
    nan read as nothing). `int` and `float` also take the bounds a value must keep: a negative pool size or
    timeout otherwise started fine and failed the first request that used it."""

    EXPECTED = {
        int: "a whole number, e.g. 10",
        float: "a number, e.g. 2.5",
        bool: "true or false (or 1/0, yes/no, on/off)",
    }
    # The documented words only: django-environ also read ok/y as true, and n or an empty value (a blank
    # templated SESSION_COOKIE_SECURE=) as false. Empty is refused, as for a number.
    BOOLEAN_STRINGS = frozenset({"true", "false", "1", "0", "yes", "no", "on", "off"})

    @classmethod
    def parse_value(cls, value, cast):
        if isinstance(value, str) and cast is bool and value.strip().lower() not in cls.BOOLEAN_STRINGS:
            raise ValueError(value)
        if isinstance(value, str) and cast is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        return super().parse_value(value, cast)

    def get_value(self, var: str, cast=None, default=environ.Env.NOTSET, parse_default: bool = False):
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError):
            expected = self.EXPECTED.get(cast, f"a valid {getattr(cast, '__name__', 'value')}")
            raise ImproperlyConfigured(f"The environment variable {var} must be {expected}.") from None

    def int(self, var: str, default=environ.Env.NOTSET, *, minimum=None, maximum=None):
        return _within(var, super().int(var, default=default), minimum=minimum, maximum=maximum)

    def float(self, var: str, default=environ.Env.NOTSET, *, minimum=None, maximum=None, above=None):
        return _within(var, super().float(var, default=default), minimum=minimum, maximum=maximum, above=above)

    def db(self, var: str = environ.Env.DEFAULT_DATABASE_ENV, default=environ.Env.NOTSET, engine=None) -> dict:
        try:
            # django-environ's warnings ("Engine not recognized from url", "SQLite URL contains host component")
            # echo the URL, and a password with it, in every process's output.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                config = super().db(var, default=default, engine=engine)
        except ValueError:  # a port that is no number: django-environ's ValueError named no variable
            config = {}
        if config.get("ENGINE") not in self.DB_SCHEMES.values():  # not echoed: a database URL carries a password
            raise ImproperlyConfigured(
                f"The environment variable {var} is not a database URL; "
                "expected e.g. postgres://user:password@host:5432/dbname."
            )
        if not config.get("NAME"):  # else a system check's traceback after start-up, naming no variable
            raise ImproperlyConfigured(
                f"The environment variable {var} names no database; expected e.g. postgres://user:password@host:5432/dbname."
            )
        return config

    def names(self, var: str, default=environ.Env.NOTSET) -> list:
        """A comma-separated list, each entry stripped and empty ones dropped ("a, b" is a and b, not " b")."""
        return [entry.strip() for entry in self.list(var, default=default) if entry.strip()]

    def email_url(self, var: str = environ.Env.DEFAULT_EMAIL_ENV, default=environ.Env.NOTSET, backend=None) -> dict:
        try:
            return super().email_url(var, default=default, backend=backend)
        except (ImproperlyConfigured, ValueError):  # not echoed: the URL carries the SMTP password
            raise ImproperlyConfigured(
                f"The environment variable {var} is not an e-mail URL; "
                "expected e.g. smtp+tls://user:password@smtp.example.org:587 or consolemail://."
            ) from None


def _within(var: str, value, *, minimum=None, maximum=None, above=None):
    """`value` when it keeps its bounds (None, an unset variable's default, always does)."""
    if value is None:
        return value
    bounds = [
        (bound, text, kept)
        for bound, text, kept in (
            (above, f"more than {above}", above is None or value > above),
            (minimum, f"at least {minimum}", minimum is None or value >= minimum),
            (maximum, f"at most {maximum}", maximum is None or value <= maximum),
        )
        if bound is not None
    ]
    if not all(kept for _, _, kept in bounds):
        wanted = " and ".join(text for _, text, _ in bounds)
        raise ImproperlyConfigured(f"The environment variable {var} must be {wanted}; it is {value}.")
    return value


env = CheckedEnv()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

# Runtime state of the embedded mode (SQLite file, cache, broker folders, reports) lives here.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
settings_directory(VAR_DIR, "VAR_DIR", private=True)

DEBUG = env.bool("DEBUG", default=True)

# Published values: in this repository (the embedded default, deploy/k8s/secret.example.yaml) or Django's
# startproject marker. Anyone could sign sessions and derive the cache and audit keys with them.
DEVELOPMENT_SECRET_KEY = "django-insecure-embedded-development-key-only"  # noqa: S105
PLACEHOLDER_SECRET_KEYS = {DEVELOPMENT_SECRET_KEY, "replace-with-50-random-characters"}


def _require_scheme(var: str, values: list[str], schemes: tuple[str, ...], example: str) -> None:
    """Each of `values` starts with one of `schemes`: Django compares a CSRF origin with its scheme, so one without
    never matched (every admin form refused)."""
    for value in values:
        if not value.startswith(schemes):
            raise ImproperlyConfigured(
                f"The environment variable {var} must start with {' or '.join(schemes)} (e.g. {example}); "
                f"{value!r} does not."
            )


LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
    ALLOWED_HOSTS = env.names("ALLOWED_HOSTS", default=LOCAL_HOSTS)
    _served = [host for host in ALLOWED_HOSTS if host not in LOCAL_HOSTS]
    if _served and "DEBUG" not in os.environ:
        # A deployment that set its hosts and forgot DEBUG ran with DEBUG's default, on: every error page a
        # traceback with its local variables (patient rows, request bodies) and the settings, to anyone.
        raise ImproperlyConfigured(
            f"ALLOWED_HOSTS names {', '.join(_served)} but DEBUG is not set, and it is on by default: set "
            "DEBUG=false to serve it, or DEBUG=true explicitly for a development server."
        )
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    # ALLOWED_HOSTS="," or " " named no host: every request was a 400 (DisallowedHost).
    ALLOWED_HOSTS = env.names("ALLOWED_HOSTS", default=[])
    _missing = [
        name for name, value in (("SECRET_KEY", SECRET_KEY.strip()), ("ALLOWED_HOSTS", ALLOWED_HOSTS)) if not value
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"DEBUG is off, so these environment variables are required: {', '.join(_missing)}. "
            "Set them (for example SECRET_KEY=<50+ random characters>, "
            "ALLOWED_HOSTS=controlplane.example.org) or set DEBUG=true for a local run."
        )
    if SECRET_KEY in PLACEHOLDER_SECRET_KEYS or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "DEBUG is off and SECRET_KEY is a published placeholder: set it to 50+ random characters, e.g. "
            'the output of `python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
        )

CSRF_TRUSTED_ORIGINS = env.names("CSRF_TRUSTED_ORIGINS", default=[])
_require_scheme(
    "CSRF_TRUSTED_ORIGINS", CSRF_TRUSTED_ORIGINS, ("http://", "https://"), "https://controlplane.example.org"
)

# CORS (django-cors-headers) for clinicians' browser apps served from another origin (an EHR-embedded app): only the
# token APIs, only the origins named here. Unset, the middleware is not installed: no CORS header, as before.
from apps.core.cors import origin_problem  # noqa: E402 - plain Python, no Django: safe at settings time

CORS_ALLOWED_ORIGINS = env.names("CORS_ALLOWED_ORIGINS", default=[])
for _origin in CORS_ALLOWED_ORIGINS:
    if _problem := origin_problem(_origin):
        raise ImproperlyConfigured(f"The environment variable CORS_ALLOWED_ORIGINS must list exact origins: {_problem}")
CORS_URLS_REGEX = r"^/(api/v1/|fhir(/|$))"  # not admin, the dashboard, the docs, /metrics or the probes
CORS_ALLOW_CREDENTIALS = False  # the apps send a bearer token; no other origin may read with a staff session's cookie
CORS_ALLOW_METHODS = ["DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT"]
# What the APIs read (negotiation, FHIR's conditional reads and lenient search, creates' retries, the audit's purpose).
CORS_ALLOW_HEADERS = [
    "accept", "authorization", "content-type", "prefer", "if-none-match", "if-modified-since", "idempotency-key",
    "x-purpose-of-use", "x-request-id",
]  # fmt: skip
# What the APIs answer that an app acts on: its rate limit, a versioned read, a create's place and replay, the
# request id to quote, why a token was refused.
CORS_EXPOSE_HEADERS = [
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After", "ETag", "Last-Modified", "Location",
    "Idempotent-Replayed", "X-Request-ID", "WWW-Authenticate",
]  # fmt: skip
# How long a browser may reuse a preflight's answer (Chromium keeps at most 7200 s); 0 sends no Access-Control-Max-Age.
CORS_PREFLIGHT_MAX_AGE = env.int("CORS_PREFLIGHT_MAX_AGE", default=7200, minimum=0, maximum=86400)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "axes",
    "apps.core",
    "apps.accounts",
    "apps.services",
    "apps.metrics",
    "apps.audit",
    "apps.clinical",
    "apps.optimizer",
    "apps.caching",
    "apps.ratelimits",
    "apps.resources",
    "apps.scaling",
    "apps.benchmarks",
    "apps.inference",
]

MIDDLEWARE = [
    "apps.core.client_address.ClientAddressMiddleware",  # first: everything below reads REMOTE_ADDR
    "apps.core.middleware.RequestIdMiddleware",
    *(["apps.metrics.middleware.RequestTimingMiddleware"] if env.bool("METRICS_REQUEST_TIMING", default=True) else []),
    "django.middleware.security.SecurityMiddleware",
    "apps.core.csp.CSPMiddleware",  # django-csp's, its default headers built once
    # With the other header middleware, above anything that answers on its own (the NUL refusal, static files, a
    # DisallowedHost 400): below them those answers went without it, to browsers that read no CSP frame-ancestors.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Under the header middleware (a preflight carries theirs), above everything that answers on its own or checks
    # a token, the rate limit or the audit trail: a preflight carries no token and is answered here, and each
    # refusal (400, 401, 403, 429, an OperationOutcome) carries the CORS headers the app needs to read it.
    *(["corsheaders.middleware.CorsMiddleware"] if CORS_ALLOWED_ORIGINS else []),
    "apps.core.errors.RejectNulMiddleware",  # after the security headers, which its 400 carries too
    "apps.accounts.middleware.TokenInUrlMiddleware",  # any path: a token in a URL is a 401, never served
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "apps.core.errors.APICommonMiddleware",  # Django's, without slash redirects for API writes
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.core.middleware.SessionIdleTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.ratelimits.throttling.RateLimitHeadersMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a lockout into its response
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# PostgreSQL goes through Django's native psycopg pool (one pool per process, CONN_MAX_AGE=0).
# SQLite uses WAL and IMMEDIATE transactions so the web process and the worker can both write
# without "database is locked" losing work.
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", default=10, minimum=0)
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=50, minimum=1)
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=10.0, above=0, maximum=3600)
DB_SERVER_SIDE_BINDING = env.bool("DB_SERVER_SIDE_BINDING", default=True)
DB_PREPARE_THRESHOLD = env.int("DB_PREPARE_THRESHOLD", default=5, minimum=0)
if DB_POOL_MIN_SIZE > DB_POOL_MAX_SIZE:  # psycopg_pool refuses it at the first query, not at start-up
    raise ImproperlyConfigured(
        f"The environment variable DB_POOL_MIN_SIZE ({DB_POOL_MIN_SIZE}) must be at most DB_POOL_MAX_SIZE "
        f"({DB_POOL_MAX_SIZE})."
    )


def _postgres_options(config: dict) -> dict:
    # Django's backend, whose pool never hands out a connection the server ended while idle (apps/core/postgresql).
    config["ENGINE"] = "apps.core.postgresql"
    config.setdefault("OPTIONS", {})
    config["OPTIONS"]["pool"] = {
        "min_size": DB_POOL_MIN_SIZE,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": DB_POOL_TIMEOUT,
    }
    # Server-side binding plus a prepare threshold: a statement a pooled connection has run
    # DB_PREPARE_THRESHOLD times is prepared, so PostgreSQL parses and plans the data plane's hot
    # queries once per connection, not once per request. Django turns preparation off unless asked
    # (for PgBouncer in transaction mode: set DB_PREPARE_THRESHOLD=0 there).
    config["OPTIONS"]["server_side_binding"] = DB_SERVER_SIDE_BINDING
    config["OPTIONS"]["prepare_threshold"] = DB_PREPARE_THRESHOLD or None
    # libpq's socket limits, unless DATABASE_URL's query names them: a database gone without a reset (a
    # failover moving its address, a dropped route) otherwise left a request waiting on a dead socket for the
    # kernel's two hours, holding its thread and its pool connection. Keepalives find a dead peer about 25 s
    # into a wait (a long query's server still answers them). No tcp_user_timeout: Linux applies it to a zero
    # window too, so a COPY into a server busy for that long (the synthetic load) would be cut; data sent to a
    # dead peer is given up after the kernel's retransmissions (about 15 minutes).
    for option, value in {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }.items():
        config["OPTIONS"].setdefault(option, value)
    config["CONN_MAX_AGE"] = 0
    return config


if env.str("DATABASE_URL", default=""):
    _default_db = env.db("DATABASE_URL")
    if _default_db["ENGINE"] == "django.db.backends.postgresql":
        _postgres_options(_default_db)
else:
    _default_db = {
        # Django's SQLite backend, creating a missing database file private (0600) whatever the umask.
        "ENGINE": "apps.core.sqlite_private",
        "NAME": VAR_DIR / "controlplane.sqlite3",
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
DATABASES = {"default": _default_db}

# A read replica: reads go there (controlplane.db_router), writes and migrations to default.
if env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = env.db("DATABASE_REPLICA_URL")
    if DATABASES["replica"]["ENGINE"] != "django.db.backends.postgresql":  # it was given PostgreSQL's pool options
        raise ImproperlyConfigured(
            "The environment variable DATABASE_REPLICA_URL must be a PostgreSQL URL (a read replica of DATABASE_URL)."
        )
    _postgres_options(DATABASES["replica"])
    # Under test the replica is the primary itself, so the router is exercised without a second server.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["controlplane.db_router.PrimaryReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# SQLite has no covering indexes: it keeps the key columns and drops INCLUDE, which is what we want.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Cache ----------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):  # not echoed: it may hold a password
    raise ImproperlyConfigured(
        "The environment variable REDIS_URL must be a Redis URL, e.g. redis://redis:6379/0 (rediss:// for TLS)."
    )
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cp",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
else:
    # A file cache, not LocMem: the api, live and worker processes must see the same entries
    # (the worker heartbeat, later the policy versions).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "KEY_PREFIX": "cp",
        }
    }

# The multi-level cache (apps/caching). Keys are HMACs with CACHE_KEY_SECRET. Values of encrypted
# namespaces are sealed with AES-256-GCM under the first of CACHE_ENCRYPTION_KEYS (comma separated, each
# 32 random bytes in urlsafe base64, as `base64.urlsafe_b64encode(os.urandom(32))` makes) and opened
# with any of them, so a key is rotated by putting the new one first.
CACHE_KEY_SECRET = env.str("CACHE_KEY_SECRET", default=hashlib.sha256(f"cache-keys:{SECRET_KEY}".encode()).hexdigest())
CACHE_ENCRYPTION_KEYS = env.names("CACHE_ENCRYPTION_KEYS", default=[]) or [
    base64.urlsafe_b64encode(hashlib.sha256(f"cache-encryption:{SECRET_KEY}".encode()).digest()).decode()
]


def _is_encryption_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key)) == 32
    except ValueError:
        return False


# Checked here: a bad key would otherwise fail every cached request once the cache stack is first built.
if not all(_is_encryption_key(key) for key in CACHE_ENCRYPTION_KEYS):
    raise ImproperlyConfigured(
        "Every key in CACHE_ENCRYPTION_KEYS must be 32 random bytes in urlsafe base64, e.g. the output of "
        '`python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`.'
    )
CACHE_L1_MAX_BYTES = env.int("CACHE_L1_MAX_BYTES", default=64 * 1024 * 1024, minimum=0)
CACHE_SINGLE_FLIGHT_WAIT_SECONDS = env.float(
    "CACHE_SINGLE_FLIGHT_WAIT_SECONDS", default=2.0, minimum=0, maximum=MAX_SINGLE_FLIGHT_WAIT_SECONDS
)
CACHE_REDIS_BREAKER_SECONDS = env.float("CACHE_REDIS_BREAKER_SECONDS", default=3.0, minimum=0, maximum=3600)

# The resource monitor's thresholds, in percent (the brief's: CPU 70, memory 80, disk 90, pool 90); 1-100, as admin
# takes them (below 1 every sample is a breach).
RESOURCE_THRESHOLDS = {
    "cpu": env.float("RESOURCE_CPU_PCT", default=70.0, minimum=1, maximum=100),
    "memory": env.float("RESOURCE_MEMORY_PCT", default=80.0, minimum=1, maximum=100),
    "disk": env.float("RESOURCE_DISK_PCT", default=90.0, minimum=1, maximum=100),
    "pool": env.float("RESOURCE_POOL_PCT", default=90.0, minimum=1, maximum=100),
    "redis_memory": env.float("RESOURCE_REDIS_MEMORY_PCT", default=90.0, minimum=1, maximum=100),
}

# --- Metrics --------------------------------------------------------------------------------------
# Prometheus counters of every process (gunicorn workers, uvicorn, Celery) are kept in files here and
# summed at /metrics; the folder is emptied when the product starts (`make run`, the container).
PROMETHEUS_MULTIPROC_DIR = Path(env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus")))
settings_directory(PROMETHEUS_MULTIPROC_DIR, "PROMETHEUS_MULTIPROC_DIR")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(PROMETHEUS_MULTIPROC_DIR))
# Who may read /metrics: a bearer token (METRICS_TOKEN), else these client addresses.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.names("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
for _entry in METRICS_ALLOWED_IPS:  # a typo was only a warning at the first scrape, and Prometheus read nothing
    try:
        ipaddress.ip_network(_entry, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"The environment variable METRICS_ALLOWED_IPS must list addresses or CIDR networks; {_entry!r} is neither."
        ) from None
# Request timing (apps/metrics/middleware.py): off only to measure its own overhead (bench/metrics.py).
METRICS_REQUEST_TIMING = env.bool("METRICS_REQUEST_TIMING", default=True)
METRICS_FLUSH_SECONDS = env.float("METRICS_FLUSH_SECONDS", default=5.0, above=0, maximum=3600)
# A process's exit waits at most this long for the database to take its last request timings (a hung
# database held gunicorn, uvicorn and Celery exits 11-16 s); what it drops is logged.
METRICS_EXIT_FLUSH_SECONDS = env.float("METRICS_EXIT_FLUSH_SECONDS", default=3.0, above=0, maximum=3600)
# A thread per process also flushes when no request comes after a burst (off in the test process, whose
# tests flush explicitly and must not see another thread write rollups in the middle).
METRICS_BACKGROUND_FLUSH = env.bool("METRICS_BACKGROUND_FLUSH", default=True)
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0, above=0, maximum=3600)
# Alert e-mail: EMAIL_URL such as smtp+tls://user:password@smtp.example.org:587 (console by default).
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST, EMAIL_PORT = _email.get("EMAIL_HOST") or "localhost", _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_USER") or "", _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS, EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_TLS")), bool(_email.get("EMAIL_USE_SSL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="controlplane@localhost")
# SMTP connect/answer timeout: a mail server that never answered held an alert's sender (and a rule's delete) for good.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0, above=0, maximum=3600)

# --- Channels -------------------------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py's asyncio pool refuses (not waits) past its cap, 100 by default: 200 dashboards
            # connecting at once took it over. Redis itself allows 10,000 clients.
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": env.int("CHANNELS_REDIS_MAX_CONNECTIONS", 1000, minimum=1),
                        # Just above channels_redis' 5 s BZPOPMIN (its brpop_timeout): at redis-py 8's default 5 s,
                        # a feed 5 s without a frame for it raised TimeoutError out of receive(). Not far above: a hung
                        # Redis holds every call (a dashboard's connect and leave, each snapshot send) this long.
                        "socket_timeout": 7,
                    }
                ],
                "prefix": "cp:channels",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Where the dashboard opens its websocket. LIVE_WEBSOCKET_URL names it outright; otherwise the page's
# own host, on LIVE_PORT when the live process listens apart (`make run`), else on the page's own
# origin (an ingress routes /ws/ to the live process).
LIVE_WEBSOCKET_URL = env.str("LIVE_WEBSOCKET_URL", default="")
# A browser resolves anything else against the page ("cp.example.org/ws" became https://<page host>/cp.example.org/ws).
_require_scheme(
    "LIVE_WEBSOCKET_URL",
    [LIVE_WEBSOCKET_URL] if LIVE_WEBSOCKET_URL else [],
    ("ws://", "wss://", "http://", "https://", "/"),
    "wss://controlplane.example.org/ws/metrics/",
)
LIVE_PORT = env.int("LIVE_PORT", default=None, minimum=1, maximum=65535)

# --- Celery ---------------------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
# A host named: kombu warns of none on every start otherwise.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
if "://" not in CELERY_BROKER_URL:  # not echoed: it carries a password
    raise ImproperlyConfigured(
        "The environment variable CELERY_BROKER_URL must be a broker URL, e.g. amqp://user:password@rabbitmq:5672//."
    )
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT = "apps.core.broker:Transport"  # kombu's, with whole messages only
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The transport polls its folder; 0.25 s keeps a task's pickup latency well under a second.
        "polling_interval": 0.25,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0, above=0, maximum=3600)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# No result backend unless asked for: our tasks record their outcome in their own rows.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("default", "benchmarks", "inference")
)
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TASK_ROUTES = {
    # The stuck-run checker watches the benchmarks queue's runs: never behind the day-long run it watches.
    "benchmarks.fail_stuck_runs": {"queue": "default"},
    "benchmarks.*": {"queue": "benchmarks"},
    "inference.*": {"queue": "inference"},
    # Minutes of model work (an optimizer's model step) and a forecast's fit go with the model profiling, so that
    # `default`'s short periodic tasks (the heartbeat /readyz reads, alerts, rate-limit adaptation, the resource
    # monitor) never wait behind them: the Procfile's `worker` consumes `default` alone.
    "optimizer.run_step": {"queue": "inference"},
    "optimizer.apply_recommendation": {"queue": "inference"},  # an admin's apply: minutes of CREATE INDEX
    "scaling.forecast": {"queue": "inference"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# django-celery-beat's database scheduler, touching the beat liveness heartbeat after each pass of its loop.
CELERY_BEAT_SCHEDULER = "apps.core.beat_liveness:HeartbeatScheduler"

# --- Clinical data and audit --------------------------------------------------------------------
# The identifier system of the hospital's MRNs (FHIR Identifier.system), in the spelling patients are stored
# under (identifiers.normalize_system): the loader filters and writes it as it is.
MRN_SYSTEM = normalize_system(env.str("MRN_SYSTEM", default="http://hospital.example.org/mrn"))
# What the API refuses as a system a client names: else every patient created without a system was a 400 on it.
if not URI_PATTERN.fullmatch(MRN_SYSTEM) or len(MRN_SYSTEM) > MAX_SYSTEM_LENGTH:
    raise ImproperlyConfigured(
        f"The environment variable MRN_SYSTEM must be an absolute URI of at most {MAX_SYSTEM_LENGTH} characters, "
        f"e.g. http://hospital.example.org/mrn or urn:oid:1.2.3; it is {MRN_SYSTEM[:300]!r}."
    )
# Seals the audit hash chain. A rotation puts the new key in AUDIT_CHAIN_KEY and the replaced ones in
# AUDIT_CHAIN_KEY_FALLBACKS (comma separated, newest first): records sealed with them keep verifying, and once a chain
# has a record sealed with a newer key, one sealed with an older key after it is a finding (apps/audit/services.py).
# Unset, both follow SECRET_KEY and SECRET_KEY_FALLBACKS (Django's: sessions signed with them stay valid).
SECRET_KEY_FALLBACKS = env.names("SECRET_KEY_FALLBACKS", default=[])
AUDIT_CHAIN_KEY = env.str("AUDIT_CHAIN_KEY", default=hashlib.sha256(f"audit-chain:{SECRET_KEY}".encode()).hexdigest())
AUDIT_CHAIN_KEY_FALLBACKS = env.names("AUDIT_CHAIN_KEY_FALLBACKS", default=[]) + (
    [] if "AUDIT_CHAIN_KEY" in os.environ
    else [hashlib.sha256(f"audit-chain:{key}".encode()).hexdigest() for key in SECRET_KEY_FALLBACKS]
)  # fmt: skip
if not AUDIT_CHAIN_KEY.strip() or AUDIT_CHAIN_KEY in AUDIT_CHAIN_KEY_FALLBACKS:
    raise ImproperlyConfigured(
        "AUDIT_CHAIN_KEY must be set to random characters, and not also be one of AUDIT_CHAIN_KEY_FALLBACKS (the "
        "keys it replaced; with AUDIT_CHAIN_KEY unset, the ones derived from SECRET_KEY_FALLBACKS)."
    )
# How long a rotation's rollout may take: records sealed with an older key after a chain's first record sealed with
# a newer one are a finding (OLD KEY) once the chain has gone on this long past it (pods not yet restarted append).
AUDIT_KEY_ROLLOUT_GRACE_MINUTES = env.int("AUDIT_KEY_ROLLOUT_GRACE_MINUTES", default=60, minimum=1, maximum=10080)
if not DEBUG:
    # deploy/k8s/secret.example.yaml's placeholders, copied as they are: published values, like its SECRET_KEY.
    _placeholders = [
        name
        for name, value in (
            ("CACHE_KEY_SECRET", CACHE_KEY_SECRET),
            ("AUDIT_CHAIN_KEY", AUDIT_CHAIN_KEY),
            *(("AUDIT_CHAIN_KEY_FALLBACKS", key) for key in AUDIT_CHAIN_KEY_FALLBACKS),
            ("METRICS_TOKEN", METRICS_TOKEN),
        )
        if value.startswith("replace-with-")
    ]
    if _placeholders:
        raise ImproperlyConfigured(
            f"DEBUG is off and {', '.join(_placeholders)} still hold the example's placeholder: set each to "
            'random characters, e.g. the output of `python -c "import secrets; print(secrets.token_hex(32))"`.'
        )

# Audit records of concurrent requests share one commit (apps/audit/writer.py).
AUDIT_GROUP_COMMIT = env.bool("AUDIT_GROUP_COMMIT", default=True)
# How long a batch's leader may wait for the records of reads still running in its process (0: never).
AUDIT_GROUP_COMMIT_GATHER_MS = env.float("AUDIT_GROUP_COMMIT_GATHER_MS", default=2.0, minimum=0, maximum=1000)

# --- Optimizer ------------------------------------------------------------------------------------
# The cache hit rate an `optimize` run aims for when none is given (the brief's 80%), over this window.
OPTIMIZER_CACHE_HIT_RATE_TARGET = env.float("OPTIMIZER_CACHE_HIT_RATE_TARGET", default=0.80, above=0, maximum=1)
OPTIMIZER_CACHE_WINDOW_MINUTES = env.int("OPTIMIZER_CACHE_WINDOW_MINUTES", default=60, minimum=1, maximum=7 * 24 * 60)
# A run still pending or running after this long lost its worker; the checker marks it failed.
# At most a week: past timedelta's range every checker pass raised OverflowError.
OPTIMIZER_RUN_DEADLINE_SECONDS = env.int(
    "OPTIMIZER_RUN_DEADLINE_SECONDS", default=2 * 3600, minimum=1, maximum=7 * 24 * 3600
)
# A running optimizer step's attempt refreshes its heartbeat this often; 3 beats missed: its worker was lost.
OPTIMIZER_STEP_HEARTBEAT_SECONDS = env.int("OPTIMIZER_STEP_HEARTBEAT_SECONDS", default=15, minimum=1, maximum=600)
# Request rollups of this window decide whether each service meets its response-time target.
OPTIMIZER_SERVICE_WINDOW_MINUTES = env.int(
    "OPTIMIZER_SERVICE_WINDOW_MINUTES", default=60, minimum=1, maximum=7 * 24 * 60
)
OPTIMIZER_SERVICE_MIN_REQUESTS = env.int("OPTIMIZER_SERVICE_MIN_REQUESTS", default=20, minimum=1)
# One execution of a query pattern (EXPLAIN ANALYZE, each timed run) is stopped by the server past this.
# (1 ms at least: less rounds to 0, which turns the timeout off; at most an hour, as every timeout here.)
OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS = env.float(
    "OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS", default=30, minimum=0.001, maximum=3600
)

# --- Scaling --------------------------------------------------------------------------------------
# Where generated manifests are applied: a kubeconfig path, "in-cluster", or empty (export only).
SCALING_KUBECONFIG = env.str("SCALING_KUBECONFIG", default="")
SCALING_KUBE_CONTEXT = env.str("SCALING_KUBE_CONTEXT", default="")
SCALING_APPLY_TIMEOUT_SECONDS = env.float("SCALING_APPLY_TIMEOUT_SECONDS", default=10.0, above=0, maximum=3600)
SCALING_APPLY_MAX_ATTEMPTS = env.int("SCALING_APPLY_MAX_ATTEMPTS", default=6, minimum=1)
SCALING_APPLY_STUCK_SECONDS = env.int("SCALING_APPLY_STUCK_SECONDS", default=600, minimum=1, maximum=7 * 24 * 3600)
# Prometheus for workload history (query_range) and for KEDA's requests-per-pod trigger.
SCALING_PROMETHEUS_URL = env.str("SCALING_PROMETHEUS_URL", default="")
_require_scheme("SCALING_PROMETHEUS_URL", [SCALING_PROMETHEUS_URL] if SCALING_PROMETHEUS_URL else [],
                ("http://", "https://"), "http://prometheus:9090")  # fmt: skip
SCALING_HISTORY_DAYS = env.int("SCALING_HISTORY_DAYS", default=28, minimum=1, maximum=2 * 366)
SCALING_BACKTEST_FOLDS = env.int("SCALING_BACKTEST_FOLDS", default=3, minimum=1)

# --- Benchmarks -----------------------------------------------------------------------------------
# The hosts a benchmark run may send its short-lived token to (this product's API): admins edit a
# service's base URL, and a run's token carries the plan's PHI scopes, so where it may go is set here,
# by whoever deploys, not in admin.
BENCHMARK_TOKEN_HOSTS = env.names("BENCHMARK_TOKEN_HOSTS", default=["127.0.0.1", "localhost", "::1"])
for _entry in BENCHMARK_TOKEN_HOSTS:  # one it cannot read (http://x) matched nothing: every run refused its token
    if _problem := token_host_problem(_entry):
        raise ImproperlyConfigured(
            f"The environment variable BENCHMARK_TOKEN_HOSTS must list hosts, each a name or address with an optional "
            f"port, e.g. {TOKEN_HOSTS_EXAMPLE}; in {_entry[:100]!r} {_problem}."
        )
# The samples of a run held in memory at most (a uniform random share, ~200 bytes each: ~200 MB); its
# counts and percentiles are of every request. A day at 1,000 req/s is 86 million.
BENCHMARK_MAX_SAMPLES = env.int("BENCHMARK_MAX_SAMPLES", default=1_000_000, minimum=1000)

# --- Inference ------------------------------------------------------------------------------------
# Load the enabled model deployments when a gunicorn worker starts (in a thread), so no first call waits
# for its model; /readyz's "inference" check says when they are in memory. Each worker holds its own.
INFERENCE_PRELOAD = env.bool("INFERENCE_PRELOAD", default=False)

# --- Health ---------------------------------------------------------------------------------------
# A failed check in this list makes /readyz answer 503; any other failed check answers 200 with
# status "degraded", so a broker or Redis outage does not take the API out of its load balancer.
READYZ_REQUIRED = env.names("READYZ_REQUIRED", default=["database"])
WORKER_HEARTBEAT_INTERVAL_SECONDS = env.int(
    "WORKER_HEARTBEAT_INTERVAL_SECONDS", default=10, minimum=1, maximum=24 * 3600
)
WORKER_HEARTBEAT_MAX_AGE_SECONDS = env.int("WORKER_HEARTBEAT_MAX_AGE_SECONDS", default=60, minimum=1, maximum=24 * 3600)
if WORKER_HEARTBEAT_MAX_AGE_SECONDS <= WORKER_HEARTBEAT_INTERVAL_SECONDS:  # a live worker would read as down
    raise ImproperlyConfigured(
        "The environment variable WORKER_HEARTBEAT_MAX_AGE_SECONDS must be more than "
        f"WORKER_HEARTBEAT_INTERVAL_SECONDS ({WORKER_HEARTBEAT_INTERVAL_SECONDS})."
    )

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that a 401 carries `WWW-Authenticate: Bearer`.
        "apps.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Views that name a `throttle_scope` are limited by its RateLimitPolicy (apps/ratelimits).
    "DEFAULT_THROTTLE_CLASSES": ["apps.ratelimits.throttling.PolicyRateThrottle"],
    # DRF's own throttles key an anonymous caller by get_ident(), which without NUM_PROXIES is the whole
    # X-Forwarded-For a caller writes (a new quota per forged header); 0: REMOTE_ADDR, which
    # ClientAddressMiddleware has already resolved through TRUSTED_PROXIES.
    "NUM_PROXIES": 0,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's, with the Accept header's q values honoured (`application/fhir+json;q=0` is a refusal).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.core.negotiation.QualityContentNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.api.parsers.JSONParser",  # DRF's; a too deeply nested body is a 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Medical AI performance control plane",
    "DESCRIPTION": "Services, patient-data APIs and performance policies of the control plane.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The anonymous document built once per process, not on every request (0.75 s of CPU each).
    "DEFAULT_GENERATOR_CLASS": "apps.core.api.schema_generator.CachedSchemaGenerator",
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # drf-spectacular's own hook, then the 413 every operation taking a body may answer (apps.core.api.schema).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.api.schema.declare_request_too_large",
    ],
    # Swagger UI from the installed sidecar package: nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fields named alike with different choices: each choice set gets its own name, not a hashed suffix.
    "ENUM_NAME_OVERRIDES": {
        "BenchmarkKindEnum": "apps.benchmarks.models.BenchmarkPlan.Kind",
        "BenchmarkRunStatusEnum": "apps.benchmarks.models.BenchmarkRun.Status",
        "EncounterStatusEnum": "apps.clinical.models.Encounter.Status",
        "MedicationRequestStatusEnum": "apps.clinical.models.MedicationRequest.Status",
        "ObservationStatusEnum": "apps.clinical.models.Observation.Status",
        "ServiceKindEnum": "apps.services.models.Service.Kind",
    },
}

# --- Auth, i18n, static ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"  # where a sign-in lands when its `next` was refused (an outside URL)

LANGUAGE_CODE = "en-us"
# The hospital's own clock, an IANA name (America/New_York): the workload forecasts read rounds, clinics
# and holidays on it, KEDA's cron windows and the nightly schedules follow it through daylight saving, and
# admin shows times in it. Stored times are UTC whatever it says.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"The environment variable TIME_ZONE must be an IANA time zone name such as America/New_York or UTC, "
        f"not {TIME_ZONE!r}."
    ) from None
CELERY_TIMEZONE = TIME_ZONE  # crontab schedules without a zone of their own
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# The image collects into its own folder (deploy/Dockerfile): VAR_DIR is a volume there, which would hide it.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
settings_directory(STATIC_ROOT, "STATIC_ROOT")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the source folders, so a fresh build is visible without collectstatic.
WHITENOISE_USE_FINDERS = True
# Vite's content-hashed assets for a year, never revalidated; every other file an hour outside DEBUG, not WhiteNoise's
# 60 s, after which each admin page asked again for each of its scripts and stylesheets.
WHITENOISE_IMMUTABLE_FILE_TEST = hashed_asset
WHITENOISE_ADD_HEADERS_FUNCTION = static_cache_headers
WHITENOISE_MAX_AGE = 0 if DEBUG else 3600
DASHBOARD_BUILD_DIR = BASE_DIR / "static" / "dashboard"

# --- Security -------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# Django's database sessions, read from the primary (a replica that lags made a fresh login look signed out)
# and with unknown keys remembered a few seconds (apps.core.sessions).
SESSION_ENGINE = "apps.core.sessions"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    if env.bool("TRUST_X_FORWARDED_PROTO", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CSRF_COOKIE_HTTPONLY = True
# The reverse proxies in front of the api (the ingress controller's pod network, a load balancer):
# CIDR networks or addresses. A request arriving from one of them is attributed to the first address of
# its X-Forwarded-For, from the right, that is not one of them (audit source_ip, rate limits, lockouts).
# Empty: X-Forwarded-For is never read and REMOTE_ADDR is the caller.
TRUSTED_PROXIES = env.names("TRUSTED_PROXIES", default=[])
# Failed bearer-token authentications (unknown, revoked or expired token, malformed header) allowed per client
# address in a sliding window; past it the address's requests with a token this process does not already know
# valid are a 429, with no database lookup. 30 per 5 minutes: far more than a misconfigured client needs to see
# its 401s, and a flood of made-up tokens costs 6 lookups a minute. Counted in Redis only (none: not counted).
API_TOKEN_FAILURE_BUDGET = {
    "failures": env.int("API_TOKEN_FAILURE_BUDGET_FAILURES", default=30, minimum=1),
    "window_seconds": env.int("API_TOKEN_FAILURE_BUDGET_SECONDS", default=300, minimum=1, maximum=24 * 3600),
}
# A working shift; at most a year (past timedelta's range a sign-in raised OverflowError).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600, minimum=1, maximum=366 * 24 * 3600)
# Signed out after this long without a request (0: never); the dashboard's own reads count as activity.
SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", default=30 * 60)

# Content Security Policy (django-csp): scripts only from this origin; styles may be inline (Django
# admin, the self-contained reports); only the dashboard page may also connect to the live feed's origin
# (apps.core.csp.allow_live_feed): a site-wide ws: wss: let a script on any page send to any host.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# Brute-force protection on every password login (admin included): django-axes locks a username from
# one address after AXES_FAILURE_LIMIT failures, for AXES_COOLOFF_TIME hours.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5, minimum=1)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25, above=0, maximum=366 * 24)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its start-up INFO line came first on every manage.py command's stderr
# Days the sign-in log (axes AccessLog: one row per staff login) is kept before core.prune_sign_ins deletes it;
# six years by default, as HIPAA keeps its documentation. Expired sessions go hourly whatever this says.
SIGN_IN_LOG_KEEP_DAYS = env.int("SIGN_IN_LOG_KEEP_DAYS", default=6 * 366, minimum=1, maximum=100 * 366)
# Days finished run history (benchmark and optimization runs, resolved alerts) is kept before core.prune_history
# deletes it, daily; what is running, open, or read as a plan's or service's latest or baseline is kept however old.
HISTORY_KEEP_DAYS = env.int("HISTORY_KEEP_DAYS", default=90, minimum=1, maximum=100 * 366)

# --- Logging --------------------------------------------------------------------------------------
from apps.core.log_filters import JSON_FORMATTER  # noqa: E402 - plain Python, no Django: safe at settings time

# plain: one line per record for a terminal; json: one object per record for a log pipeline. Both carry
# a UTC timestamp with its zone and the id of the request or Celery task the line belongs to.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"The environment variable LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(
        f"The environment variable LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "apps.core.log_filters.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": dict(JSON_FORMATTER),
    },
    "filters": {
        "redact_request_paths": {"()": "apps.core.log_filters.RedactRequestPaths"},
        "correlation_id": {"()": "apps.core.log_filters.CorrelationIdFilter"},
        "client_errors_without_traceback": {"()": "apps.core.log_filters.ClientErrorsWithoutTraceback"},
    },
    "handlers": {
        # Paths carry patient ids: a line about a request names its route template and request id.
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_request_paths", "correlation_id", "client_errors_without_traceback"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Request paths can carry identifiers: never log them from Django's request logger.
        "django.request": {"level": "ERROR"},
        # Django's own DEBUG console handler (and mail_admins) off: every line once, through ours.
        "django": {"handlers": [], "level": "INFO"},
        # The live process's server: uvicorn configures its own handler first; this one replaces it, so its
        # lines take LOG_FORMAT too (its access log is off: paths carry patient ids).
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Named, or configuring its parent gives it back propagation and uvicorn (which logs access when the
        # logger has any handler, --no-access-log or not) wrote every request's path and query.
        "uvicorn.access": {"handlers": [], "propagate": False},
    },
}
