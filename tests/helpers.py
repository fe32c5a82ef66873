"""Helpers for tests that start real processes of the product."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import pytest

from apps.core.ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LOG_TAIL_CHARS = 3000  # of a started process's log, in the message of a wait that timed out

# The variables that move the product off its embedded defaults.
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "PROMETHEUS_MULTIPROC_DIR",
)


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh checkout: none of the service variables set."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES and not k.startswith("DJANGO_")}
    env.update(VAR_DIR=str(var_dir), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


# The logs of the processes a test started (a worker, a server), their tails put into the test's report when it fails
# (tests/conftest.py's pytest_runtest_makereport): a worker's log nobody read left a CI failure undiagnosable.
PROCESS_LOGS = pytest.StashKey[list[tuple[str, Path]]]()


def log_in_report(request: pytest.FixtureRequest, path: Path, title: str) -> Path:
    """The tail of `path` goes into the report of the test of `request` if it fails (its setup, call or teardown)."""
    request.node.stash.setdefault(PROCESS_LOGS, []).append((title, Path(path)))
    return Path(path)


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last `chars` characters of a process's log, or why there are none."""
    try:
        return Path(path).read_text(errors="replace")[-chars:] or "(empty)"
    except OSError as exc:
        return f"(not readable: {exc})"


def wait_for(condition: Callable[[], object], seconds: float, what: str, log: Path | None = None) -> None:
    """Poll `condition` until it is true; fail naming `what` (and the end of `log`) when it is not in time.
    A wait on a condition with a generous deadline instead of a sleep: a loaded machine only makes it slower."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:  # `condition` was false at least once past the deadline
            message = f"Timed out after {seconds} s waiting for {what}"
            if log is not None:
                text = log.read_text(errors="replace") if log.exists() else "(not written)"
                message += f"; {log.name} ends:\n{text[-LOG_TAIL_CHARS:]}"
            raise AssertionError(message)
        time.sleep(0.1)


def touches_during(path: Path, seconds: float, enough: int | None = None) -> list[float]:
    """The file's modification times seen over `seconds` (a heartbeat file's touches), each new one once; with
    `enough`, as soon as that many are seen (a test asking for at least two need not watch for the whole time)."""
    seen: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (enough is None or len(seen) < enough):
        mtime = path.stat().st_mtime if path.exists() else 0.0
        if mtime and (not seen or mtime != seen[-1]):
            seen.append(mtime)
        time.sleep(0.2)
    return seen


def staff_user(django_user_model, role: str):
    """A staff user in the group of `role` (apps.accounts.roles), as the admin's tests log in."""
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(role.lower(), f"{role}@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=role)])
    return user


def offered_actions(client, url: str) -> set[str]:
    """The changelist actions the admin at `url` offers the logged-in user."""
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]
    return {name for name, _label in form.fields["action"].choices} if form else set()


def database_url() -> str:
    """The test database's address, for a process the test starts (a worker, a server) to use."""
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def broker_connections_dropped() -> None:
    """This process's pooled broker connections closed and forgotten (the pools are made again on next use), as
    Celery does after a fork. A pooled connection a forked child closed (kombu's after-fork hook), or one to a vhost
    deleted since, was dead and its next use raised ConnectionResetError: a purge does not retry (sends do), so the
    next test that purged failed in its setup."""
    from kombu import pools

    from controlplane.celery import app

    pools.reset()  # closes every pool kombu keeps by connection (Celery's are among them) and forgets them
    app._pool = None
    amqp = app.__dict__.get("amqp")  # a cached_property: absent until first used
    if amqp is not None:
        amqp._producer_pool = None


