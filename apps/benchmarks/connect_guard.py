"""The load generator's connections, checked where they are made: Locust sends with requests, so urllib3,
and every new connection urllib3 opens goes through apps.core.link_local's guard once `install`ed (the
locustfile does, at its start). The target's name is resolved at connect time and the address connected
to is checked, so a base URL whose name now resolves to the cloud metadata service (or to a link-local
address) gets no request, its bearer token included: a refused connection, a failed request of the run."""

from __future__ import annotations

import socket
from collections.abc import Callable


def guarded_urllib3_connection(
    address: tuple[str, int],
    timeout: object = socket._GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    socket_options: list | None = None,
) -> socket.socket:
    """urllib3.util.connection.create_connection's contract, its socket from guarded_create_connection."""
    from urllib3.util.timeout import _DEFAULT_TIMEOUT

    from apps.core.link_local import guarded_create_connection

    host, port = address
    if timeout is _DEFAULT_TIMEOUT:  # urllib3's "no timeout given" is not socket's
        timeout = socket._GLOBAL_DEFAULT_TIMEOUT
    sock = guarded_create_connection((host.strip("[]"), port), timeout, source_address)
    try:
        for option in socket_options or ():
            sock.setsockopt(*option)
    except OSError:
        sock.close()
        raise
    return sock


def install() -> Callable[[], None]:
    """Route urllib3's new connections (requests', so Locust's) through the guard; returns the undo."""
    from urllib3.util import connection

    import apps.core.link_local  # noqa: F401 (imported now, not at the load's first connection)

    previous = connection.create_connection
    connection.create_connection = guarded_urllib3_connection

    def undo() -> None:
        connection.create_connection = previous

    return undo
