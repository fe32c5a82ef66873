"""`optimize database` on the embedded SQLite database (`make run` with nothing set): a designed index
that is missing is proposed and built, as on PostgreSQL. Runs the command in a fresh embedded setup."""

import sqlite3

from tests.helpers import embedded_env, manage


def test_a_missing_index_is_proposed_and_built_on_sqlite(tmp_path):
    """It proposed nothing on SQLite: the index advisor read PostgreSQL's catalog only."""
    env = embedded_env(tmp_path)
    for command in (("migrate", "--noinput"), ("load_synthetic", "--patients", "20", "--days", "1")):
        done = manage(*command, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
    database = tmp_path / "controlplane.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("DROP INDEX clinical_obs_patient_cat")

    applied = manage("optimize", "database", "--inline", "--apply", env=env, timeout=300)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "APPLIED   [database] Create index clinical_obs_patient_cat" in applied.stdout
    assert "brin" not in applied.stdout  # PostgreSQL's index types are not proposed there
    with sqlite3.connect(database) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "clinical_obs_patient_cat" in names
    again = manage("optimize", "database", "--inline", env=env, timeout=300)
    assert "Create index" not in again.stdout and "clinical_obs_patient_cat" in again.stdout
