"""The requests the product sends on a staff member's say (alert webhooks, the Prometheus history source) refuse
the cloud metadata service on the address actually connected to, not only on the URL's text: a name resolving
there is refused at connect, every redirect hop is checked, and Prometheus' credentials follow a redirect only
within its own origin. Loopback and private addresses stay allowed (hospitals run services on private networks,
the demo's answer on 127.0.0.1).

DNS rebinding (a name that resolved elsewhere when it was saved, and to 169.254.169.254 when it is used) cannot
be arranged here: no resolver of ours answers these tests. The module under test's `socket.getaddrinfo` is
replaced instead (only apps.core.link_local sees it), answering what a rebinding resolver would. Loopback
servers on ephemeral ports stand in for the webhook receivers and Prometheus."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from apps.core import link_local
from apps.core.link_local import (
    GuardedHTTPConnection,
    GuardedHTTPSConnection,
    RefusedAddressError,
    guarded_create_connection,
)

METADATA = "169.254.169.254"


class _Socket:
    """The socket module, with some of its names replaced."""

    def __init__(self, **replaced):
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(socket, name)


def resolving(monkeypatch, names: dict[str, list[str]], **replaced) -> None:
    """apps.core.link_local's getaddrinfo answers `names` with their addresses, in order; other hosts resolve."""

    def getaddrinfo(host, port, family=0, kind=0, proto=0, flags=0):
        if host not in names:
            return socket.getaddrinfo(host, port, family, kind, proto, flags)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))
            for address in names[host]
        ]

    monkeypatch.setattr(link_local, "socket", _Socket(**{"getaddrinfo": getaddrinfo, **replaced}))


