"""`make test`'s script (scripts/test.sh) on a copy with stand-ins for ruff, npm, pytest and rabbitmqctl: it
stops non-zero on each kind of failure, and gives the suite a RabbitMQ vhost of its own. The services' ports
are the real ones the suite runs on, so nothing is started here."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

TOOLS = ("ruff", "npm", "pytest", "rabbitmqctl", "chromium")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    (tmp_path / "frontend").mkdir()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "bin").mkdir()
    for tool in TOOLS:
        # Each records its arguments (pytest also the services it was given, and whether it ignores Ctrl-C) and
        # exits with STANDIN_<TOOL>_RC; the second pytest (its database's name ends in _2) with STANDIN_PYTEST2_RC.
        folder = tmp_path / (".venv/bin" if tool in ("ruff", "pytest") else "bin")
        record = "$*"
        if tool == "pytest":
            ignores_sigint = "$(python3 -c 'import signal; print(signal.getsignal(2) == signal.SIG_IGN)')"
            record += (
                f" | db=$DATABASE_URL redis=$REDIS_URL var=$VAR_DIR sigint_ignored={ignores_sigint}"
                " broker=$CELERY_BROKER_URL stdin=$(readlink /proc/$$/fd/0)"
            )
        second = 'case "$DATABASE_URL" in *_2) echo "second pytest output"; exit ${STANDIN_PYTEST2_RC:-0};; esac\n'
        (folder / tool).write_text(
            f'#!/bin/sh\necho "{record}" >> "{tmp_path}/{tool}.calls"\n'
            + (second if tool == "pytest" else "")
            + f"exit ${{STANDIN_{tool.upper()}_RC:-0}}\n"
        )
        (folder / tool).chmod(0o755)
    return tmp_path


def script_environment(checkout: Path, **env: str) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("TEST_")}
    path = env.pop("PATH_ONLY", f"{checkout / 'bin'}{os.pathsep}{os.environ['PATH']}")
    environ.update(env, PATH=path)
    return environ


def run_script(checkout: Path, *options: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("bash"), "scripts/test.sh", *options],
        cwd=checkout,
        env=script_environment(checkout, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def calls(checkout: Path, tool: str) -> str:
    path = checkout / f"{tool}.calls"
    return path.read_text() if path.exists() else ""


def test_the_suite_gets_a_rabbitmq_vhost_of_its_own(checkout: Path) -> None:
    done = run_script(checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "add_vhost controlplane_test" in calls(checkout, "rabbitmqctl")
    assert "set_permissions -p controlplane_test guest" in calls(checkout, "rabbitmqctl")
    # Not "/", where a developer's RabbitMQ-backed `make run` keeps its queues.
    assert "broker=amqp://guest:guest@127.0.0.1:5672/controlplane_test" in calls(checkout, "pytest")


def test_without_rabbitmqctl_rights_the_default_vhost_is_used_and_said(checkout: Path) -> None:
    done = run_script(checkout, STANDIN_RABBITMQCTL_RC="69")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no RabbitMQ vhost controlplane_test" in done.stderr
    (only,) = pytest_runs(checkout)  # one vhost, "/": a second pytest would purge the first's queues
    assert only["broker"] == "amqp://guest:guest@127.0.0.1:5672//"


def test_a_broker_named_for_the_tests_is_used_as_given(checkout: Path) -> None:
    done = run_script(checkout, TEST_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672/mine")
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls(checkout, "rabbitmqctl") == ""
    assert "broker=amqp://guest:guest@127.0.0.1:5672/mine" in calls(checkout, "pytest")


@pytest.mark.parametrize("failing", ["ruff", "npm", "pytest"])
def test_each_kind_of_failure_stops_the_run_non_zero(checkout: Path, failing: str) -> None:
    done = run_script(checkout, **{f"STANDIN_{failing.upper()}_RC": "1"})
    assert done.returncode != 0, done.stdout + done.stderr
    if failing != "pytest":
        assert calls(checkout, "pytest") == ""  # a lint or dashboard failure is not hidden by a green suite


def test_chromium_that_cannot_be_installed_stops_the_run_before_the_suite(checkout: Path) -> None:
    (checkout / "bin" / "chromium").unlink()
    for tool in ("dirname", "id", "mktemp", "rm", "sudo"):  # what the script uses besides the stand-ins
        if shutil.which(tool):
            (checkout / "bin" / tool).symlink_to(shutil.which(tool))
    (checkout / "bin" / "apt-get").write_text("#!/bin/sh\nexit 100\n")  # offline, or no rights
    (checkout / "bin" / "apt-get").chmod(0o755)
    done = run_script(checkout, PATH_ONLY=str(checkout / "bin") + os.pathsep + str(checkout / ".venv/bin"))
    assert done.returncode != 0, done.stdout + done.stderr
    assert "chromium is needed" in done.stderr
    assert calls(checkout, "pytest") == ""


def pytest_runs(checkout: Path) -> list[dict[str, str]]:
    """Each pytest the script ran: its options, and the services and folder it was given."""
    runs = []
    for line in calls(checkout, "pytest").splitlines():
        options, services = line.split(" | ")
        runs.append({"options": options, **dict(pair.split("=", 1) for pair in services.split())})
    return sorted(runs, key=lambda run: run["db"])  # the first process's database, then the second's (_2)


def _pytest_options_of_the_script(checkout: Path) -> list[str]:
    done = run_script(checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    return pytest_runs(checkout)[0]["options"].split()


def test_the_suite_runs_as_two_pytests_on_services_of_their_own(checkout: Path) -> None:
    """Two at once, on a database, Redis db, vhost and runtime folder each; the second's folders are the ones
    the first ignores, so every test runs exactly once."""
    done = run_script(checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = pytest_runs(checkout)
    assert first["db"] == "postgres://postgres@127.0.0.1:5432/controlplane"
    assert second["db"] == "postgres://postgres@127.0.0.1:5432/controlplane_2"
    assert (first["redis"], second["redis"]) == ("redis://127.0.0.1:6379/15", "redis://127.0.0.1:6379/12")
    assert first["broker"].endswith("/controlplane_test") and second["broker"].endswith("/controlplane_test_2")
    assert "add_vhost controlplane_test_2" in calls(checkout, "rabbitmqctl")
    assert first["var"] != second["var"]
    second_paths = [option for option in second["options"].split() if option.startswith("tests/")]
    ignored = [
        option.removeprefix("--ignore=") for option in first["options"].split() if option.startswith("--ignore=")
    ]
    assert second_paths and ignored == second_paths
    assert "tests/e2e" in second_paths  # the e2e stack's database and Redis db 13 are one per machine
    for path in second_paths:
        assert (REPO_ROOT / path).exists(), path  # a folder renamed in the suite but not here
    assert first["sigint_ignored"] == second["sigint_ignored"] == "False"  # Ctrl-C stops both, fixtures torn down
    assert one_process_notes(done) == []


def test_a_failure_in_the_second_pytest_alone_fails_the_run_and_its_output_is_shown(checkout: Path) -> None:
    done = run_script(checkout, STANDIN_PYTEST2_RC="1")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "second pytest output" in done.stdout
    assert "first process exit 0, second 1" in done.stdout


def one_process_notes(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if "one pytest process" in line]


@pytest.mark.parametrize(
    ("options", "env", "reason"),
    [
        (["-k", "readyz"], {}, "options were given (-k readyz)"),
        ([], {"TEST_SHARDS": "1"}, "TEST_SHARDS=1"),
        ([], {"TEST_CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/mine"}, "no second RabbitMQ vhost"),
        ([], {"STANDIN_RABBITMQCTL_RC": "69"}, "no second RabbitMQ vhost"),
        ([], {"TEST_REDIS_URL": "redis://127.0.0.1:6379/4"}, "TEST_REDIS_URL without TEST_REDIS_URL_2"),
        ([], {"TEST_DATABASE_URL": "postgres://postgres@127.0.0.1:5432"}, "TEST_DATABASE_URL names no database"),
    ],
)
def test_one_pytest_process_says_why_in_one_line(
    checkout: Path, options: list[str], env: dict[str, str], reason: str
) -> None:
    done = run_script(checkout, *options, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    (only,) = pytest_runs(checkout)
    assert only["options"].endswith(" ".join(options))
    (note,) = one_process_notes(done)
    assert reason in note


@pytest.mark.parametrize("first", ["redis://127.0.0.1:6379/4", "redis://cache:6380/12", "unix:///run/redis.sock?db=15"])
def test_a_given_redis_url_gets_no_second_db_derived_from_it(checkout: Path, first: str) -> None:
    """Only the default db 15 gets 12 beside it: a db derived from a given one could be one another run (or anyone
    told to keep off 12) uses, and both would flush it. A given TEST_REDIS_URL needs TEST_REDIS_URL_2 for two."""
    assert run_script(checkout, TEST_REDIS_URL=first).returncode == 0
    assert [run["redis"] for run in pytest_runs(checkout)] == [first]
    (checkout / "pytest.calls").unlink()
    given = "redis://127.0.0.1:6379/7"
    assert run_script(checkout, TEST_REDIS_URL=first, TEST_REDIS_URL_2=given).returncode == 0
    assert [run["redis"] for run in pytest_runs(checkout)] == [first, given]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("postgres://ci:pw@db:5432/app", "postgres://ci:pw@db:5432/app_2"),
        ("postgres://db:5432/app?sslmode=require", "postgres://db:5432/app_2?sslmode=require"),
        ("postgres://db:5432", None),  # not "postgres://db:5432_2"
        ("postgres://db:5432/", None),
    ],
)
def test_the_second_database_is_the_first_ones_name_with_2(checkout: Path, first: str, second: str | None) -> None:
    assert run_script(checkout, TEST_DATABASE_URL=first).returncode == 0
    assert [run["db"] for run in pytest_runs(checkout)] == [first] + ([second] if second else [])


def test_pytest_reads_the_scripts_stdin(checkout: Path) -> None:
    """Run in the background (to handle signals meanwhile), pytest still has the terminal: --pdb works."""
    given = checkout / "stdin.txt"
    given.write_text("")
    with given.open() as stdin:
        command = [shutil.which("bash"), "scripts/test.sh", "--pdb"]
        done = subprocess.run(command, cwd=checkout, env=script_environment(checkout), stdin=stdin, timeout=120)
    assert done.returncode == 0
    (only,) = pytest_runs(checkout)
    assert only["stdin"] == str(given)


# Stands in for both pytests until it is interrupted: it records the signal and whether its runtime folder was
# still there while it stopped, and prints a line (the second's goes to its log).
BLOCKING_PYTEST = """
import os, signal, sys, time
from pathlib import Path

