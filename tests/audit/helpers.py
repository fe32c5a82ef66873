"""What the audit tests share: an entry as a ward app's read writes it, and `audit verify` as a shell runs it."""

from io import StringIO

from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.services import AuditEntry


def ward_app_entry(**fields) -> AuditEntry:
    return AuditEntry(
        **{"actor_type": "client", "actor_id": 1, "actor_name": "ward-app", "action": "read",
           "resource_type": "Patient", "source_ip": "10.1.2.3", **fields}
    )  # fmt: skip


def run_verify() -> tuple[int, str]:
    """`audit verify`'s exit status (1: a problem reported) and what it printed."""
    out = StringIO()
    try:
        call_command("audit", "verify", stdout=out)
    except CommandError as error:
        return 1, out.getvalue() + str(error)
    return 0, out.getvalue()


def cut_tail(chain_id: int, keep: int) -> None:
    """What someone with database access and no key does: delete the chain's last records, move its head back."""
    kept = AuditEvent.objects.get(chain_id=chain_id, seq=keep).hash
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("DELETE FROM audit_auditevent WHERE chain_id = %s AND seq > %s", [chain_id, keep])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditchainhead SET seq = %s, last_hash = %s WHERE id = %s", [keep, kept, chain_id])
