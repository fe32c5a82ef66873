"""`optimize database` on SQLite (the embedded setup): the plan's index and table names, from SQLite's own
EXPLAIN QUERY PLAN lines (a real in-memory database; the suite's own runs on PostgreSQL)."""

import sqlite3

from apps.optimizer.database import sqlite_plan_summary


def _plan(sql: str) -> list[str]:
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE patient (id INTEGER PRIMARY KEY, mrn TEXT UNIQUE, family TEXT);"
        "CREATE TABLE obs (id INTEGER PRIMARY KEY, patient_id INT, code TEXT, value REAL);"
        "CREATE INDEX obs_patient_code ON obs (patient_id, code);"
    )
    return [row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]


def test_indexes_and_whole_table_reads_are_named_as_on_postgresql():
    assert sqlite_plan_summary(_plan("SELECT * FROM patient WHERE mrn = 'x'")) == (["sqlite_autoindex_patient_1"], [])
    assert sqlite_plan_summary(_plan("SELECT * FROM patient WHERE id = 3")) == (["patient (rowid)"], [])
    assert sqlite_plan_summary(_plan("SELECT patient_id FROM obs WHERE patient_id = 3 AND code = 'hr'")) == (
        ["obs_patient_code"], [])  # fmt: skip
    assert sqlite_plan_summary(_plan("SELECT * FROM patient WHERE family LIKE 'Ok%'")) == ([], ["patient"])
