import pytest

from apps.clinical.loader import synthetic_patients_load
from apps.optimizer import database
from apps.optimizer.database import index_create, index_states
from tests.clinical.support import LOAD_END
from tests.optimizer.support import sql


@pytest.fixture
def data():
    synthetic_patients_load(patients=40, days=1, seed=21, end=LOAD_END, batch_size=20, workers=1)


@pytest.fixture
def designed_indexes_restored():
    """The schema outlives a transactional test's flush: put back what a test dropped, drop what it made."""
    yield
    for (name,) in sql("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'dba\\_%%'"):
        sql(f'DROP INDEX "{name}"')
    sql("DROP TABLE IF EXISTS optimizer_not_an_index")
    for state in index_states():
        index_create(index=state["index"])


@pytest.fixture
def looks(monkeypatch) -> list[tuple]:
    """Each state `index_create` reads of the index (the real read; the list only records them)."""
    seen: list[tuple] = []
    read = database._index_state

    def recorded(cursor, index):
        state = read(cursor, index)
        seen.append(state)
        return state

    monkeypatch.setattr(database, "_index_state", recorded)
    return seen
