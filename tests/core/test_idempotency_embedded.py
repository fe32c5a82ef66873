"""Idempotency-Key on the embedded mode's SQLite (`make run`'s default): the expired-key purge was PostgreSQL's
SQL only (`FOR UPDATE SKIP LOCKED`, `statement_timestamp()`), so every create carrying a key was a 503
`database_unavailable` there."""

import json

from tests.helpers import embedded_env, manage, run_python

CREATE_TWICE = """
import json, django
django.setup()
from datetime import timedelta
from django.utils import timezone
from rest_framework.test import APIClient
from apps.accounts.services import api_client_create
from apps.core.models import IdempotencyKey

token = api_client_create(name="embedded-idempotency", scopes=["patient:read", "patient:write"]).token
# An expired key of another client, which the claim's purge deletes.
IdempotencyKey.objects.create(client="client:0", key="old", request_sha256="0" * 64, response_status=201,
                              resource_id="1", created_at=timezone.now() - timedelta(days=2),
                              expires_at=timezone.now() - timedelta(hours=1))
api = APIClient(HTTP_AUTHORIZATION="Bearer " + token, HTTP_IDEMPOTENCY_KEY="retry-1")
body = {"mrn": "EMB-1", "family_name": "Doe", "given_name": "Jo", "birth_date": "1970-01-01"}
answers = [api.post("/api/v1/patients/", body, format="json") for _ in range(2)]
print(json.dumps({
    "statuses": [a.status_code for a in answers],
    "replayed": [a.headers.get("Idempotent-Replayed") for a in answers],
    "ids": [a.json().get("id") for a in answers],
    "expired_left": IdempotencyKey.objects.filter(key="old").count(),
}))
"""


def test_a_create_with_a_key_is_created_once_and_replayed_on_sqlite(tmp_path):
    env = embedded_env(tmp_path)
    migrate = manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    result = run_python(CREATE_TWICE, env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["statuses"] == [201, 201], result.stderr[-2000:]
    assert answer["replayed"] == [None, "true"]
    assert answer["ids"][0] == answer["ids"][1]
    assert answer["expired_left"] == 0
