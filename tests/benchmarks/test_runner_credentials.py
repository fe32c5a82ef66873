"""What a run's requests carry: its token, to the target only. Real Locust against two servers of the
test's own, the target redirecting to the other (a host the token must not reach)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.benchmarks import runner

pytestmark = pytest.mark.slow


class Recorder:
    """A server that records each request's Authorization header, redirecting every request to `to`."""

    def __init__(self, redirect_to: str | None = None):
        self.authorizations: list[str | None] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                recorder.authorizations.append(self.headers.get("Authorization"))
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", f"{redirect_to}/landing")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_neither_the_token_nor_the_workers_netrc_follows_a_redirect_to_another_host(tmp_path, monkeypatch):
    """A guard, not a fix: requests drops the Authorization header on a redirect to another host, and Locust's
    users do not trust the environment (trust_env False), so the worker's ~/.netrc (its `default` entry
    matches any host) neither replaces the token nor goes along the redirect. A Locust or requests upgrade
    that changed either would send credentials to a host BENCHMARK_TOKEN_HOSTS does not list."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("default login worker password worker-secret\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    elsewhere = Recorder()
    target = Recorder(redirect_to=f"http://localhost:{elsewhere.port}")  # another host name to requests
    try:
        outcome = runner.run_locust(base_url=f"http://127.0.0.1:{target.port}",
                                    requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
                                    token="the-run-token", patients=[], stages=[[4, 1, 1]], stress_gate=None,
                                    rate_per_user=None, should_stop=lambda: False, on_tick=lambda *_: None)  # fmt: skip
    finally:
        target.close()
        elsewhere.close()
    assert outcome.samples and target.authorizations and elsewhere.authorizations
    assert set(target.authorizations) == {"Bearer the-run-token"}
    assert set(elsewhere.authorizations) == {None}
