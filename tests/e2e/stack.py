"""The whole product as `make run` starts it (gunicorn for the API and the dashboard, uvicorn for the
live websocket), on its own PostgreSQL database and Redis db, with 100k synthetic patients: what the
browser test and bench/frontend.py drive Debian's Chromium against."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from tests.helpers import REPO_ROOT, stop_group

VENV_BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
# Chromium as root in a container, on a machine with no outside network: no sandbox, no GPU, and none of
# the background connections that would otherwise be refused at every start.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


@dataclass
class Stack:
    base: str
    live_port: int
    admin_password: str
    api_token: str
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)


def _manage(*args: str, env: dict[str, str], timeout: float = 900, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run([str(VENV_BIN / "python"), "manage.py", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    if done.returncode not in ok:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _database_ready(admin_url: str, name: str) -> str:
    """The database's URL, created when missing (kept between runs: 100k patients take a while to load)."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2).read()
            return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds}s")


def _e2e_database() -> str:
    """Beside the test run's own database, so runs given different databases never share (and reseed) one."""
    name = os.environ.get("DATABASE_URL", "").rsplit("/", 1)[-1].split("?", 1)[0]
    return f"{name}_e2e" if name.startswith("controlplane") else "controlplane_e2e"


def prepare(*, patients: int, var_dir: Path, database: str | None = None, redis_db: int | None = None,
            progress=print) -> dict[str, str]:  # fmt: skip
    """Migrate, seed the demo and load `patients` synthetic patients (only the ones missing). The Redis db
    (E2E_REDIS_DB, default 13) is flushed: one no other run on this Redis uses."""
    database = database or _e2e_database()
    redis_db = int(os.environ.get("E2E_REDIS_DB", "13")) if redis_db is None else redis_db
    admin_url = os.environ.get("E2E_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    env = {
        **os.environ,
        "DATABASE_URL": _database_ready(admin_url, database),
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "VAR_DIR": str(var_dir),
        "DEMO_ADMIN_PASSWORD": secrets.token_urlsafe(12),  # the database outlives this run's credentials file
    }
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()  # rate-limit windows and caches of an earlier run
    env.pop("CELERY_BROKER_URL", None)  # no worker runs here: tasks would wait in RabbitMQ forever
    var_dir.mkdir(parents=True, exist_ok=True)
    progress("migrating and seeding the demo")
    _manage("migrate", "--noinput", "-v0", env=env)
    _manage("seed_demo", env=env)
    have = int(_manage("shell", "-c", "from apps.clinical.models import Patient; print(Patient.objects.count())",
                       env=env).strip().splitlines()[-1])  # fmt: skip
    if have < patients:
        progress(f"loading {patients - have:,} synthetic patients (one day of vitals each)")
        _manage("load_synthetic", f"--patients={patients - have}", f"--first-index={have}", "--days=1",
                "--rounds-per-day=1", "--no-progress", env=env)  # fmt: skip
    forecasts = "from apps.scaling.models import WorkloadForecast; print(WorkloadForecast.objects.count())"
    if not int(_manage("shell", "-c", forecasts, env=env).strip().splitlines()[-1]):
        progress("forecasting the clinical API's workload (synthetic history)")
        _manage("scaling", "forecast", "--service=clinical-api", env=env)
    profiles = "from apps.inference.models import QuantizationProfile; print(QuantizationProfile.objects.count())"
    if not int(_manage("shell", "-c", profiles, env=env).strip().splitlines()[-1]):
        progress("measuring the embedding model's quantization modes")
        _manage("optimize", "model", "clinical-embeddings", "--inline", env=env, ok=(0, 1))  # 1: a target missed
    return env


def _listening_socket(port: int = 0) -> socket.socket:
    """A socket listening on a port of its own, handed to a server by its descriptor: no other process can
    take the port before the server starts, and no other test's server can answer on it in its place."""
    sock = socket.socket()
    # Linux lets a port be bound again while connections of a stopped server on it are closing only if both
    # that server's socket and the new one say so: the live process is restarted on its port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _live_command(fd: int) -> list[str]:
    return [str(VENV_BIN / "uvicorn"), "controlplane.asgi:application", f"--fd={fd}", "--no-access-log",
            "--lifespan=off", "--log-level=warning"]  # fmt: skip


def stop_live(stack: Stack) -> None:
    """Stop the live process (uvicorn), as a deploy or a crash would; `start_live` starts it again."""
    stop_group(stack.processes[1])


def start_live(stack: Stack) -> None:
    """A new live process on the port of the one `stop_live` stopped."""
    with _listening_socket(stack.live_port) as live_socket:
        stack.processes[1] = subprocess.Popen(_live_command(live_socket.fileno()), cwd=REPO_ROOT, env=stack.env,
                                              start_new_session=True, pass_fds=(live_socket.fileno(),))  # fmt: skip
    _wait_for(f"http://127.0.0.1:{stack.live_port}/healthz", stack.processes[1])


@contextlib.contextmanager
def running(env: dict[str, str], *, api_workers: int = 2) -> Iterator[Stack]:
    """gunicorn (API and dashboard) and uvicorn (live feed) as in the Procfile; stopped on exit."""
    with _listening_socket() as api_socket, _listening_socket() as live_socket:
        api_port, live_port = api_socket.getsockname()[1], live_socket.getsockname()[1]
        env = {**env, "LIVE_PORT": str(live_port)}
        commands = [
            [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--config", "controlplane/gunicorn.conf.py",
             f"--bind=fd://{api_socket.fileno()}", f"--workers={api_workers}", "--threads=8", "--no-control-socket",
             "--log-level=warning"],
            _live_command(live_socket.fileno()),
        ]  # fmt: skip
        processes = [
            subprocess.Popen(c, cwd=REPO_ROOT, env=env, start_new_session=True, pass_fds=(s.fileno(),))
            for c, s in zip(commands, (api_socket, live_socket), strict=True)
        ]
    try:
        base = f"http://127.0.0.1:{api_port}"
        _wait_for(base + "/healthz", processes[0])
        _wait_for(f"http://127.0.0.1:{live_port}/healthz", processes[1])
        credentials = json.loads((Path(env["VAR_DIR"]) / "demo-credentials.json").read_text())
        yield Stack(base, live_port, credentials["admin_password"], credentials["api_token"], env, processes)
    finally:
        for process in processes:
            stop_group(process)  # a stuck one is killed, not left running behind the tests


def log_in(page, stack: Stack) -> None:
    """Through the admin's login form, as a person would; lands on the dashboard."""
    page.goto(f"{stack.base}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", stack.admin_password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{stack.base}/dashboard/")


def api_traffic(
    stack: Stack, *, requests: int = 60, paths: tuple[str, ...] = ("/api/v1/patients/?page_size=5",)
) -> int:
    """Requests with the demo API token, as a clinical app would send them; the number that succeeded."""
    ok = 0
    for n in range(requests):
        request = urllib.request.Request(stack.base + paths[n % len(paths)],
                                         headers={"Authorization": f"Bearer {stack.api_token}"})  # fmt: skip
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=10) as response:
            ok += response.status == 200
    return ok
