"""`optimize --inline` terminated by SIGTERM cancels its run and exits 2, but the command put the default
SIGTERM handler back on its way out: a supervisor's repeated SIGTERM arriving between the cancel and the
exit killed the process, exit status -15 instead of 2. The step waits, for real, on a Prometheus that does
not answer; the exit is held, deterministically, by a full stderr pipe while the third signal is sent."""

import os
import platform
import signal
import subprocess
import sys
import time

import pytest

from apps.optimizer.models import OptimizationRun
from apps.scaling import services as scaling_services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service
from tests.helpers import REPO_ROOT, database_url
from tests.optimizer.test_f5_sigterm_cancels import prometheus  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)

WRITE = {"x86_64": 1, "aarch64": 64}.get(platform.machine())


def _until(check, what: str, timeout: float = 120):
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _blocked_writing_stderr(pid: int) -> bool:
    """The process's main thread is in write(2, ...): its stderr pipe is full."""
    try:
        with open(f"/proc/{pid}/syscall") as status:
            fields = status.read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == str(WRITE) and int(fields[1], 16) == 2


def _fill(fd: int) -> None:
    """Fill the pipe behind the non-blocking `fd` until it holds no more."""
    while True:
        try:
            os.write(fd, b"\0" * 4096)
        except BlockingIOError:
            return


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        into.extend(chunk)


@pytest.mark.skipif(WRITE is None or not os.path.exists("/proc/self/syscall"), reason="reads Linux's /proc")
def test_a_sigterm_after_the_cancel_does_not_kill_the_exiting_command(prometheus, tmp_path):  # noqa: F811
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    scaling_services.scaling_policy_ensure(service, history_source=ScalingPolicy.HistorySource.PROMETHEUS)
    fifo = tmp_path / "stderr"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    child_end = os.open(fifo, os.O_WRONLY)  # blocking, for the command
    filler = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # an open file of its own: the child's stays blocking
    env = {**os.environ, "DATABASE_URL": database_url(), "SCALING_PROMETHEUS_URL": prometheus.url}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "optimize", "scaling", "--inline"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=child_end,
    )  # fmt: skip
    os.close(child_end)
    err = bytearray()
    try:
        assert prometheus.asked.wait(120), "the scaling step never asked Prometheus"
        run = OptimizationRun.objects.get()
        _drain(reader, err)
        _fill(filler)  # the command's next write to stderr (its verdict) waits until the test reads
        process.send_signal(signal.SIGTERM)
        _until(
            lambda: OptimizationRun.objects.filter(pk=run.pk, status=OptimizationRun.Status.FAILED).exists(),
            "the run to be cancelled",
        )
        process.send_signal(signal.SIGTERM)
        # The command has returned and says so on stderr: it is on its way out.
        _until(lambda: _blocked_writing_stderr(process.pid) or process.poll() is not None, "the command's end")
        process.send_signal(signal.SIGTERM)
        os.close(filler)
        filler = -1
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            _drain(reader, err)
            time.sleep(0.05)
        _drain(reader, err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if filler != -1:
            os.close(filler)
        os.close(reader)
    text = err.replace(b"\0", b"").decode(errors="replace")
    assert process.returncode == 2, text[-2000:]
    assert f"Terminated (SIGTERM): run #{run.pk} is cancelled." in text
