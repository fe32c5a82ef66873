"""Start-up checks of the Redis and broker URLs beyond their scheme (settings.py checks that much): a URL whose
port is no number, a Redis database that is no number or a broker transport kombu does not know started fine,
then failed every use (/readyz "degraded" with a ValueError or KeyError, each enqueue, the worker and beat on a
traceback naming no variable). No message echoes a URL: it may carry a password."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


def _port_error(variable: str, url: str) -> ImproperlyConfigured | None:
    try:
        urlsplit(url).port  # noqa: B018 - parsing it is the check: "host:63790x" or past 65535 raises
    except ValueError:
        return ImproperlyConfigured(
            f"The environment variable {variable} has a port that is no number from 1 to 65535 (e.g. :6379)."
        )
    return None


def check_redis_url(url: str, variable: str = "REDIS_URL") -> None:
    """Refuse a Redis URL redis-py cannot use as written (none: nothing to check)."""
    if not url:
        return
    if error := _port_error(variable, url):
        raise error
    parts = urlsplit(url)
    database = parts.path.strip("/")
    if parts.scheme in ("redis", "rediss") and database and not database.isdigit():
        # redis-py drops a path that is no number: db 0 (another deployment's, perhaps) was used, silently.
        raise ImproperlyConfigured(
            f"The environment variable {variable} names a database that is no number: the path after the port is "
            "the database's number, e.g. redis://redis:6379/0."
        )
    from redis.connection import parse_url

    try:
        parse_url(url)
    except ValueError as invalid:  # its messages name the option, never a value of the URL's
        raise ImproperlyConfigured(
            f"The environment variable {variable} is not a usable Redis URL: {invalid}"
        ) from None


def check_broker_url(urls: str, variable: str = "CELERY_BROKER_URL") -> None:
    """Refuse a broker URL (or a ";"-separated list of them, Celery's failover) that kombu cannot use."""
    from kombu.transport import TRANSPORT_ALIASES

    for url in filter(None, (part.strip() for part in urls.split(";"))):
        scheme = url.partition("://")[0]
        transport = scheme.partition("+")[0]  # "sqla+postgresql://": kombu's transport, then the URL it is given
        if transport not in TRANSPORT_ALIASES:
            known = ", ".join(
                sorted({"amqp", "pyamqp", "redis", "rediss", "sqs", "filesystem"} & TRANSPORT_ALIASES.keys())
            )
            raise ImproperlyConfigured(
                f"The environment variable {variable} names no broker transport kombu knows ({transport!r}); "
                f"e.g. {known}."
            )
        if error := _port_error(variable, url.partition("+")[2] if "+" in scheme else url):
            raise error


def check_result_backend(url: str, variable: str = "CELERY_RESULT_BACKEND") -> None:
    """Refuse a result backend Celery cannot load (none set: results are not stored). Set, every enqueue loads it:
    a typo (rdis://) failed each one with ModuleNotFoundError, a 500, and the worker at its start."""
    if not url:
        return
    from celery.app.backends import by_url
    from celery.exceptions import ImproperlyConfigured as CeleryImproperlyConfigured

    from controlplane.celery import app

    try:
        by_url(url, app.loader)
    except (ImportError, ValueError, CeleryImproperlyConfigured):
        named = f" ({url.partition('://')[0][:40]!r})" if "://" in url else ""  # the scheme only: never a password
        raise ImproperlyConfigured(
            f"The environment variable {variable} names no result backend Celery can load{named}; "
            "e.g. redis://redis:6379/1, or leave it unset (results are not stored)."
        ) from None
