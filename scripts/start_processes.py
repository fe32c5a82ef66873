"""`make run`'s process manager: honcho with the Procfile, holding the runtime folder for as long as it runs and
stopping its processes on a hang-up as on Ctrl-C.

honcho stops them on SIGINT and SIGTERM only. A closed terminal or a dropped SSH session (SIGHUP) killed honcho
alone, and api, live, worker and beat, each in a session of its own, ran on: the next `make run` found its
ports taken, and a leftover beat would have sent every schedule twice.
"""

import fcntl
import os
import signal
import sys
from pathlib import Path

MANAGER = os.getpid()


def _hang_up(signum, frame) -> None:
    if os.getpid() != MANAGER:
        return  # one of honcho's forked output readers: it must live on to report its process's end
    # The terminal is gone: honcho's lines about stopping would fail there and stop it half-way. (A log file
    # or a pipe still takes them.)
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        if stream.isatty():
            os.dup2(devnull, stream.fileno())
    os.kill(MANAGER, signal.SIGTERM)  # honcho's own stop: SIGTERM to each process, SIGKILL 5 s later


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


def _hold_var_dir():
    """A second `make run` on the same VAR_DIR (on other ports, as the port-in-use message suggests) ran a
    second beat on the same database: every schedule twice. The lock is the kernel's, so it never outlives
    its process, whatever stopped it."""
    var_dir = Path(os.environ.get("VAR_DIR") or "var").resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    lock = open(var_dir / "make-run.lock", "a")  # noqa: SIM115 - held until this process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(
            f"Another make run is using {var_dir} (its database, broker and schedules): stop it (Ctrl-C there),"
            " or give this one a folder of its own: make run VAR_DIR=/path PORT=9000 LIVE_PORT=9001"
        )
    return lock


if __name__ == "__main__":
    held = _hold_var_dir()
    if sys.argv[1:] == ["--check"]:  # before migrating and seeding: said at once, nothing touched
        sys.exit(0)
    from honcho.command import main

    signal.signal(signal.SIGHUP, _hang_up)
    sys.stdout = _Output(sys.stdout)
    main(sys.argv[1:])
