"""After a traffic run over every PHI path, no MRN, name or birth date is found where it must not be:
Redis keys and values, the L3 cache table, logs, metric labels and series, the audit trail's searchable
fields."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings

from apps.audit.models import AuditEvent
from apps.caching.models import CacheEntry, CacheScopeGeneration, CacheStat
from apps.caching.stack import default_stack
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import recorder

pytestmark = pytest.mark.django_db(transaction=True)

MRN, FAMILY, GIVEN, BIRTH = "MRN-77-4411", "Abernathy-Quill", "Zephyrine", "1958-03-14"


def _secrets() -> list[bytes]:
    return [MRN.encode(), FAMILY.encode(), GIVEN.encode(), BIRTH.encode(), FAMILY.lower().encode()]


def test_a_traffic_run_leaves_no_identifier_outside_the_clinical_tables(api, issue_token, client, caplog):
    caplog.set_level(logging.DEBUG)
    token = issue_token("patient:read", "patient:write", "clinical:read", "clinical:write", name="ward-app")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    created = api.post(
        "/api/v1/patients/",
        {"mrn": MRN, "family_name": FAMILY, "given_name": GIVEN, "birth_date": BIRTH, "sex": "female"},
        format="json",
        **auth,
    )
    assert created.status_code == 201
    patient_id = created.json()["id"]
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    for _ in range(2):  # the second pass is served from the cache
        assert api.post("/api/v1/patients/lookup/", {"mrn": MRN}, format="json", **auth).status_code == 200
        assert api.get(f"/api/v1/patients/{patient_id}/", **auth).status_code == 200
        assert api.get(f"/api/v1/patients/{patient_id}/vitals/?latest=true", **auth).status_code == 200
        assert api.get(f"/api/v1/patients/{patient_id}/medications/", **auth).status_code == 200
        assert api.get("/fhir/Patient", {"identifier": f"{settings.MRN_SYSTEM}|{MRN}"}, **auth).status_code == 200
        assert api.get("/fhir/Patient", {"family": FAMILY[:6], "birthdate": BIRTH}, **auth).status_code == 200
    posted = api.post("/fhir/Patient/_search", f"identifier={MRN}", content_type="application/x-www-form-urlencoded",
                      **auth)  # fmt: skip
    assert posted.status_code == 200
    api.post(f"/api/v1/patients/{patient_id}/vitals/", {"code": "8867-4", "value": 71, "effective_at": at},
             format="json", **auth)  # fmt: skip
    api.get(f"/api/v1/patients/{MRN}/", **auth)  # an identifier pushed into a URL by a careless client
    recorder.flush()
    default_stack().flush_stats()

    found: list[str] = []
    store = redis.Redis.from_url(settings.REDIS_URL)
    for key in store.scan_iter("*"):
        kind = store.type(key)
        values = [store.get(key)] if kind == b"string" else []
        if kind == b"zset":
            values = store.zrange(key, 0, -1)
        for blob in [key, *[v or b"" for v in values]]:
            found += [f"redis {key!r}" for secret in _secrets() if secret in blob]
    for row in CacheEntry.objects.all():
        found += [f"L3 {row.key[:8]}" for secret in _secrets() if secret in bytes(row.value) + row.key.encode()]
    for text in [*CacheScopeGeneration.objects.values_list("scope", flat=True),
                 *CacheStat.objects.values_list("namespace", flat=True),
                 *RequestRollup.objects.values_list("route", flat=True),
                 *RequestRollup.objects.values_list("client", flat=True)]:  # fmt: skip
        found += [f"db {text}" for secret in _secrets() if secret in text.encode()]
    exposition = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content
    found += ["/metrics" for secret in _secrets() if secret in exposition]
    for record in caplog.records:
        message = record.getMessage().encode()
        found += [f"log {record.name}" for secret in _secrets() if secret in message]
    for event in AuditEvent.objects.all():
        searchable = f"{event.resource_id}|{event.query_digest}|{event.actor_name}|{event.request_id}".encode()
        found += [f"audit #{event.seq}" for secret in _secrets() if secret in searchable]
    assert found == []
    assert AuditEvent.objects.filter(patient_id=patient_id).count() >= 12  # every read audited, cached or not


def test_gunicorns_error_log_does_not_write_request_targets(tmp_path):
    """gunicorn quotes a request line it cannot parse; an identifier search's MRN must not reach its log."""
    import os
    import socket
    import subprocess
    import time

    from tests.helpers import REPO_ROOT, VENV_BIN, closed_port, stop_group

    port, log = closed_port(), tmp_path / "gunicorn.log"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--config", "controlplane/gunicorn.conf.py", "--bind",
             f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"],
            cwd=REPO_ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    try:
        connection = None
        for _ in range(300):
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        assert connection is not None, f"gunicorn did not listen within 30 s: {log.read_text()[-2000:]}"
        with connection:
            connection.sendall(f"GET /fhir/Patient?identifier={MRN}\x01 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert connection.recv(4096).startswith(b"HTTP/1.1 400")
    finally:
        stop_group(server)
    written = log.read_text()
    assert "Invalid request from" in written and "[target redacted]" in written
    assert MRN not in written and "/fhir/Patient" not in written


def test_the_error_log_filter_redacts_an_unhandled_requests_target_and_nothing_else():
    import importlib.util

    from tests.helpers import REPO_ROOT

    spec = importlib.util.spec_from_file_location("gunicorn_conf", REPO_ROOT / "controlplane" / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)

    def logged(msg: str, *args) -> str:
        record = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, msg, args, None)
        assert conf.RedactRequestTargets().filter(record)
        return record.getMessage()

    assert (
        logged("Error handling request %s", f"/fhir/Patient?identifier={MRN}")
        == "Error handling request [target redacted]"
    )
    assert logged("Listening at: %s (%s)", "http://127.0.0.1:8000", 42) == "Listening at: http://127.0.0.1:8000 (42)"
    line = "Invalid HTTP request line: 'GET /fhir/Patient?name=O'Brien Anna HTTP/1.1'"
    assert logged(f"Invalid request from ip=10.0.0.7: {line}") == (
        "Invalid request from ip=10.0.0.7: Invalid HTTP request line: [target redacted]"
    )


def test_gunicorns_access_log_turned_on_without_a_format_writes_no_request_target(tmp_path):
    """`--access-logfile -` alone took gunicorn's default format: the request line (an identifier search's MRN
    in its query) and the referer, on every request."""
    import os
    import subprocess
    import time
    import urllib.request

    from tests.helpers import REPO_ROOT, VENV_BIN, closed_port, database_url, stop_group

    port, log = closed_port(), tmp_path / "access.log"
    # The test's own database, migrated: the developer's DATABASE_URL may name one that is not (a fresh
    # machine's), where the 401's audit record cannot be written and the answer is a 503.
    env = {**os.environ, "DATABASE_URL": database_url()}
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "controlplane.wsgi", "--config", "controlplane/gunicorn.conf.py", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket", "--access-logfile", str(log)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/fhir/Patient?identifier={MRN}",
                    headers={"Referer": f"http://127.0.0.1:{port}/dashboard/patients/{MRN}"},
                )
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError:
                break  # answered (401: no token)
            except OSError:
                time.sleep(0.1)
        for _ in range(50):
            if log.exists() and log.read_text():
                break
            time.sleep(0.1)
    finally:
        stop_group(server)
    written = log.read_text()
    assert '"GET" 401' in written
    assert MRN not in written and "/fhir/Patient" not in written
