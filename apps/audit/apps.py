from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit trail: one append-only, hash-chained record for every PHI access."""

    name = "apps.audit"
    label = "audit"
