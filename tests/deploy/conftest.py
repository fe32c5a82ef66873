import uuid
from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture
def throwaway_database() -> Iterator[str]:
    """The address of an empty database of the test's own on the suite's PostgreSQL server, dropped afterwards:
    for migrations walked backwards, which the shared test database must never see."""
    from django.db import connection

    db = connection.settings_dict
    server = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"], "password": db["PASSWORD"] or None}
    name = f"{db['NAME'][:40]}_walk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**server, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{db['USER']}@{db['HOST']}:{server['port']}/{name}"
    finally:
        with psycopg.connect(**server, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
