"""The Idempotency-Key was stored as the client sent it for a day, while clients build keys from MRNs and names
(`S001-0000009-Kumar-1941-01-05`): only its HMAC (the cache keys' secret) is kept now, and migration core 0003
turns the raw keys kept before the deploy into theirs, so a retry across the deploy still replays."""

import importlib
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.clinical.models import Patient
from apps.core import idempotency
from apps.core.models import IdempotencyKey

PATIENTS = "/api/v1/patients/"
KEY = "S001-0000009-Kumar-1941-01-05"
BODY = {"mrn": "S001-0000009", "family_name": "Kumar", "given_name": "Ravi", "birth_date": "1941-01-05"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(api, issue_token) -> APIClient:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', 'patient:write', name='f1-app')}")
    return api


def _post(client, body=BODY, key=KEY):
    return client.post(PATIENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_key_is_kept_only_as_its_hmac_and_still_replays(app):
    first, second = _post(app), _post(app)
    assert (first.status_code, second.status_code) == (201, 201), second.content[:300]
    assert second.headers["Idempotent-Replayed"] == "true" and second.json() == first.json()
    [row] = IdempotencyKey.objects.values()
    kept = " ".join(str(value) for value in row.values())
    assert "Kumar" not in kept and "0000009" not in kept and "1941" not in kept
    assert row["key"] == idempotency.key_digest(row["client"], KEY) and len(row["key"]) == 64
    assert len(row["key"]) <= IdempotencyKey._meta.get_field("key").max_length
    other = _post(app, {**BODY, "mrn": "S001-0000010"})  # the same key, another body: still refused
    assert other.status_code == 422 and Patient.objects.count() == 1


def test_the_hmac_is_keyed_by_the_secret_and_scoped_by_client():
    assert idempotency.key_digest("client:1", KEY) != idempotency.key_digest("client:2", KEY)
    with override_settings(CACHE_KEY_SECRET="another-secret"):
        other_secret = idempotency.key_digest("client:1", KEY)
    assert other_secret != idempotency.key_digest("client:1", KEY)


def test_the_migration_hashes_the_keys_kept_before_it_so_a_retry_across_the_deploy_replays(app):
    first = _post(app)
    row = IdempotencyKey.objects.get()
    IdempotencyKey.objects.filter(pk=row.pk).update(key=KEY)  # as the old code kept it
    now = timezone.now()
    expired = IdempotencyKey.objects.create(
        client="client:0",
        key="MRN-OLD-Smith",
        request_sha256="0" * 64,
        created_at=now - timedelta(days=2),
        expires_at=now - timedelta(days=1),
    )
    migration = importlib.import_module("apps.core.migrations.0003_idempotency_key_hmac")
    migration.hash_stored_keys(apps, SimpleNamespace(connection=connection))
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [idempotency.key_digest(row.client, KEY)]
    assert not IdempotencyKey.objects.filter(pk=expired.pk).exists()
    retry = _post(app)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]


def test_rolling_the_migration_back_forgets_the_keys_so_a_second_forward_run_hashes_none_twice(app, capsys):
    """Backwards was a no-op: the hashed rows survived, the next forward run hashed them again, and a retry after
    it created the resource a second time (an upgrade rehearsed as forward, back, forward)."""
    _post(app)
    migration = importlib.import_module("apps.core.migrations.0003_idempotency_key_hmac")
    editor = SimpleNamespace(connection=connection)
    [operation] = [op for op in migration.Migration.operations if hasattr(op, "reverse_code")]
    operation.reverse_code(apps, editor)
    assert not IdempotencyKey.objects.exists()
    assert "1 Idempotency-Key(s) deleted" in capsys.readouterr().out
    migration.hash_stored_keys(apps, editor)  # forward again: nothing left to hash twice
    assert not IdempotencyKey.objects.exists()
    retry = _post(app)  # treated as new, as after 24 h: the patient exists, so a duplicate MRN, never a second one
    assert retry.status_code == 400 and "mrn" in retry.json()["errors"]
    assert Patient.objects.count() == 1
