"""`make run`'s process manager: honcho with the Procfile, holding the runtime folder for as long as it runs and
stopping its processes on a hang-up as on Ctrl-C, each through its own graceful shutdown.

honcho stops them on SIGINT and SIGTERM only. A closed terminal or a dropped SSH session (SIGHUP) killed honcho
alone, and api, live, worker and beat, each in a session of its own, ran on: the next `make run` found its
ports taken, and a leftover beat would have sent every schedule twice.
"""

import contextlib
import fcntl
import math
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

MANAGER = os.getpid()
# How a stop goes (Ctrl-C, a hang-up, one process ending): SIGTERM to each server's own process, alone (its
# graceful shutdown: gunicorn and uvicorn finish their requests, a Celery worker its running tasks, its pool
# children told by their own master); after STOP_GRACE_SECONDS, SIGQUIT (Celery's cold shutdown, which puts its
# unfinished tasks back on the queue); QUIT_GRACE_SECONDS after that, SIGKILL to whatever is left of each group.
# A second Ctrl-C moves on to the next step at once. honcho's own stop sent SIGTERM to each process group (a
# Celery worker's pool children were killed mid-task) and SIGKILL 5 s after the first process ended (beat ends
# at once, so the worker's running tasks were lost).


def _seconds(variable: str, default: float) -> float:
    """A grace period from the environment: a typo was a ValueError traceback naming nothing, "nan" never ended
    its step and a negative one skipped it. Refused here, at `make run`'s first step (--check)."""
    value = os.environ.get(variable) or ""
    try:
        seconds = float(value) if value.strip() else default
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        sys.exit(f"The environment variable {variable} must be a number of seconds, 0 or more; it is {value!r}.")
    return seconds


STOP_GRACE_SECONDS = _seconds("RUN_STOP_GRACE_SECONDS", 35)  # a Celery warm shutdown's time
QUIT_GRACE_SECONDS = _seconds("RUN_QUIT_GRACE_SECONDS", 10)
_STEPS = (signal.SIGTERM, signal.SIGQUIT, signal.SIGKILL)


def _hang_up(signum, frame) -> None:
    if os.getpid() != MANAGER:
        return  # one of honcho's forked output readers: it must live on to report its process's end
    # The terminal is gone: honcho's lines about stopping would fail there and stop it half-way. (A log file
    # or a pipe still takes them.)
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        if stream.isatty():
            os.dup2(devnull, stream.fileno())
    os.kill(MANAGER, signal.SIGTERM)  # the graceful stop below, as on Ctrl-C


class _Output:
    """honcho's stdout. A terminal gone before its hang-up reached us (or that sent none) failed honcho's next
    line with EIO: honcho ended on the exception, its processes left running. That is a hang-up too."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._gone()

    def _gone(self) -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        _hang_up(signal.SIGHUP, None)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _exec(command: str) -> str:
    """`command` run in the place of its shell, where it is one simple command (no operator outside quotes, no
    leading variable assignment)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:  # unbalanced quotes: the shell will say so
        return command
    compound = any(set(word) <= set("();<>|&") for word in words) or "`" in command
    if not words or compound or "=" in words[0] or words[0] == "exec":
        return command
    return f"exec {command}"


class _StopReports:
    """honcho's event queue as the manager's loop reads it: each process's end with the return code that
    `returncode(name, rc)` gives it."""

    def __init__(self, events, returncode) -> None:
        self._events = events
        self._returncode = returncode

    def get(self, *args, **kwargs):
        message = self._events.get(*args, **kwargs)
        if message.type == "stop":
            returncode = self._returncode(message.name, message.data["returncode"])
            message = message._replace(data={**message.data, "returncode": returncode})
        return message

    def __getattr__(self, name: str):
        return getattr(self._events, name)


