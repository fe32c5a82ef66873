"""Whether the server ended an idle PostgreSQL session, found without a round trip.

Shared by the audit writer's own connection and the pooled connections (apps/core/postgresql/base.py): a session
the server ended while it sat idle (a restart or failover, idle_session_timeout, pg_terminate_backend, a pooler
dropping idle sessions) is only found by sending on it, and what was sent fails: a 503 for the request."""

from __future__ import annotations

import select

import psycopg


class IdleWatch:
    """Finds, without a round trip, whether the server has ended an idle session.

    An idle session's socket has nothing to read unless the server sent something unasked: its goodbye (a FATAL
    error, then the close) or a harmless message (a NOTICE, a ParameterStatus, a notification). Quiet, the check
    is one zero-timeout poll. Readable, libpq reads what came: the close marks the connection bad, and a FATAL
    (the close may follow it a moment later) reaches this watch as a notice; anything else stays with libpq and
    psycopg delivers it as it would have. Made once per connection, while it is idle (its notice handler stays).
    """

    # Readable turns read at most: a server ending a session takes two (its FATAL, then the close); a live
    # server's unsolicited messages take one and leave the socket quiet.
    READS = 4

    def __init__(self, database: psycopg.Connection) -> None:
        self.database, self.farewell = database, False
        self._readable = select.poll()
        self._readable.register(database.pgconn.socket, select.POLLIN)
        database.add_notice_handler(self._notice)

    def _notice(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        if diagnostic.severity_nonlocalized in ("FATAL", "PANIC"):  # only ever sent by a server ending the session
            self.farewell = True

    def ended_by_server(self) -> bool:
        database = self.database
        if database.closed:
            return True
        try:
            for _ in range(self.READS):
                if not self._readable.poll(0):
                    return False
                database.pgconn.consume_input()  # raises when it reads the close
                database.pgconn.is_busy()  # parses what came: a notice (a FATAL one too) reaches its handlers
                if self.farewell or database.closed:
                    return True
        except psycopg.Error:
            return True
        return False
