"""A target of the tests' own: a threaded HTTP server whose answers take a settable time (the
"endpoint that sleeps" a slowdown is injected with), optionally more under concurrency; and the plans and
broker clean-up of the `bench` command's tests."""

import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = [{"name": "card", "method": "GET", "path": "/card", "weight": 1}]  # a plan's one request


class SleepyServer:
    def __init__(self):
        self.delay_ms = 10.0
        self.per_inflight_ms = 0.0  # extra latency per request in flight: a saturating service
        self.inflight = 0
        self.served = 0  # requests answered: whether any load generator is still sending
        self.fail_first = 0  # answer the first this many requests 503 (a cold start's errors)
        self.fail_every_other = False  # answer every second request 503 at once, without the delay
        self.seen = 0  # requests received
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with server.lock:
                    server.seen += 1
                    fast_failure = server.fail_every_other and server.seen % 2 == 0
                if fast_failure:
                    self.send_response(503)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"no")
                    return
                with server.lock:
                    server.inflight += 1
                    extra = server.per_inflight_ms * (server.inflight - 1)
                time.sleep((server.delay_ms + extra) / 1000)
                with server.lock:
                    server.inflight -= 1
                    server.served += 1
                    failing = server.served <= server.fail_first
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def queued_plan(name: str):
    """A plan of one request against a target nothing listens on: its runs are queued, never run here."""
    from apps.benchmarks.models import BenchmarkPlan
    from apps.services.services import service_ensure

    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    return BenchmarkPlan.objects.create(name=name, service=service, requests=REQUESTS)


def drain_benchmarks_queue() -> None:
    """Take the runs' messages off the real broker: no worker of a later test is to take them."""
    from controlplane.celery import app

    with app.connection_for_write() as broker:
        channel = broker.default_channel
        app.amqp.queues["benchmarks"](channel).declare()
        while channel.basic_get("benchmarks", no_ack=True) is not None:
            pass


def running(plan):
    """A run of `plan` held by a live worker on another host: running, beating now, its deadline 20 hours away
    (not failed as orphaned or silent by the checker's round)."""
    from django.utils import timezone

    from apps.benchmarks import services
    from apps.benchmarks.models import BenchmarkRun

    run = services.benchmark_run_create(plan=plan)
    now = timezone.now()
    BenchmarkRun.objects.filter(pk=run.pk).update(
        status=BenchmarkRun.Status.RUNNING, worker_host=f"not-{socket.gethostname()}", worker_pid=1,
        heartbeat_at=now, started_at=now, deadline=now + timedelta(hours=20),
    )  # fmt: skip
    return run