def graceful_manager():
    """honcho's Manager, stopping as described at the top (STOP_GRACE_SECONDS)."""
    from honcho.manager import SIGNALS, Manager

    class GracefulManager(Manager):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._step = -1  # index into _STEPS of the last step begun
            self._step_at = 0.0
            self._signalled: dict[str, int] = {}  # process name: the last step it was sent
            self._forced: dict[str, str] = {}  # process name: the signal past SIGTERM it needed (SIGQUIT, SIGKILL)
            self._hurries = (
                0  # second signals not yet acted on (the watch acts: a handler may interrupt the lock's holder)
            )
            self._steps_lock = threading.RLock()

        def add_process(self, name, cmd, *args, **kwargs):
            # honcho runs each command with `sh -c`, and dash stays as the server's parent: SIGTERM to that pid
            # alone would end the shell and leave the server running, told nothing. `exec` makes the server the
            # process honcho started (a compound command is left as it is).
            return super().add_process(name, _exec(cmd), *args, **kwargs)

        def _start(self) -> None:
            # loop() has just set honcho's handlers; ours tell a second signal from the first.
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
            super()._start()  # the processes' readers are given the queue itself; loop() reads it through:
            self.events = _StopReports(self.events, self._stop_returncode)

        def loop(self) -> None:
            """honcho's loop; a process that outlasted its graceful shutdown (sent SIGQUIT or SIGKILL) is named,
            and the run's status is 1: it was 130 or 143 after a Ctrl-C or SIGTERM whatever became of them, so a
            worker killed mid-task (its task lost) looked like a clean stop. A graceful stop keeps 130 or 143."""
            super().loop()
            for name, signame in self._forced.items():
                self._system_print(f"{name} did not stop gracefully: it needed {signame}\n")
            # A process ended by a signal not of this stop (`kill -9`, the OOM killer) left honcho's rc as its
            # negative one, which the shell showed as 247 (-9) or 241 (-15): a process failed, status 1.
            if self._forced or (self.returncode is not None and self.returncode < 0):
                self.returncode = 1

        def _stop_returncode(self, name: str, returncode: int | None) -> int | None:
            """uvicorn (live) ends a graceful shutdown by raising again the SIGTERM that began it, so honcho
            reported `live.1 stopped (rc=-15)` at every Ctrl-C, as if it had failed. Ended by the SIGTERM
            this manager sent it, a process stopped as asked: rc 0. The same end with no SIGTERM from us (a
            crash, someone else's kill) is reported as it is, and so is any other end after ours."""
            with self._steps_lock:
                sent_term = name in self._signalled
            return 0 if sent_term and returncode == -signal.SIGTERM else returncode

        def _on_signal(self, signum, frame) -> None:
            self._system_print(f"{SIGNALS[signum]['name']} received\n")
            if self.returncode is None:
                self.returncode = SIGNALS[signum]["rc"]
            if self._step < 0:
                self.terminate()
            else:
                self._hurries += 1  # a second Ctrl-C: on to the next step now

        def terminate(self) -> None:
            """The first signal, or the first process to end: SIGTERM to each, and a watch for the next steps."""
            with self._steps_lock:
                if self._step >= 0:
                    return
                self._step, self._step_at = 0, time.monotonic()
            self._send_due()
            threading.Thread(target=self._watch, name="graceful-stop", daemon=True).start()

        def kill(self) -> None:
            # honcho's loop calls it 5 s after a process ended, and every moment after: the steps' own times rule.
            self._send_due()

        def _advance(self) -> None:
            with self._steps_lock:
                if self._step < len(_STEPS) - 1:
                    self._step, self._step_at = self._step + 1, time.monotonic()
            self._send_due()

        def _watch(self) -> None:
            while not self._all_stopped():
                waited = time.monotonic() - self._step_at
                if self._hurries:
                    self._hurries -= 1
                    self._advance()
                elif (self._step == 0 and waited >= STOP_GRACE_SECONDS) or (
                    self._step == 1 and waited >= QUIT_GRACE_SECONDS
                ):
                    self._advance()
                else:
                    self._send_due()  # a process that started after the stop began gets the step too
                time.sleep(0.2)

        def _send_due(self) -> None:
            with self._steps_lock:
                step = self._step
                due = [
                    (name, p["pid"])
                    for name, p in list(self._processes.items())
                    if p.get("pid") is not None and "returncode" not in p and self._signalled.get(name, -1) < step
                ]
                for name, _ in due:
                    self._signalled[name] = step
            signum = _STEPS[step]
            for name, pid in due:
                self._system_print(f"sending {signum.name} to {name} (pid {pid})\n")
                try:
                    if signum == signal.SIGKILL:
                        os.killpg(pid, signum)  # the whole group: nothing of it may outlive the run
                    else:
                        os.kill(pid, signum)  # the server alone: it stops its own children, its own way
                except ProcessLookupError:
                    continue  # ended meanwhile
                if signum != signal.SIGTERM:
                    with self._steps_lock:
                        self._forced[name] = signum.name

    return GracefulManager


