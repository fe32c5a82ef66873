"""Reads go to a configured replica; writes, migrations and reads inside a writing transaction do not."""

import json

import pytest
from django.db import connections, transaction

from controlplane.db_router import PrimaryReplicaRouter
from tests.helpers import embedded_env, run_python


def test_replica_url_adds_a_pooled_replica_mirrored_in_tests(tmp_path):
    env = embedded_env(
        tmp_path,
        DATABASE_URL="postgres://app@primary:5432/cp",
        DATABASE_REPLICA_URL="postgres://app@replica:5432/cp",
        DB_POOL_MAX_SIZE="50",
    )
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "r = s.DATABASES['replica']; "
        "print(json.dumps([r['HOST'], r['OPTIONS']['pool']['max_size'], r['TEST']['MIRROR']]))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["replica", 50, "default"]


@pytest.mark.django_db(transaction=True)  # outside a test transaction, as a request would be
def test_router_sends_reads_to_the_replica_only_when_configured(monkeypatch):
    router = PrimaryReplicaRouter()
    assert router.db_for_read(None) is None  # no replica here: Django's default
    monkeypatch.setitem(connections.settings, "replica", connections.settings["default"])
    assert router.db_for_read(None) == "replica"
    with transaction.atomic():
        assert router.db_for_read(None) == "default"  # read-your-writes inside a transaction
    assert router.db_for_write(None) == "default"
    assert router.allow_migrate("replica", "clinical") is False
    assert router.allow_migrate("default", "clinical") is True


@pytest.mark.django_db(transaction=True)
def test_who_is_signed_in_is_read_on_the_primary(monkeypatch):
    """Users, groups, permissions and sessions: a lagging replica showed a fresh login or a changed role as
    it was before (sessions' own store reads the primary too: tests/core/test_session_primary.py)."""
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.sessions.models import Session

    from apps.clinical.models import Patient

    router = PrimaryReplicaRouter()
    monkeypatch.setitem(connections.settings, "replica", connections.settings["default"])
    for model in (User, Group, Permission, Session):
        assert router.db_for_read(model) == "default", model
    assert router.db_for_read(Patient) == "replica"
