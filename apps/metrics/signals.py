"""An alert deleted while firing is resolved, and its resolution sent (services.alert_of_deleted_rule_resolve).

A receiver, not the admin's delete: an alert goes only with its rule (AlertAdmin refuses deleting one), and a
rule goes by the admin's delete page, its list's bulk delete, a cascade from its service, or code; each sends
pre_delete for the alerts it takes."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.metrics.models import Alert


@receiver(pre_delete, sender=Alert, dispatch_uid="metrics_resolve_firing_alert_before_delete")
def _firing_alert_resolve_before_delete(sender, instance: Alert, **kwargs) -> None:
    from apps.metrics.services import alert_of_deleted_rule_resolve

    alert_of_deleted_rule_resolve(alert=instance)