# The embedded mode's SQLite database (patients' names, MRNs, birth dates) and its WAL files, which SQLite creates
# with the database's own mode.
DATABASE_FILES = (
    "controlplane.sqlite3",
    "controlplane.sqlite3-wal",
    "controlplane.sqlite3-shm",
    "controlplane.sqlite3-journal",
)


def _make_private(var_dir: Path) -> None:
    """The runtime folder and the database in it, readable by their owner alone: they were created under the
    usual umask (022), the database 644 in a 755 folder, so any local user could read every patient. What this
    run creates (this process runs under umask 077, and so do its steps and processes) is private from the start;
    a folder or database an earlier run left open is closed here, where it is ours to change."""
    for path in (var_dir, *(var_dir / name for name in DATABASE_FILES)):
        try:
            status = path.stat()
        except FileNotFoundError:
            continue
        if status.st_uid == os.geteuid() and status.st_mode & 0o077:
            path.chmod(stat.S_IMODE(status.st_mode) & ~0o077)


def _hold_var_dir():
    """A second `make run` on the same VAR_DIR (on other ports, as the port-in-use message suggests) ran a
    second beat on the same database: every schedule twice. The lock is the kernel's, so it never outlives
    its process, whatever stopped it."""
    var_dir = Path(os.environ.get("VAR_DIR") or "var").resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    _make_private(var_dir)
    lock = open(var_dir / "make-run.lock", "a")  # noqa: SIM115 - held until this process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(
            f"Another make run is using {var_dir} (its database, broker and schedules): stop it (Ctrl-C there),"
            " or give this one a folder of its own: make run VAR_DIR=/path PORT=9000 LIVE_PORT=9001"
        )
    return lock


def _check_settings() -> int:
    """The settings and the apps loaded (`manage.py check`), so that a bad setting (DATABASE_URL=nonsense, a value
    out of its range) stops `make run` here, in manage.py's one line, before migrating and seeding."""
    manage = Path(__file__).resolve().parent.parent / "manage.py"
    # Its "no issues" line is not this step's to say; problems go to stderr.
    command = [sys.executable, str(manage), "check"]
    return subprocess.run(command, stdout=subprocess.DEVNULL, check=False).returncode  # noqa: S603 - our own files


def _set_up(command: str) -> None:
    """One of `make run`'s set-up steps (migrate, seed), run by the shell while this process holds the runtime
    folder: they ran as the Makefile's own lines, unlocked, so a second `make run` refused only at its start had
    already migrated and seeded the running one's database (its services' base URLs, demo-credentials.json
    pointing at the second run's port). A Ctrl-C or a hang-up reaches the step from its terminal, as a shell's
    foreground command; a SIGTERM to this process is passed on. The run stops at a failed step, with its status
    (128 + the signal's number when a signal ended it: 130 after a Ctrl-C)."""
    step = subprocess.Popen(_exec(command), shell=True)  # noqa: S602 - the Makefile's own commands

    def _pass_on(signum, frame) -> None:
        with contextlib.suppress(ProcessLookupError):
            step.send_signal(signum)

    handlers = {
        signal.SIGINT: signal.SIG_IGN,  # the terminal sends it to the step too
        signal.SIGQUIT: signal.SIG_IGN,
        signal.SIGTERM: _pass_on,
        signal.SIGHUP: _pass_on,
    }
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        returncode = step.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if returncode:
        sys.exit(128 - returncode if returncode < 0 else returncode)


def _arguments(argv: list[str]) -> tuple[bool, list[str], list[str]]:
    """`[--check] [--then COMMAND]... [honcho's arguments]`: whether to check the settings first, the set-up
    steps, and what honcho is given (nothing: no start)."""
    check = argv[:1] == ["--check"]
    rest = argv[1:] if check else argv
    steps = []
    while rest[:1] == ["--then"] and len(rest) >= 2:
        steps.append(rest[1])
        rest = rest[2:]
    return check, steps, rest


if __name__ == "__main__":
    os.umask(0o077)  # see _make_private
    held = _hold_var_dir()
    check, steps, honcho_arguments = _arguments(sys.argv[1:])
    # Before migrating and seeding: said at once, nothing touched.
    if check and (returncode := _check_settings()):
        sys.exit(returncode)
    for command in steps:  # under the lock, as the processes that follow
        _set_up(command)
    if not honcho_arguments:
        sys.exit(0)
    import honcho.command
    from honcho.command import main

    honcho.command.Manager = graceful_manager()
    signal.signal(signal.SIGHUP, _hang_up)
    sys.stdout = _Output(sys.stdout)
    main(honcho_arguments)
