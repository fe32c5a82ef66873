"""An answer from SCALING_PROMETHEUS_URL that is not a range query's JSON (an auth proxy's sign-in page, its
redirect followed; a wrong URL's HTML; a body of another shape) is history unavailable, said as such. It was a
JSONDecodeError or KeyError out of every caller: a benchmark run failed at its end for its memory trend, and the
prediction API raised instead of leaving the metric out. A loopback server stands in for Prometheus."""

from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace

import pytest

from apps.scaling.history import HistoryUnavailable, prometheus_range
from tests.scaling.fake_servers import LoopbackServer

SINCE, UNTIL = datetime(2026, 11, 20, 0, tzinfo=UTC), datetime(2026, 11, 20, 6, tzinfo=UTC)
POLICY = SimpleNamespace(prometheus_selector='app="triage"', service=SimpleNamespace(slug="triage"))


class Answering(LoopbackServer):
    def __init__(self, body: bytes, content_type: str):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._serve(Handler)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Sign in with your hospital account</body></html>", "text/html"),
        (b'{"status": "success"}', "application/json"),
        (b'{"status": "success", "data": {"result": [{"values": [["soon", "1"]]}]}}', "application/json"),
        (b'["success"]', "application/json"),
    ],
)
def test_an_answer_that_is_no_range_query_result_is_history_unavailable(settings, body, content_type):
    server = Answering(body, content_type)
    settings.SCALING_PROMETHEUS_URL = server.url
    try:
        with pytest.raises(HistoryUnavailable, match="Prometheus"):
            prometheus_range(POLICY, "request_rate", since=SINCE, until=UNTIL)
    finally:
        server.stop()
