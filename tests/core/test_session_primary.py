"""Sessions are read from the primary: with a replica configured, the router sent them to it, and a replica
that had not caught up with the login's write made a fresh login look signed out."""

import pytest
from django.contrib.sessions.models import Session

from apps.core.sessions import SessionStore, unknown_sessions
from controlplane.db_router import PrimaryReplicaRouter

pytestmark = pytest.mark.django_db


@pytest.fixture
def sessions_routed_to_a_replica(monkeypatch):
    """The router as it is with DATABASE_REPLICA_URL set, for sessions; the alias it names does not exist
    here, so a session read that consults the router fails instead of reading a lagging copy."""
    real = PrimaryReplicaRouter.db_for_read

    def db_for_read(self, model, **hints):
        return "replica" if model is Session else real(self, model, **hints)

    monkeypatch.setattr(PrimaryReplicaRouter, "db_for_read", db_for_read)
    unknown_sessions.clear()
    yield
    unknown_sessions.clear()


def test_a_fresh_login_is_signed_in_on_its_next_request(client, admin_user, sessions_routed_to_a_replica):
    client.force_login(admin_user)
    response = client.get("/dashboard/")
    assert response.status_code in (200, 503)  # 503: no dashboard build here; never the login redirect


def test_the_store_reads_and_checks_keys_on_the_primary(sessions_routed_to_a_replica):
    store = SessionStore()
    store["ward"] = "A"
    store.create()
    assert SessionStore(store.session_key).load() == {"ward": "A"}
    assert store.exists(store.session_key)


def test_a_logout_deletes_the_session_on_the_primary(sessions_routed_to_a_replica):
    store = SessionStore()
    store.create()
    store.delete()
    assert not Session.objects.using("default").filter(session_key=store.session_key).exists()
