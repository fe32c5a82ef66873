"""`optimize --inline` stopped by SIGTERM (systemd, Kubernetes, `timeout`) cancels its run as Ctrl-C does and
exits 2: only KeyboardInterrupt was handled, so the process died and its run and step showed as running until
the stuck checker failed them, up to 2 h later. The step is made to wait, for real, on a Prometheus that holds
its answer until the test ends; the signal is sent once the request has reached it."""

import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.optimizer.models import OptimizationRun, OptimizationStep
from apps.scaling import services as scaling_services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service
from tests.helpers import REPO_ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)


class HeldPrometheus:
    """Answers no query_range until released: `asked` is set when the first request has come in."""

    def __init__(self) -> None:
        self.asked, self.release = threading.Event(), threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                held.asked.set()
                held.release.wait(300)
                body = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus():
    held = HeldPrometheus()
    yield held
    held.stop()


def test_sigterm_cancels_the_inline_run_and_exits_2(prometheus):
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    scaling_services.scaling_policy_ensure(service, history_source=ScalingPolicy.HistorySource.PROMETHEUS)
    env = {**os.environ, "DATABASE_URL": database_url(), "SCALING_PROMETHEUS_URL": prometheus.url}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "optimize", "scaling", "--inline"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert prometheus.asked.wait(120), "the scaling step never asked Prometheus"
        run = OptimizationRun.objects.get()
        assert run.status == OptimizationRun.Status.RUNNING  # measuring, held by Prometheus
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2, err
    assert "Terminated (SIGTERM)" in err and f"run #{run.pk} is cancelled" in err
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.FAILED and "SIGTERM" in run.error
    assert run.finished_at is not None
    step = run.steps.get()
    assert step.status == OptimizationStep.Status.FAILED and "SIGTERM" in step.error