def queue_consumers(queues: tuple[str, ...]) -> dict[str, int] | None:
    """How many consumers each of `queues` has on the broker now (a queue not declared yet: 0), from a connection
    of its own (not the pool's). None where the broker does not count them (the embedded mode's filesystem one)."""
    from amqp.exceptions import NotFound

    from controlplane.celery import app

    counts = {}
    with app.connection_for_write() as connection:
        if connection.transport.driver_type != "amqp":
            return None
        for queue in queues:
            channel = connection.channel()  # a passive declare of a missing queue closes its channel
            try:
                counts[queue] = channel.queue_declare(queue, passive=True).consumer_count
            except NotFound:
                counts[queue] = 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()
    return counts


@contextmanager
def broker_vhost_deleted() -> Iterator[Callable[[], None]]:
    """This environment's RabbitMQ vhost (only its own, never another's) deleted in the block, created again after:
    the broker refusing every connection (NotAllowed), as when a vhost is down or credentials were rotated. Yields
    what brings the vhost back before the block ends. Skips without a vhost of its own or rabbitmqctl. Afterwards
    this process's pooled broker connections, to the deleted vhost, are dropped."""
    broker = os.environ.get("CELERY_BROKER_URL") or os.environ.get("TEST_CELERY_BROKER_URL", "")
    vhost = broker.rsplit("/", 1)[-1]
    if not broker.startswith("amqp://") or not vhost or vhost == "/" or shutil.which("rabbitmqctl") is None:
        pytest.skip("needs RabbitMQ with a vhost of its own and rabbitmqctl (CELERY_BROKER_URL=amqp://.../vhost)")

    def rabbitmqctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    def restore() -> None:  # adding a vhost that exists succeeds: it may run twice
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    rabbitmqctl("delete_vhost", vhost)
    try:
        yield restore
    finally:
        restore()
        broker_connections_dropped()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    return free_port()


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run Python with the product's settings in a separate process (settings are read at import)."""
    env = {**env, "DJANGO_SETTINGS_MODULE": "controlplane.settings"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_make_run(folder: Path, output: IO | int, **extra: str) -> subprocess.Popen:
    """`make run` in `folder` (a copy of the checkout) on ports of its own, writing to `output`, in a session of
    its own: the test signals its whole group as a terminal would. An outer make's MAKEFLAGS are left out."""
    env = {key: value for key, value in os.environ.items() if key != "MAKEFLAGS"}
    env.update(VAR_DIR=str(folder / "var"), **extra)
    return subprocess.Popen(
        ["make", "run", f"PORT={free_port()}", f"LIVE_PORT={free_port()}"],
        cwd=folder, env=env, stdout=output, stderr=output, start_new_session=True,
    )  # fmt: skip


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Stop a process started with start_new_session=True and its whole group (a server's workers, a
    worker's pool children): `sig` to the group, then SIGKILL to it if the process has not ended within
    `timeout` seconds. Its exit status; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # stuck in its shutdown: not left running behind the tests
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


@contextmanager
def _product_server(command: list[str], ready: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Start `command` in a process group of its own, its output in `log`; return once `ready` is logged (or
    it ended), stop its group on exit."""
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_for(lambda: ready in log.read_text() or server.poll() is not None, 120, Path(command[0]).name, log)
        yield
    finally:
        stop_group(server)


@contextmanager
def product_gunicorn(log: Path, env: dict[str, str]) -> Iterator[int]:
    """The api process as the Procfile starts it (the product's gunicorn config), one worker on a free port,
    its output in `log`; yields the port once the worker boots, stops its group on exit."""
    port = free_port()
    command = [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--config", "controlplane/gunicorn.conf.py",
               "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"]  # fmt: skip
    with _product_server(command, "Booting worker", log, env):
        yield port


@contextmanager
def product_uvicorn(log: Path, env: dict[str, str]) -> Iterator[int]:
    """The live process as the Procfile starts it (uvicorn on the ASGI application), on a free port, its output
    in `log`; yields the port once it listens, stops its group on exit."""
    port = free_port()
    command = [str(VENV_BIN / "uvicorn"), "controlplane.asgi:application", "--host", "127.0.0.1", "--port",
               str(port), "--no-access-log", "--lifespan", "off"]  # fmt: skip
    with _product_server(command, "Uvicorn running on", log, env):
        yield port


def start_redis(port: int, *options: str) -> subprocess.Popen:
    """A redis-server of the test's own on `port` (no persistence unless `options` ask for it), answering."""
    import redis

    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *options],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


@contextmanager
def behind_an_uncommitted_insert(insert: Callable[[], object]) -> Iterator[None]:
    """Two writers at once, the second one's check run before the first committed: `insert` runs in a
    transaction of another PostgreSQL session, held open until a statement of this block waits on its row's
    lock, then committed. For tests marked django_db(transaction=True): each session commits."""
    from django.db import connection, connections, transaction

    def waiting_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] > 0

    inserted, commit = threading.Event(), threading.Event()

    def other_writer() -> None:
        try:
            with transaction.atomic():
                insert()
                inserted.set()
                commit.wait(60)
        finally:
            connections.close_all()

    def release_once_blocked() -> None:
        try:
            for _ in range(1200):
                if waiting_on_a_lock():
                    break
                time.sleep(0.05)
        finally:
            commit.set()
            connections.close_all()

    other = threading.Thread(target=other_writer)
    other.start()
    assert inserted.wait(60), "the other writer's insert did not run"
    releaser = threading.Thread(target=release_once_blocked)
    releaser.start()
    try:
        yield
    finally:
        commit.set()
        releaser.join()
        other.join()


class ShiftedTimezone:
    """`django.utils.timezone` as a module under test sees it (monkeypatch the module's `timezone` with it),
    its `now()` `shift` off: a process whose clock runs ahead of or behind the database's."""

    def __init__(self, shift: timedelta):
        self.shift = shift

    def now(self) -> datetime:
        from django.utils import timezone

        return timezone.now() + self.shift

    def __getattr__(self, name: str):
        from django.utils import timezone

        return getattr(timezone, name)


def at_once(work: Callable[[], object], count: int = 2) -> list:
    """`work` run by `count` threads released together (a task sent by two beats, taken by two workers at the
    same moment): their results, once every thread has ended. An exception in a thread fails the test; each
    thread's database connection is closed, as a worker's would be."""
    from django.db import connection

    barrier, results, errors = threading.Barrier(count, timeout=30), [], []

    def one() -> None:
        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # noqa: BLE001 (reported by the test, not lost in the thread)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


WORKER_QUEUES = ("default", "inference")  # optimizer steps and forecasts go to inference


@contextmanager
def celery_worker(
    request: pytest.FixtureRequest, queues: tuple[str, ...] = WORKER_QUEUES
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """A real Celery worker process (`-P solo`: prefetch 1, acks late) on the test database and the real broker,
    consuming `queues`: its name, process and log, whose tail goes into the report of a test that fails. Not
    waited for: the caller waits for it to consume (queue_consumers). Stopped warm (SIGTERM), killed after 30 s."""
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)  # noqa: SIM115
    log_in_report(request, log.name, f"worker {name}")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", ",".join(queues), "-P", "solo",
         "-n", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": database_url()}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield name, process, Path(log.name)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class _ThreadRaising(threading.Thread):
    """A thread whose join() raises what its target raised (an assertion failed in it fails the test)."""

    def __init__(self, target: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._work, self.error = target, None

    def run(self) -> None:
        from django.db import connection

        try:
            self._work()
        except BaseException as exc:  # noqa: BLE001 (raised again by join, in the test's thread)
            self.error = exc
        finally:
            connection.close()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def in_thread(target: Callable[[], object]) -> threading.Thread:
    """`target` started in a thread of its own (its database connection closed at its end, as a worker's
    would be); the thread's join() raises what `target` raised, which a plain thread only printed."""
    thread = _ThreadRaising(target)
    thread.start()
    return thread