class Server:
    """A loopback HTTP server on a free port, in a thread: `answer(handler)` replies to each request, which
    `seen` keeps (method, path, headers)."""

    def __init__(self, answer):
        self.seen: list[tuple[str, str, dict]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen.append((self.command, self.path, dict(self.headers)))
                answer(self)

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def ok(handler, body: bytes = b"{}"):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def redirect_to(location: str):
    def answer(handler):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@pytest.fixture
def server():
    started = []

    def start(answer=ok):
        started.append(Server(answer))
        return started[-1]

    yield start
    for each in started:
        each.stop()


# --- the guard itself -------------------------------------------------------------------------------------


@pytest.mark.parametrize("addresses", [[METADATA], ["fe80::1"], ["fd00:ec2::254"], ["::ffff:169.254.169.254"],
                                       [METADATA, "fe80::a9fe:a9fe"]])  # fmt: skip
def test_a_name_resolving_to_the_metadata_service_is_refused_at_connect(monkeypatch, addresses):
    connects = []
    resolving(monkeypatch, {"hooks.hospital.example": addresses}, socket=lambda *a: connects.append(a))
    with pytest.raises(RefusedAddressError) as refused:
        guarded_create_connection(("hooks.hospital.example", 80), timeout=5)
    assert f"Refused to connect to hooks.hospital.example (it resolves to {', '.join(addresses)})" in str(refused.value)
    assert "metadata" in str(refused.value)
    assert connects == []  # no socket was even made


@pytest.mark.parametrize("host", ["169.254.169.254", "2852039166", "0xa9.254.169.254", "metadata.google.internal",
                                  "fd00:ec2::254"])  # fmt: skip
def test_a_refused_host_is_not_even_resolved(monkeypatch, host):
    resolving(monkeypatch, {}, getaddrinfo=lambda *a: pytest.fail("resolved"))
    with pytest.raises(RefusedAddressError, match="Refused to connect"):
        guarded_create_connection((host, 80), timeout=5)


def test_of_a_name_s_addresses_only_the_allowed_ones_are_connected_to(monkeypatch, server):
    receiver = server()
    resolving(monkeypatch, {"pacs.hospital.example": [METADATA, "127.0.0.1"]})
    connection = GuardedHTTPConnection("pacs.hospital.example", receiver.port, timeout=10)
    connection.request("GET", "/studies")
    assert connection.getresponse().status == 200
    connection.close()
    assert [path for _, path, _ in receiver.seen] == ["/studies"]


@pytest.mark.parametrize("address", ["10.20.30.40", "192.168.1.20", "172.16.0.9", "fd12:3456::1", "100.64.0.1"])
def test_private_addresses_are_connected_to(monkeypatch, address):
    """No private network exists here to reach: a stand-in socket records what the guard connects to."""
    connected = []

    class Recording:
        def __init__(self, *args):
            pass

        def settimeout(self, timeout):
            pass

        def connect(self, sockaddr):
            connected.append(sockaddr[0])

        def close(self):
            pass

    resolving(monkeypatch, {"ris.hospital.internal": [address]}, socket=Recording)
    assert isinstance(guarded_create_connection(("ris.hospital.internal", 443), timeout=5), Recording)
    assert connected == [address]


def test_the_https_connection_is_guarded_too(monkeypatch):
    resolving(monkeypatch, {"prometheus.hospital.example": [METADATA]})
    with pytest.raises(RefusedAddressError, match=METADATA):
        GuardedHTTPSConnection("prometheus.hospital.example", 443, timeout=5).connect()
    with pytest.raises(RefusedAddressError, match=r"metadata\.google\.internal"):
        GuardedHTTPSConnection("metadata.google.internal", timeout=5).connect()


# --- alert webhooks ---------------------------------------------------------------------------------------


def _fire_webhook(url: str):
    from apps.metrics.models import AlertRule
    from tests.metrics.support import alerts_evaluate_committed, host_sample

    rule = AlertRule(name="CPU", metric="cpu_pct", threshold=1, for_seconds=0, webhook_url=url)
    rule.full_clean()  # the name passes the field's check when it is saved
    rule.save()
    host_sample(cpu=90.0)
    [alert] = alerts_evaluate_committed()
    [notification] = alert.notifications.all()
    return notification


@pytest.mark.django_db
def test_a_webhook_whose_name_now_resolves_to_the_metadata_service_is_refused(monkeypatch, server, settings):
    settings.ALERT_WEBHOOK_TIMEOUT_SECONDS = 3  # the old code connected: its wait is short
    resolving(monkeypatch, {"pager.hospital.example": [METADATA]})
    notification = _fire_webhook("http://pager.hospital.example:8080/hooks/T0SECRET")
    assert not notification.delivered
    assert notification.detail == (
        "Refused to connect to pager.hospital.example (it resolves to 169.254.169.254): a link-local or cloud "
        "metadata address, where the cloud metadata service answers."
    )


@pytest.mark.django_db
def test_a_webhook_on_a_name_resolving_to_loopback_is_delivered(monkeypatch, server):
    receiver = server()
    resolving(monkeypatch, {"pager.hospital.example": ["127.0.0.1"]})
    notification = _fire_webhook(f"http://pager.hospital.example:{receiver.port}/hook")
    assert notification.delivered, notification.detail
    assert [(method, path) for method, path, _ in receiver.seen] == [("POST", "/hook")]


# --- Prometheus -------------------------------------------------------------------------------------------

SINCE, UNTIL = datetime(2026, 11, 20, 0, tzinfo=UTC), datetime(2026, 11, 20, 6, tzinfo=UTC)
POLICY = SimpleNamespace(prometheus_selector='app="triage"', service=SimpleNamespace(slug="triage"))
RANGE = json.dumps({"status": "success", "data": {"result": [{"values": [[1763604000, "2"]]}]}}).encode()


def _history():
    from apps.scaling.history import prometheus_range

    return prometheus_range(POLICY, "request_rate", since=SINCE, until=UNTIL)


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "http://2852039166/",
                                      "http://[fd00:ec2::254]/", "http://metadata.google.internal/v1/"])  # fmt: skip
def test_a_prometheus_redirect_to_the_metadata_service_is_refused(monkeypatch, server, settings, location):
    from apps.scaling.history import HistoryUnavailable

    connects = []
    resolving(monkeypatch, {}, socket=lambda *a: connects.append(a) or socket.socket(*a))
    prometheus = server(redirect_to(location))
    settings.SCALING_PROMETHEUS_URL = prometheus.url
    with pytest.raises(HistoryUnavailable, match=r"Prometheus: Refused to connect to .*\(The target of a 302 redirect"):
        _history()
    assert len(connects) == 1  # Prometheus itself; the redirect's target never


