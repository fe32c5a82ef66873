"""`make test`'s script (scripts/test.sh) on a copy with stand-ins for ruff, npm, pytest and rabbitmqctl: it
stops non-zero on each kind of failure, and gives the suite a RabbitMQ vhost of its own. The services' ports
are the real ones the suite runs on, so nothing is started here."""

import os
import shutil
import subprocess
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
        # Each records its arguments (pytest also the broker it was given) and exits with STANDIN_<TOOL>_RC.
        folder = tmp_path / (".venv/bin" if tool in ("ruff", "pytest") else "bin")
        (folder / tool).write_text(
            f'#!/bin/sh\necho "$* broker=$CELERY_BROKER_URL" >> "{tmp_path}/{tool}.calls"\n'
            f"exit ${{STANDIN_{tool.upper()}_RC:-0}}\n"
        )
        (folder / tool).chmod(0o755)
    return tmp_path


def run_script(checkout: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("TEST_")}
    path = env.pop("PATH_ONLY", f"{checkout / 'bin'}{os.pathsep}{os.environ['PATH']}")
    environ.update(env, PATH=path)
    return subprocess.run(
        [shutil.which("bash"), "scripts/test.sh"],
        cwd=checkout,
        env=environ,
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
    assert calls(checkout, "pytest").strip().endswith("broker=amqp://guest:guest@127.0.0.1:5672//")


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


def _pytest_options_of_the_script(checkout: Path) -> list[str]:
    done = run_script(checkout)
    assert done.returncode == 0, done.stdout + done.stderr
    return calls(checkout, "pytest").split(" broker=")[0].split()


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
    assert "FAILED test_sample.py::test_always_fails" in done.stdout
    assert "1 failed, 1 passed" in done.stdout