checkout = Path(__file__).resolve().parents[2]
half = "second" if os.environ["DATABASE_URL"].endswith("_2") else "first"


def stop(signum, frame):
    with (checkout / f"{half}.signals").open("a") as record:
        record.write(f"{signal.Signals(signum).name} var_dir_there={os.path.isdir(os.environ['VAR_DIR'])}\\n")
    time.sleep(2)  # its teardown, which a second SIGINT would cut short (and be recorded)
    print(f"{half} pytest stopped", flush=True)
    sys.exit(2)


signal.signal(signal.SIGINT, stop)
(checkout / f"{half}.pid").write_text(f"{os.getpid()} {os.environ['VAR_DIR']}")
time.sleep(300)
"""


def _started(checkout: Path) -> dict[str, list[str]]:
    """Each blocking pytest that is ready for a signal: its pid and runtime folder."""
    files = {half: checkout / f"{half}.pid" for half in ("first", "second")}
    return {half: file.read_text().split() for half, file in files.items() if file.exists()}


def _said(output: Path) -> int:
    """How many signals the script has said it took (a line each)."""
    return sum(line.startswith("== SIG") for line in output.read_text().splitlines())


def _signalled(checkout: Path) -> dict[str, str]:
    """The signals each blocking pytest has recorded."""
    return {
        half: (checkout / f"{half}.signals").read_text()
        for half in _started(checkout)
        if (checkout / f"{half}.signals").exists()
    }


SCRIPT, GROUP = "the script", "the group"


@pytest.mark.parametrize(
    "sent",
    [
        [(signal.SIGTERM, SCRIPT)],
        [(signal.SIGHUP, SCRIPT)],
        [(signal.SIGINT, GROUP)],
        [(signal.SIGINT, SCRIPT)],
        [(signal.SIGINT, SCRIPT), (signal.SIGTERM, SCRIPT)],
        [(signal.SIGINT, GROUP), (signal.SIGTERM, SCRIPT)],
    ],
    ids=[
        "TERM",
        "HUP",
        "Ctrl-C to the group",
        "INT to the script",
        "INT to the script, then TERM",
        "Ctrl-C, then TERM",
    ],
)
def test_a_stopped_run_stops_both_pytests_and_shows_the_seconds_output(
    checkout: Path, sent: list[tuple[int, str]]
) -> None:
    """A TERM, HUP or INT to the script alone (a CI cancel, `kill`) reaches both pytests as a Ctrl-C; a Ctrl-C to
    the group reaches each itself. Either way each gets one, whatever follows (a second would cut its teardown
    short): an INT to the script alone was passed on to neither, and a TERM after it was ignored too, so both ran on.
    Both are waited for (their folders are there while they stop, and gone after), the second's output is shown,
    and the run fails."""
    (checkout / ".venv/bin/pytest").write_text(f"#!{sys.executable}\n{BLOCKING_PYTEST}")
    output = checkout / "output.txt"
    with output.open("w") as sink:
        script = subprocess.Popen(
            [shutil.which("bash"), "scripts/test.sh"],
            cwd=checkout,
            env=script_environment(checkout),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started: dict[str, list[str]] = {}
    try:
        deadline = time.monotonic() + 120
        while len(started) < 2 and time.monotonic() < deadline and script.poll() is None:
            time.sleep(0.1)
            started = _started(checkout)
        assert len(started) == 2, output.read_text()
        for number, (signum, to) in enumerate(sent, start=1):
            if number > 1:  # the next once the script has said what it did with the last (at once, in no set order)
                deadline = time.monotonic() + 120
                while _said(output) < number - 1 and time.monotonic() < deadline and script.poll() is None:
                    time.sleep(0.1)
                assert _said(output) == number - 1, (sent[number - 2], _signalled(checkout), output.read_text())
            if to == GROUP:
                os.killpg(script.pid, signum)
            else:
                os.kill(script.pid, signum)
        assert script.wait(timeout=120) != 0, output.read_text()
    finally:
        for pid, _ in _started(checkout).values():  # after a failure, none is left running
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        if script.poll() is None:
            script.kill()
    shown = output.read_text()
    for half, (_, var_dir) in started.items():
        signals = checkout / f"{half}.signals"
        assert (signals.read_text() if signals.exists() else "") == "SIGINT var_dir_there=True\n", (half, shown)
        assert not Path(var_dir).exists()
    assert "second pytest stopped" in shown.split("== pytest, the second process")[-1], shown


def test_a_failure_is_rerun_and_one_that_fails_every_time_still_fails_the_run(checkout: Path, tmp_path: Path) -> None:
    """The script's rerun options on a real pytest: a flake passes and is reported as a rerun, a steady failure
    exits non-zero after its reruns."""
    options = _pytest_options_of_the_script(checkout)
    assert "--reruns" in options
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_sample.py").write_text(
        "from pathlib import Path\n"
        "def test_flaky(tmp_path_factory):\n"
        "    marker = Path(__file__).with_suffix('.ran')\n"
        "    if not marker.exists():\n"
        "        marker.write_text('once')\n"
        "        raise AssertionError('first try fails')\n"
        "def test_always_fails():\n"
        "    raise AssertionError('every time')\n"
    )
    pytest = [str(REPO_ROOT / ".venv" / "bin" / "pytest"), "-p", "no:cacheprovider", "-p", "no:django"]
    done = subprocess.run([*pytest, *options, "test_sample.py"], cwd=suite, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout
    assert "RERUN test_sample.py::test_flaky" in done.stdout
    assert "AssertionError: first try fails" in done.stdout  # the attempt that failed, not only its name
    assert "FAILED test_sample.py::test_always_fails" in done.stdout
    assert "1 failed, 1 passed" in done.stdout
