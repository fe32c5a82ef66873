# ruff: noqa
# The locustfile every run executes (copied into the run's folder; never imported by Django or Celery:
# locust monkey-patches the standard library with gevent). Everything it needs comes from the
# environment the runner sets: the request mix, the token, the patients, the stages and the gate.
import json
import os
import random
import signal
import sys
import time

import gevent
from locust import HttpUser, LoadTestShape, constant, constant_throughput, events, task

# Every connection to the target is checked where it is made (apps.benchmarks.connect_guard): a name that
# resolves to a link-local or cloud metadata address gets no request, nor the run's token.
sys.path.append(os.environ["BENCH_PROJECT_ROOT"])
from apps.benchmarks.connect_guard import install as guard_connections

guard_connections()

REQUESTS = json.loads(os.environ["BENCH_REQUESTS"])
WEIGHTS = [float(r.get("weight", 1)) for r in REQUESTS]
TOKEN = os.environ["BENCH_TOKEN"]
PATIENTS = json.loads(open(os.environ["BENCH_PATIENTS_FILE"]).read() or "[]")
STAGES = json.loads(os.environ["BENCH_STAGES"])  # [[until_seconds, users, spawn_rate], ...]
GATE = json.loads(os.environ.get("BENCH_STRESS_GATE") or "null")  # stress: stop once a step breaks it
RATE_PER_USER = float(os.environ.get("BENCH_RATE_PER_USER") or 0)  # open model
RUNNER_PID = int(os.environ.get("BENCH_RUNNER_PID") or 0)  # the process watching this run
# (connect, read) seconds: without them, a target that accepts and never answers held each user for the
# whole run, its requests neither counted nor failed.
REQUEST_TIMEOUT = (10.0, float(os.environ.get("BENCH_REQUEST_TIMEOUT") or 60))
SAMPLES = []  # (seconds since the test started, latency ms, latency from the intended send ms, ok, name)
# The test's start, as the shape counts its stages: set when it starts (on a worker, at its first spawn),
# not at import, which comes seconds earlier on a busy machine and would stretch every figure per second.
T0 = [time.monotonic()]
FLUSHED = [T0[0]]


def flush_samples():
    """Append what was measured to the samples file (JSON lines): a stopped run keeps what it measured."""
    if SAMPLES:
        with open(os.environ["BENCH_SAMPLES_FILE"].replace("{pid}", str(os.getpid())), "a") as handle:
            handle.write("".join(json.dumps(sample) + "\n" for sample in SAMPLES))
        SAMPLES.clear()
    FLUSHED[0] = time.monotonic()


def judged(response):
    """(ok, why not) of one request. A request with no answer (connection refused or reset, a timeout) is
    Locust's status 0 with the error kept: `status_code < 400` counted it a success, so a target that was
    down measured as a fast, error-free service."""
    error = getattr(response, "error", None)
    if error is not None and not response.status_code:
        return False, f"no answer: {type(error).__name__}: {error}"[:500]
    if not 0 < response.status_code < 400:
        return False, f"HTTP {response.status_code}"
    return True, ""


class ApiUser(HttpUser):
    wait_time = constant_throughput(RATE_PER_USER) if RATE_PER_USER else constant(0)

    def on_start(self):
        self.client.headers["Authorization"] = f"Bearer {TOKEN}"
        self.intended = time.monotonic()

    @task
    def mix(self):
        request = random.choices(REQUESTS, WEIGHTS)[0]
        path = request["path"]
        if "{patient_id}" in path:
            path = path.replace("{patient_id}", str(random.choice(PATIENTS)))
        started = time.monotonic()
        intended = self.intended if RATE_PER_USER else started
        with self.client.request(
            request.get("method", "GET"),
            path,
            json=request.get("body"),
            name=request["name"],
            catch_response=True,
            timeout=REQUEST_TIMEOUT,
        ) as response:
            ok, problem = judged(response)
            if ok:
                response.success()
            else:
                response.failure(problem)
        ended = time.monotonic()
        SAMPLES.append(
            (
                round(started - T0[0], 3),
                round((ended - started) * 1000, 3),
                round((ended - intended) * 1000, 3),
                int(ok),
                request["name"],
            )
        )
        if RATE_PER_USER:
            # The schedule never waits for a slow answer: a stall shows as latency from the intended time.
            self.intended += 1 / RATE_PER_USER
        if ended - FLUSHED[0] > 1:
            flush_samples()


class Stages(LoadTestShape):
    broken_at = None

    def tick(self):
        now = self.get_run_time()
        if GATE and now >= GATE["step_seconds"]:
            step = int(now // GATE["step_seconds"])
            if step != getattr(self, "checked_step", 0):
                self.checked_step = step
                # Both over the last 10 s, this step's: the error ratio since the start (fail_ratio) let a
                # cold start's errors stop the test at its first step, and thousands of earlier successes
                # hide a step's errors, stepping on past where the service broke.
                total = self.runner.stats.total
                p95 = total.get_current_response_time_percentile(0.95) or 0
                rps = total.current_rps
                errors = 100 * total.current_fail_per_sec / rps if rps else 0.0
                if p95 > GATE["p95_ms"] or errors > GATE["error_rate_pct"]:
                    return None
        for until, users, rate in STAGES:
            if now < until:
                return (int(users), float(rate))
        return None


def quit_when_orphaned():
    """Locust runs in a session of its own: when the worker running it dies, nothing would stop it, and it
    would load the target to the end of its run-time with no one to cancel or record it. Quit as a
    cancellation does (SIGTERM) once this process is no longer the runner's child."""
    while os.getppid() == RUNNER_PID:
        gevent.sleep(1)
    os.kill(os.getpid(), signal.SIGTERM)


def stop_on_sigterm(environment):
    """A stop (the runner's cancellation, its worker's shutdown, an orphan's quit) keeps what was measured.
    Locust installs its own SIGTERM handler only once a shape's test is over: until then SIGTERM killed it at
    once, the samples since its last flush lost (every one of them in its first second) and its stats not
    written. Flushed, then stopped as the end of a test is, which writes the stats."""
    flush_samples()
    if environment.runner is not None:
        environment.runner.quit()


@events.init.add_listener
def on_init(environment, **kwargs):
    gevent.signal_handler(signal.SIGTERM, stop_on_sigterm, environment)
    if RUNNER_PID:
        gevent.spawn(quit_when_orphaned)


@events.test_start.add_listener
def on_test_start(environment, **kwargs):
    T0[0] = time.monotonic()


@events.test_stop.add_listener
def on_test_stop(environment, **kwargs):
    flush_samples()


@events.quitting.add_listener
def on_quitting(environment, **kwargs):
    flush_samples()
