"""A request that gets no answer (the connection reset or closed before a response) is a failed request:
Locust gives it status 0, and `status_code < 400` counted it a success, so a target that was down measured
as a fast, error-free service."""

import socket
import threading

import pytest

from apps.benchmarks import runner
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.slow


class HangUp:
    """Accepts each connection and closes it at once, answering nothing."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            connection.close()  # linger 0: a reset, no answer


@pytest.fixture
def hang_up():
    server = HangUp()
    yield server
    server.listener.close()


def test_requests_without_an_answer_are_failures(hang_up):
    outcome = runner.run_locust(
        base_url=hang_up.url, requests=REQUESTS, token="t", patients=[], stages=[[4, 2, 2]], stress_gate=None,
        rate_per_user=None, should_stop=lambda: False, on_tick=lambda fraction, elapsed: None,
    )  # fmt: skip
    assert hang_up.accepted > 0
    assert outcome.totals.requests > 0
    assert [sample for sample in outcome.samples if sample[3]] == []
    assert outcome.totals.errors == outcome.totals.requests
    aggregate = outcome.endpoints[-1]
    assert aggregate["requests"] > 0 and aggregate["failures"] == aggregate["requests"]
