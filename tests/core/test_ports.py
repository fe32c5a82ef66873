"""Ports handed to the servers the product and its tests start: free, distinct, outside the ephemeral range."""

import socket

from apps.core import ports


def test_ports_are_distinct_free_and_outside_the_ephemeral_range():
    first, last = (int(n) for n in ports._LOCAL_PORT_RANGE.read_text().split())
    handed = [ports.free_port() for _ in range(50)]
    assert len(set(handed)) == 50
    assert not any(first <= port <= last for port in handed)
    assert min(handed) >= ports._LOWEST
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", handed[-1]))  # still free: nothing keeps it


def test_a_port_in_use_is_never_handed_out(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(ports, "_ports_outside_ephemeral_range", lambda: [range(port, port + 2)])
        monkeypatch.setattr(ports, "_handed_out", set())
        assert ports.free_port() == port + 1  # the only candidate that binds


def test_a_machine_whose_whole_range_is_ephemeral_gets_the_kernels_choice(monkeypatch):
    monkeypatch.setattr(ports, "_ports_outside_ephemeral_range", lambda: [])
    port = ports.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
