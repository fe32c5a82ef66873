"""A second `make run` on the runtime folder of a running one is refused before it migrates or seeds: started
while the first was seeding, it had migrated and seeded the first one's database (its services' base URLs and
demo-credentials.json pointing at the second run's port, where nothing listens) and only then said "Another make
run is using …"."""

import subprocess
from pathlib import Path

from tests.helpers import wait_for
from tests.test_make_run_processes import _make_run, _started_pids, _stop
from tests.test_make_run_processes import checkout as make_checkout  # noqa: F401 - the fixture

# manage.py records each call and does nothing else; the first seed_demo waits until the test releases it.
MANAGE = """import os, sys, time
with open('manage.calls', 'a') as calls:
    calls.write(' '.join(sys.argv[1:]) + '\\n')
if sys.argv[1] == 'seed_demo':
    try:
        os.close(os.open('seed.first', os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        sys.exit(0)
    while not os.path.exists('seed.release'):
        time.sleep(0.1)
"""


def _calls(folder: Path) -> list[str]:
    calls = folder / "manage.calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_a_second_make_run_while_the_first_seeds_migrates_and_seeds_nothing(make_checkout: Path) -> None:  # noqa: F811
    (make_checkout / "manage.py").write_text(MANAGE)
    first_log, second_log = make_checkout / "first.log", make_checkout / "second.log"
    first = _make_run(make_checkout, first_log)
    second: subprocess.Popen | None = None
    pids: list[int] = []
    try:
        wait_for(lambda: any(c.startswith("seed_demo") for c in _calls(make_checkout)), 60, "the first seed", first_log)
        first_calls = _calls(make_checkout)
        second = _make_run(make_checkout, second_log)  # other ports, as the port-in-use message suggests
        wait_for(
            lambda: second.poll() is not None or "started (pid=" in second_log.read_text(),
            60, "the second run to stop or start", second_log,
        )  # fmt: skip
        assert _calls(make_checkout) == first_calls, second_log.read_text()  # the running one's database untouched
        assert second.poll() is not None and second.returncode != 0
        assert "Another make run is using" in second_log.read_text()
        (make_checkout / "seed.release").touch()
        wait_for(lambda: len(_started_pids(first_log)) == 2, 60, "the first run's processes to start", first_log)
        pids = _started_pids(first_log)
        assert [call.split()[0] for call in _calls(make_checkout)] == ["check", "migrate", "seed_demo"]
    finally:
        (make_checkout / "seed.release").touch()
        _stop(first, pids)
        if second is not None:
            _stop(second, _started_pids(second_log))