def test_a_prometheus_redirect_to_a_name_resolving_to_the_metadata_service_is_refused(monkeypatch, server, settings):
    from apps.scaling.history import HistoryUnavailable

    resolving(monkeypatch, {"cache.hospital.example": [METADATA]})
    prometheus = server(redirect_to("http://cache.hospital.example:9090/api/v1/query_range"))
    settings.SCALING_PROMETHEUS_URL = prometheus.url
    with pytest.raises(HistoryUnavailable) as refused:
        _history()
    assert str(refused.value).startswith(
        "Prometheus: Refused to connect to cache.hospital.example (it resolves to 169.254.169.254)"
    )


def test_prometheus_credentials_follow_a_same_origin_redirect_only(server, settings):
    elsewhere = server(lambda handler: ok(handler, RANGE))

    def answer(handler):
        if handler.path.startswith("/moved/"):
            ok(handler, RANGE)
        elif handler.path.startswith("/api/"):
            redirect_to(f"/moved{handler.path}")(handler)  # same origin
        else:
            redirect_to(f"{elsewhere.url}/api/v1/query_range?{urlsplit(handler.path).query}")(handler)

    prometheus = server(answer)
    settings.SCALING_PROMETHEUS_URL = f"http://grafana:s3cret@127.0.0.1:{prometheus.port}"
    assert list(_history()) == [2.0]
    [(_, _, first), (_, _, moved)] = prometheus.seen
    assert first["Authorization"] == moved["Authorization"] == "Basic Z3JhZmFuYTpzM2NyZXQ="

    settings.SCALING_PROMETHEUS_URL = f"http://grafana:s3cret@127.0.0.1:{prometheus.port}/elsewhere"
    assert list(_history()) == [2.0]
    [(_, _, sent)] = elsewhere.seen  # another port of the same host: another origin
    assert "Authorization" not in sent
    assert prometheus.seen[-1][2]["Authorization"] == "Basic Z3JhZmFuYTpzM2NyZXQ="


def test_a_prometheus_on_loopback_still_answers(server, settings):
    prometheus = server(lambda handler: ok(handler, RANGE))
    settings.SCALING_PROMETHEUS_URL = prometheus.url
    assert list(_history()) == [2.0]


# --- the opener -------------------------------------------------------------------------------------------


def test_the_opener_refuses_an_https_name_resolving_to_the_metadata_service(monkeypatch):
    from apps.core.link_local import guarded_opener, refusal_in

    resolving(monkeypatch, {"prometheus.hospital.example": [METADATA]})
    with pytest.raises(OSError) as raised:
        guarded_opener().open("https://prometheus.hospital.example/api/v1/query", timeout=5)
    assert refusal_in(raised.value) is not None


def test_the_opener_speaks_tls_through_the_guard():
    """A TCP server that answers in plain text: the HTTPS handler connects through the guard (the server
    accepts) and TLS fails on the answer, a connection error like any other, not a refusal."""
    from apps.core.link_local import guarded_opener, refusal_in

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)  # never left waiting when the client failed before it connected
    accepted = []

    def answer_in_plain_text():
        connection, _ = listener.accept()
        accepted.append(connection)
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        connection.recv(65536)
        connection.close()

    thread = threading.Thread(target=answer_in_plain_text, daemon=True)
    thread.start()
    try:
        with pytest.raises(OSError) as raised:
            guarded_opener().open(f"https://127.0.0.1:{listener.getsockname()[1]}/", timeout=10)
    finally:
        thread.join(timeout=30)
        listener.close()
    assert len(accepted) == 1
    assert refusal_in(raised.value) is None


def test_the_opener_takes_no_proxy_from_the_environment(monkeypatch, server):
    """A proxy resolves the name itself: the guard would check the proxy's address, not the target's."""
    from apps.core.link_local import guarded_opener

    receiver = server()
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with guarded_opener().open(f"{receiver.url}/direct", timeout=10) as response:
        assert response.status == 200
    assert [path for _, path, _ in receiver.seen] == ["/direct"]


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/etc/passwd", "file:///etc/passwd"])
def test_a_redirect_to_another_scheme_is_not_followed(server, location):
    import urllib.error

    from apps.core.link_local import guarded_opener

    redirecting = server(redirect_to(location))
    with pytest.raises(urllib.error.HTTPError) as raised:
        guarded_opener().open(redirecting.url, timeout=10)
    assert raised.value.code == 302
