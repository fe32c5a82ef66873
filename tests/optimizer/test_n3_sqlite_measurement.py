"""`optimize database` on the embedded SQLite database (`make run` with nothing set) measures its patterns
without holding SQLite's one write lock: audit records and metric rollups of other processes go on being
written. Runs in a fresh embedded setup (the suite's own database is PostgreSQL)."""

import json
import sqlite3

from tests.helpers import embedded_env, manage, run_python

# Each timed run of a pattern first writes from a connection of its own, as another process would, waiting
# at most 0.2 s for the lock (the product waits 20 s, then fails with "database is locked").
_MEASURE = """
import json, sqlite3
import django
django.setup()
from django.conf import settings
from apps.optimizer import database

path, measured, writes = settings.DATABASES["default"]["NAME"], database.wall_ms, []

def wall_ms(queryset):
    other = sqlite3.connect(path, timeout=0.2)
    try:
        with other:
            other.execute("INSERT INTO probe_writes (at) VALUES (1)")
        writes.append("written")
    except sqlite3.OperationalError as exc:
        writes.append(str(exc))
    finally:
        other.close()
    return measured(queryset)

database.wall_ms = wall_ms
rows = database.explain_patterns()
print(json.dumps({"writes": writes, "timed": [row["wall_ms"] is not None for row in rows]}))
"""


def test_other_processes_write_while_the_patterns_are_measured_on_sqlite(tmp_path):
    """Each pattern was measured in transaction.atomic(): BEGIN IMMEDIATE under the settings' transaction_mode,
    the write lock held through the EXPLAIN and five timed runs, and every other writer failed."""
    env = embedded_env(tmp_path)
    for command in (("migrate", "--noinput"), ("load_synthetic", "--patients", "5", "--days", "1")):
        done = manage(*command, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "controlplane.sqlite3") as db:
        db.execute("CREATE TABLE probe_writes (at INTEGER)")

    measured = run_python(_MEASURE, env, timeout=120)
    assert measured.returncode == 0, measured.stderr
    outcome = json.loads(measured.stdout.strip().splitlines()[-1])
    assert outcome["timed"] and all(outcome["timed"])
    assert outcome["writes"] == ["written"] * len(outcome["timed"])
