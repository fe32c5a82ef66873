"""A rule deleted keeps its alerts, and resolves (and sends the "resolved" of) the one firing
(services.alerts_of_deleted_rule_keep); an alert deleted on its own while firing is resolved and its resolution
sent (services.alert_of_deleted_rule_resolve).

Receivers, not the admin's delete: a rule goes by the admin's delete page, its list's bulk delete, a cascade
from its service, or code; each sends pre_delete for the rules it takes (and for the alerts it takes, though a
rule's delete now only empties its alerts' link)."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.metrics.models import Alert, AlertRule


@receiver(pre_delete, sender=AlertRule, dispatch_uid="metrics_keep_alerts_of_deleted_rule")
def _deleted_rule_alerts_keep(sender, instance: AlertRule, **kwargs) -> None:
    from apps.metrics.services import alerts_of_deleted_rule_keep

    alerts_of_deleted_rule_keep(rule=instance)


@receiver(pre_delete, sender=Alert, dispatch_uid="metrics_resolve_firing_alert_before_delete")
def _firing_alert_resolve_before_delete(sender, instance: Alert, **kwargs) -> None:
    from apps.metrics.services import alert_of_deleted_rule_resolve

    alert_of_deleted_rule_resolve(alert=instance)
