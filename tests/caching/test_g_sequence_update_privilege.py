"""nextval needs USAGE or UPDATE on the sequence; the guard on every draw (caching: has_sequence_privilege) asked
for USAGE alone, so a role granted UPDATE on the restore watermark's sequence (and no USAGE) drew nothing: restores
went undetected and every poll logged the ERROR saying to grant USAGE, though nextval works for it. The role is a
real one (SET ROLE), rolled back with the test's transaction."""

from __future__ import annotations

import logging
import os

import pytest
from django.db import connection

from apps.caching.stack import RESTORE_SEQUENCE
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db


@pytest.fixture
def update_only_role():
    """This test's session as a role with every table's rights and UPDATE, not USAGE, on the sequence."""
    name = f"cp_sequence_update_{os.getpid()}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} NOLOGIN")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}")
        cursor.execute(f"GRANT UPDATE ON SEQUENCE {RESTORE_SEQUENCE} TO {name}")
        cursor.execute(f"SET ROLE {name}")
        cursor.execute("SELECT has_sequence_privilege(%s, 'USAGE'), nextval(%s) > 0", [RESTORE_SEQUENCE] * 2)
        assert cursor.fetchone() == (False, True)  # no USAGE, and nextval works
    yield name
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def test_a_role_with_update_on_the_sequence_draws(update_only_role, caplog):
    stack = make_stack()
    with caplog.at_level(logging.WARNING, logger="apps.caching.stack"):
        stack.tick(force=True)
        stack.tick(force=True)
    assert stack._last_drawn is not None, "the poll drew nothing: restores are not detected"
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "may not use sequence" in m], messages
