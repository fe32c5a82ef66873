"""`make run`'s process manager: honcho with the Procfile, stopping its processes on a hang-up as on Ctrl-C.

honcho stops them on SIGINT and SIGTERM only. A closed terminal or a dropped SSH session (SIGHUP) killed honcho
alone, and api, live, worker and beat, each in a session of its own, ran on: the next `make run` found its
ports taken, and a leftover beat would have sent every schedule twice.
"""

import os
import signal
import sys

from honcho.command import main

MANAGER = os.getpid()


def _hang_up(signum, frame) -> None:
    if os.getpid() != MANAGER:
        return  # one of honcho's forked output readers: it must live on to report its process's end
    # The terminal is gone: honcho's lines about stopping would fail there and stop it half-way.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.dup2(devnull, sys.stderr.fileno())
    os.kill(MANAGER, signal.SIGTERM)  # honcho's own stop: SIGTERM to each process, SIGKILL 5 s later


if __name__ == "__main__":
    signal.signal(signal.SIGHUP, _hang_up)
    main(sys.argv[1:])
