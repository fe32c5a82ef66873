"""The embedded default (SQLite, `make run`) refuses edits of the trail as PostgreSQL does, and `flush` (what
transactional tests run between tests) still empties it. A real SQLite database in a process of its own."""

import json

from tests.helpers import embedded_env, manage, run_python

EDITS = """
import django, json
django.setup()
from django.core.management import call_command
from django.db import DatabaseError, connection
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_record_batch

audit_record_batch([AuditEntry(actor_type="system", actor_id=None, actor_name="test", action="read",
                               resource_type="Patient", resource_id="1")])
refused = {}
for statement in ("UPDATE audit_auditevent SET actor_name = 'someone else'", "DELETE FROM audit_auditevent",
                  "DELETE FROM audit_auditchainhead"):
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
        refused[statement] = None
    except DatabaseError as exc:
        refused[statement] = str(exc)
intact = audit_chain_verify().ok
events = AuditEvent.objects.count()
call_command("flush", interactive=False, verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("DROP TRIGGER audit_event_append_only_delete")  # as a rebuild of the table would
writable = audit_chain_verify().writable_tables
guard_rows = None
if "audit_flush_guard" in connection.introspection.table_names():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_flush_guard")
        guard_rows = cursor.fetchone()[0]
print(json.dumps({"refused": refused, "intact": intact, "events": events, "after_flush": AuditEvent.objects.count(),
                  "guard_rows": guard_rows, "writable": writable}))
"""


def test_sqlite_refuses_update_and_delete_of_the_trail_and_flush_still_empties_it(tmp_path):
    env = embedded_env(tmp_path, DATABASE_URL="")
    migrate = manage("migrate", "--noinput", env=env, timeout=240)
    assert migrate.returncode == 0, migrate.stderr
    result = run_python(EDITS, env)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["refused"] == {
        "UPDATE audit_auditevent SET actor_name = 'someone else'": "audit events are append-only",
        "DELETE FROM audit_auditevent": "audit events are append-only",
        "DELETE FROM audit_auditchainhead": "audit chain heads are append-only",
    }
    assert outcome["intact"] and outcome["events"] == 1
    assert outcome["writable"] == ["audit_auditevent"]  # verify says when a trigger is gone
    assert outcome["after_flush"] == 0 and outcome["guard_rows"] == 0  # flush passed, and left no way open
