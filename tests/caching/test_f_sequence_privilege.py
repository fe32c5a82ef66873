"""The app's database role granted the tables but not the restore watermark's sequence (caching 0006), as
`GRANT ... ON ALL TABLES IN SCHEMA public` leaves it (it covers no sequence, and the tables' identity columns need
none): every poll and every write that bumps a scope's generation failed on "permission denied for sequence". They
go on without the draw, and the poll says what to grant. The role is a real one (SET ROLE), rolled back with the
test's transaction."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

import pytest
from django.db import connection

from apps.caching.models import CacheScopeGeneration
from apps.caching.stack import RESTORE_SEQUENCE
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db


@contextmanager
def session_role(name: str, *sequence_grants: str):
    """This test's session as a real role with every table's rights and `sequence_grants` on the watermark."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} NOLOGIN")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}")
        for grant in sequence_grants:
            cursor.execute(f"GRANT {grant} ON SEQUENCE {RESTORE_SEQUENCE} TO {name}")
        cursor.execute(f"SET ROLE {name}")
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


@pytest.fixture
def tables_only_role():
    """This test's session as a role with every table's rights and none on the sequence."""
    with session_role(f"cp_tables_only_{os.getpid()}") as name:
        with connection.cursor() as cursor:
            cursor.execute("SELECT has_sequence_privilege(%s, 'USAGE')", [RESTORE_SEQUENCE])
            assert cursor.fetchone() == (False,)
        yield name


@pytest.fixture
def update_only_role():
    """nextval needs USAGE or UPDATE: a role with every table's rights and UPDATE, not USAGE, on the sequence."""
    with session_role(f"cp_sequence_update_{os.getpid()}", "UPDATE") as name:
        with connection.cursor() as cursor:
            cursor.execute("SELECT has_sequence_privilege(%s, 'USAGE'), nextval(%s) > 0", [RESTORE_SEQUENCE] * 2)
            assert cursor.fetchone() == (False, True)  # no USAGE, and nextval works
        yield name


def test_a_role_without_the_sequence_bumps_and_polls(tables_only_role, caplog):
    stack = make_stack()
    scope_key = stack.scope_key("patient:1")
    stack.invalidate_scopes(["patient:1"])
    stack.invalidate_scopes(["patient:1"])
    first = CacheScopeGeneration.objects.get(scope=scope_key).generation
    stack.invalidate_scopes(["patient:1"])
    assert CacheScopeGeneration.objects.get(scope=scope_key).generation > first

    with caplog.at_level(logging.WARNING, logger="apps.caching.stack"):
        stack.tick(force=True)
        stack.tick(force=True)
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "poll failed" in m], messages
    told = [m for m in messages if f"GRANT USAGE ON SEQUENCE {RESTORE_SEQUENCE}" in m]
    assert len(told) == 1, messages  # once, not every poll


def test_a_role_with_update_on_the_sequence_draws(update_only_role, caplog):
    """The guard on every draw asked for USAGE alone: a role granted UPDATE drew nothing (restores went
    undetected) and every poll logged the ERROR saying to grant USAGE, though nextval works for it."""
    stack = make_stack()
    with caplog.at_level(logging.WARNING, logger="apps.caching.stack"):
        stack.tick(force=True)
        stack.tick(force=True)
    assert stack._last_drawn is not None, "the poll drew nothing: restores are not detected"
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "may not use sequence" in m], messages
