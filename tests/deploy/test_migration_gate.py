"""Every Deployment's pods wait for the migration Job: their init container's command, run as the kubelet
would (no cluster here), keeps waiting on a database without this code's migrations and finishes once the
Job's command has applied them."""

from __future__ import annotations

import signal
import subprocess

import pytest
import yaml

from tests.helpers import REPO_ROOT, embedded_env, stop_group, wait_for

pytestmark = pytest.mark.slow

BASE = REPO_ROOT / "deploy" / "k8s" / "base"


def _gate_commands() -> dict[str, list[str]]:
    """{Deployment: its wait-for-migrations command}."""
    commands = {}
    for path in BASE.glob("*-deployment.yaml"):
        pod = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]
        [gate] = [c for c in pod.get("initContainers", []) if c["name"] == "wait-for-migrations"]
        commands[path.stem] = gate["command"]
    return commands


def _job_command() -> list[str]:
    return yaml.safe_load((BASE / "migrate-job.yaml").read_text())["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]


def test_pods_start_only_once_the_job_has_migrated(tmp_path):
    commands = _gate_commands()
    # api, live, worker, longworker, beat: each waits for the Job with the same command
    assert len(commands) == 5 and len({tuple(c) for c in commands.values()}) == 1, commands
    env = embedded_env(tmp_path)  # a fresh SQLite database: no migration applied, as before a release's Job
    log = tmp_path / "gate.log"
    gate = subprocess.Popen(
        next(iter(commands.values())), cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: log.read_text().count("waiting for controlplane-migrate") >= 2, 120, "no wait", log)
        assert gate.poll() is None

        job = _job_command()
        assert job[:3] == ["python", "manage.py", "migrate"]
        migrated = subprocess.run(job, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert migrated.returncode == 0, migrated.stderr[-3000:]

        assert gate.wait(timeout=120) == 0
    finally:
        if gate.poll() is None:
            stop_group(gate, signal.SIGKILL)
