"""Django's PostgreSQL backend, whose pool never hands out a connection the server ended while it sat idle.

After a restart or failover, idle_session_timeout or pg_terminate_backend, every idle pooled connection was handed
out once more, and the request that got it failed (the API's 503 database_unavailable): up to DB_POOL_MIN_SIZE
failed requests per process after a restart. Django's CONN_HEALTH_CHECKS costs a round trip on every checkout, and
psycopg_pool sleeps (1 s, 2 s, ...) after each connection failing it. Here a checkout costs one zero-timeout poll of
the socket (the audit writer's check, apps/core/postgresql/idle.py); a connection found ended is closed and given
back, the pool opens its replacement, and the next one is taken at once."""

from __future__ import annotations

import psycopg
from django.db.backends.postgresql import base

from apps.core.postgresql.idle import IdleWatch

_WATCH = "_controlplane_idle_watch"  # the attribute of a pooled connection that holds its watch
# How long a checkout that found ended connections waits for a live one: the replacements of a server that is up
# connect in milliseconds; one that is down (refusing connections) fails the request in this time, as a handed-out
# dead connection failed it at once, not in the pool's whole timeout (DB_POOL_TIMEOUT, a worker thread held 10 s).
REPLACEMENT_WAIT_SECONDS = 2.0


class DatabaseWrapper(base.DatabaseWrapper):
    def _configure_connection(self, connection: psycopg.Connection) -> bool:
        # Called by the pool once per connection it opens (and for an unpooled one, which needs no watch).
        if self.pool is not None:
            setattr(connection, _WATCH, IdleWatch(connection))
        return super()._configure_connection(connection)

    def get_new_connection(self, conn_params: dict) -> psycopg.Connection:
        connection = super().get_new_connection(conn_params)
        pool = self.pool
        if pool is None:
            return connection
        for _ in range(pool.max_size):  # at worst every connection the pool holds was ended
            watch = getattr(connection, _WATCH, None)
            if watch is None or not watch.ended_by_server():
                return connection
            # Closed first: after a FATAL the close may not have been read yet, and an open one would be kept.
            connection.close()
            pool.putconn(connection)  # discarded, and a replacement opened in the background
            connection = pool.getconn(timeout=min(REPLACEMENT_WAIT_SECONDS, pool.timeout))  # PoolTimeout: a 503
            if "isolation_level" in self.settings_dict["OPTIONS"]:  # as super() sets it on the connection it takes
                connection.isolation_level = self.isolation_level
        return connection
