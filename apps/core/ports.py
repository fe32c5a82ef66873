"""Ports for the servers the product and its tests start on this host (load-test targets, Locust's
master, the e2e stack)."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000
_handed_out: set[int] = set()
_lock = threading.Lock()


def _ports_outside_ephemeral_range() -> list[range]:
    try:
        first, last = (int(n) for n in _LOCAL_PORT_RANGE.read_text().split()[:2])
    except (OSError, ValueError):
        first, last = 32768, 60999  # Linux's default
    return [r for r in (range(_LOWEST, first), range(last + 1, 65536)) if len(r) >= 1000]


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, outside the kernel's ephemeral range and never handed out before by this process.

    Asking the kernel for port 0 and releasing it races: the same port goes to the next outgoing
    connection (a database or Redis client) or to the next caller, and the server started on it then
    fails with "address already in use". Outgoing connections never take ports outside the ephemeral range.
    """
    ranges = _ports_outside_ephemeral_range()
    with _lock:
        for _ in range(200):
            port = random.choice(random.choice(ranges)) if ranges else 0  # noqa: S311 (not a secret)
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                port = sock.getsockname()[1]  # the kernel's choice where the whole range is ephemeral
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port on {host}")
