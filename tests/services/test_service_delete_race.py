"""A delete racing a row recorded against the service (an alert rule added while the delete checks): the check
said "nothing recorded", then the delete cascaded the new row away, silently. The delete now locks the
service row first: the insert waits for it and is refused (the service is gone), or it committed first and
the delete is refused. The other writer is a real second connection in a thread; the test waits on the
database's lock table (pg_stat_activity) with a generous deadline, never on a sleep."""

import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections

from apps.metrics.models import AlertRule
from apps.services import services as service_services
from apps.services.models import Service
from apps.services.services import service_create, service_delete

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_a_row_recorded_while_the_delete_checks_is_never_deleted_silently(monkeypatch):
    service = service_create(name="Sepsis model", slug="sepsis", kind="inference", route_prefix="api/v1/sepsis/")
    outcome: dict[str, object] = {}
    started = threading.Event()
    real_refusal = service_services.service_delete_refusal

    def insert_alert_rule():
        try:
            outcome["pid"] = connections["default"].cursor().connection.info.backend_pid
            started.set()
            AlertRule.objects.create(name="Sepsis p95", metric="p95_ms", threshold=800, service_id=service.pk)
            outcome["inserted"] = True
        except IntegrityError as exc:  # the service gone: the insert is refused, not silently lost later
            outcome["refused"] = exc
        finally:
            started.set()
            connections["default"].close()

    def check_while_another_writer_inserts(checked: Service) -> str | None:
        refusal = real_refusal(checked)  # nothing recorded yet
        writer = threading.Thread(target=insert_alert_rule, daemon=True)
        writer.start()
        assert started.wait(30)
        deadline = time.monotonic() + 30
        while writer.is_alive() and not ("pid" in outcome and _waiting_on_a_lock(outcome["pid"])):
            assert time.monotonic() < deadline, "the writer neither finished nor waited on the delete's lock"
            time.sleep(0.05)
        outcome["writer"] = writer
        return refusal

    monkeypatch.setattr(service_services, "service_delete_refusal", check_while_another_writer_inserts)
    try:
        service_delete(service=service)
        deleted = True
    except ValidationError:
        deleted = False
    outcome["writer"].join(30)
    assert not outcome["writer"].is_alive()
    if deleted:
        assert "refused" in outcome and not Service.objects.filter(pk=service.pk).exists()
    else:
        assert AlertRule.objects.filter(service_id=service.pk).count() == 1
