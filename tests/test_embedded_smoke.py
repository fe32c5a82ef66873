"""The embedded mode end to end: the real Procfile (api, live, worker, beat) on SQLite, a file cache,
the in-memory channel layer and the filesystem broker, with none of the service variables set."""

import contextlib
import http.cookiejar
import json
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from websockets.sync.client import connect

from tests.helpers import REPO_ROOT, VENV_BIN, embedded_env, free_port, manage, stop_group, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("embedded")
    port, live_port = free_port(), free_port()
    # Ten days of (synthetic) history and one backtest fold keep `optimize all`'s forecasts quick here.
    env = embedded_env(
        var_dir,
        CP_HOST="127.0.0.1",
        CP_PORT=str(port),
        LIVE_PORT=str(live_port),
        SCALING_HISTORY_DAYS="10",
        SCALING_BACKTEST_FOLDS="1",
    )
    migrate = manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    seed = manage("seed_demo", "--base-url", f"http://127.0.0.1:{port}", "--patients", "25", env=env)  # as `make run`
    assert seed.returncode == 0, seed.stderr
    log_path = var_dir / "honcho.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in teardown
    honcho = subprocess.Popen(
        [str(VENV_BIN / "python"), "scripts/start_processes.py", "-f", "Procfile", "start"],  # as `make run`
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        # Our own servers, by their start-up lines: another test's server that took one of these ports
        # would answer /healthz too, while ours retries the bind and gives up.
        listening = (f"Listening at: {base} ", f"Uvicorn running on http://127.0.0.1:{live_port} ")
        wait_for(lambda: _started(honcho, log_path, listening), 120, "the api and live processes", log_path)
        wait_for(lambda: _get(base + "/healthz")[0] == 200, 60, "the api process to answer /healthz", log_path)
        yield {"base": base, "live_port": live_port, "env": env, "seed": seed.stdout, "log": log_path}
    finally:
        stop_group(honcho, signal.SIGINT)  # Ctrl-C: the terminal's SIGINT reaches honcho (and make)
        log.close()
        left = _processes_of(var_dir)
        for process in left:
            process.kill()
        assert not left, f"still running after Ctrl-C: {[' '.join(p.cmdline()[:3]) for p in left]}"


def _processes_of(var_dir: Path) -> list[psutil.Process]:
    """This product's processes still alive, by the VAR_DIR they were started with: found even when one
    left its parent's session or was re-parented to init, where a walk of honcho's children misses it."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("VAR_DIR") == str(var_dir):
                found.append(process)
    _, alive = psutil.wait_procs(found, timeout=15)  # a shutdown still finishing
    return [p for p in alive if _not_zombie(p)]


def _not_zombie(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _get(url, opener=None):
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None, ""


def _started(honcho: subprocess.Popen, log: Path, lines: tuple[str, ...]) -> bool:
    text = log.read_text(errors="replace")
    if honcho.poll() is not None:
        pytest.fail(f"honcho stopped (exit {honcho.returncode}) before the product was up:\n{text[-3000:]}")
    return all(line in text for line in lines)


def test_readyz_is_all_ok_once_the_worker_beats(product):
    def all_ok():
        status, body = _get(product["base"] + "/readyz")
        return status == 200 and json.loads(body)["status"] == "ok"

    wait_for(all_ok, 60, "/readyz to report every check ok", product["log"])
    checks = json.loads(_get(product["base"] + "/readyz")[1])["checks"]
    assert {name: check["status"] for name, check in checks.items()} == dict.fromkeys(checks, "ok")


def test_schema_and_admin_login_are_served(product):
    status, body = _get(product["base"] + "/api/schema/?format=json")
    assert status == 200 and json.loads(body)["openapi"].startswith("3.")
    status, body = _get(product["base"] + "/admin/login/")
    assert status == 200 and "csrfmiddlewaretoken" in body


def test_a_task_sent_from_django_runs_on_the_worker(product):
    result = manage("ping_worker", "--timeout", "60", env=product["env"])
    assert result.returncode == 0, result.stderr
    assert "ran the task" in result.stdout


def test_demo_token_reaches_the_api(product):
    token = re.search(r"Bearer (\S+)'", product["seed"]).group(1)
    request = urllib.request.Request(product["base"] + "/api/v1/whoami/", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["name"] == "demo-clinical-app"


def test_admin_signs_in_opens_the_dashboard_and_receives_live_heartbeats_and_snapshots(product):
    password = re.search(r"password '([^']+)'", product["seed"]).group(1)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    _, login_page = _get(product["base"] + "/admin/login/", opener)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": csrf, "username": "admin", "password": password, "next": "/dashboard/"}
    ).encode()
    request = urllib.request.Request(product["base"] + "/admin/login/", data=form, headers={"Referer": product["base"]})
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
        assert response.url.endswith("/dashboard/")
        html = response.read().decode()
    assert f'"livePort": {product["live_port"]}' in html

    session = next(cookie.value for cookie in jar if cookie.name == "sessionid")
    with connect(
        f"ws://127.0.0.1:{product['live_port']}/ws/metrics/",
        additional_headers={"Cookie": f"sessionid={session}", "Origin": product["base"]},
        open_timeout=10,
    ) as socket:
        # One of each a second, in no fixed order: on a loaded machine a snapshot (a database read) can
        # come after two heartbeats, so read until both kinds have arrived rather than a fixed count.
        heartbeats, snapshots = [], []
        for _ in range(60):  # about a minute of heartbeats at most
            if len(heartbeats) >= 2 and snapshots:
                break
            message = json.loads(socket.recv(timeout=30))
            if message["type"] == "heartbeat":
                heartbeats.append(message["seq"])
            elif message["type"] == "snapshot":
                snapshots.append(message)
    assert len(heartbeats) >= 2 and heartbeats[1] == heartbeats[0] + 1, heartbeats
    assert snapshots, "no snapshot came with a minute of heartbeats"
    assert "overall" in snapshots[0]["data"]  # the live snapshot, on the embedded database


def test_clinical_data_loads_and_is_served_on_sqlite(product):
    assert "Loaded 25 patients" in product["seed"]  # the demo's patients, through load_synthetic
    token = re.search(r"Bearer (\S+)'", product["seed"]).group(1)
    request = urllib.request.Request(
        product["base"] + "/fhir/Patient?family=s&_count=5", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/fhir+json")
        bundle = json.loads(response.read())
    assert bundle["resourceType"] == "Bundle"
    # One shell for what the test reads and sets up, each `manage` a Django start-up of seconds: a patient (a read
    # by id goes through the compiled lookup, whose rows need SQLite's date converters), its vital signs in the order
    # a search pages them, then the optimizer's models disabled and the demo load plan shortened (both used below).
    shell = (
        "from apps.clinical.models import Observation as O, Patient as P; "
        "from apps.inference.models import ModelDeployment as D; "
        "from apps.benchmarks.models import BenchmarkPlan as B; "
        "p = P.objects.first(); print(p.pk, p.birth_date, p.mrn, list(O.objects.filter(patient=p, "
        "category='vital-signs').order_by('-effective_at', '-id').values_list('id', flat=True))); "
        "D.objects.update(enabled=False); "
        "B.objects.filter(name='clinical-api load').update(duration_seconds=5, users=3)"
    )
    prepared = manage("shell", "-c", shell, env=product["env"])
    assert prepared.returncode == 0, prepared.stderr
    patient_id, birth_date, mrn, expected = prepared.stdout.strip().splitlines()[-1].split(" ", 3)
    request = urllib.request.Request(
        product["base"] + f"/fhir/Patient/{patient_id}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["birthDate"] == birth_date
    # Searches compiled per shape bind datetimes as SQLite's text: every page, through the cursor.
    found, url = [], f"/fhir/Observation?patient={patient_id}&category=vital-signs&_count=4"
    while url:
        request = urllib.request.Request(product["base"] + url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            bundle = json.loads(response.read())
        found += [int(entry["resource"]["id"]) for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        url = url and url.removeprefix(product["base"])
    assert found == json.loads(expected) and len(found) > 4
    request = urllib.request.Request(
        product["base"] + f"/fhir/Patient?identifier={mrn}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert [entry["resource"]["id"] for entry in json.loads(response.read())["entry"]] == [patient_id]
    # On the product's own worker (the filesystem broker), then inline with a target no system meets.
    # Without the models' profiling (disabled above; tests/inference measures it): loading each model in seven modes
    # took past any deadline on a loaded machine, and nothing of it depends on the embedded defaults.
    optimize = manage("optimize", "all", "--timeout", "600", env=product["env"], timeout=660)
    assert "did not finish" not in optimize.stderr, optimize.stdout + optimize.stderr
    assert optimize.returncode in (0, 1), optimize.stdout + optimize.stderr  # 1: a measured target missed
    assert "patient_by_mrn" in optimize.stdout and re.search(r"run #\d+ succeeded", optimize.stdout)
    unreachable = manage("optimize", "all", "--inline", "--response-time", "0.000001", env=product["env"], timeout=600)
    assert unreachable.returncode == 1, unreachable.stdout + unreachable.stderr
    assert "MISSED  response_time" in unreachable.stdout
    # The demo load plan, shortened (above), on the product's own worker (benchmarks queue) against its API.
    bench = manage("bench", "run", "clinical-api load", "--wait", env=product["env"], timeout=180)
    # 1: a gate missed. The run's figures are this machine's at that moment (3 users beside a loaded CI run
    # made 93 req/s against the seeded 100): the run and its judging are what is tested here, not the figures.
    assert bench.returncode in (0, 1) and re.search(r"Run #\d+ succeeded", bench.stdout), bench.stdout + bench.stderr
    assert re.search(r"(PASS|FAIL) p95_ms: [\d.]+ \(limit", bench.stdout), bench.stdout
    verify = manage("audit", "verify", env=product["env"])
    assert verify.returncode == 0 and "intact" in verify.stdout
