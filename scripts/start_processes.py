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
    # The terminal is gone: honcho's lines about stopping would fail there and stop it half-way.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.dup2(devnull, sys.stderr.fileno())
    os.kill(MANAGER, signal.SIGTERM)  # honcho's own stop: SIGTERM to each process, SIGKILL 5 s later


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
    main(sys.argv[1:])
