"""A CONCURRENTLY build ends its progress report and lets go of its table lock before its last transaction
commits the index valid. An applier that saw the index INVALID with no build reported, twice 0.5 s apart,
took it for a leftover: on a loaded host, where that commit came later, it dropped the index the build had
just made and built it again. Here that last moment is held open by a session that has marked the INVALID
index valid and not committed (the build's own last update; real PostgreSQL, as superuser)."""

import threading

import pytest
from django.db import connection

from apps.optimizer.database import designed_index_sql, index_create
from tests.helpers import wait_for
from tests.optimizer.support import INDEX, connect, index_state, sql

pytestmark = [
    pytest.mark.django_db(transaction=True),  # CREATE INDEX CONCURRENTLY cannot run in a transaction
    pytest.mark.usefixtures("designed_indexes_restored"),
]


def test_an_index_whose_build_has_not_yet_committed_it_valid_is_not_rebuilt(data, looks):
    sql("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)", [INDEX])
    committing = connect()
    committing.autocommit = False
    committing.execute("UPDATE pg_index SET indisvalid = true WHERE indexrelid = to_regclass(%s)", [INDEX])
    outcome, errors = [], []

    def apply() -> None:
        try:
            outcome.append(index_create(index=INDEX))
        except Exception as exc:  # noqa: BLE001 - the test reports what the applier met
            errors.append(repr(exc))
        finally:
            connection.close()

    applier = threading.Thread(target=apply)
    applier.start()
    try:
        # Three looks: the old code gave up after two, and its DROP INDEX CONCURRENTLY waited on `committing`.
        blocked = "SELECT EXISTS (SELECT FROM pg_stat_activity a WHERE %s = ANY(pg_blocking_pids(a.pid)))"
        wait_for(lambda: len(looks) >= 3 or sql(blocked, [committing.info.backend_pid])[0][0] or not applier.is_alive(),
                 60, "the applier to look three times or to wait on the uncommitted update")  # fmt: skip
        assert looks[:3] == [(False, True)] * 3, (looks, errors)
    finally:
        committing.commit()
        applier.join(60)
        committing.close()
    assert not applier.is_alive() and errors == []
    assert outcome == [{"index": INDEX, "sql": designed_index_sql(INDEX), "note": "already present"}]
    assert index_state(INDEX) == (True,)
