"""A service's visibility outlives the groups it names."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models.signals import post_delete, pre_delete
from django.dispatch import receiver


@receiver(pre_delete, sender=Group, dispatch_uid="services_note_groups_named_before_delete")
def note_services_restricted_to(sender, instance: Group, **kwargs) -> None:
    """The services this group restricts, read before its rows go (its memberships are deleted with it)."""
    instance._restricted_service_ids = list(instance.services.values_list("pk", flat=True))


@receiver(post_delete, sender=Group, dispatch_uid="services_keep_restricted_when_group_deleted")
def keep_services_restricted(sender, instance: Group, **kwargs) -> None:
    """An empty `visible_to` means every staff role: deleting the last group a service was restricted to (a
    team renamed or disbanded) opened it, its traffic, benchmarks and alerts to all of them. It stays
    restricted, to the administrators, who decide whom to open it to. Judged after the delete: groups deleted
    together ('Delete selected') each saw the others still there before it, and none restricted the service."""
    from apps.services.services import services_restrict_to_administrators

    services_restrict_to_administrators(getattr(instance, "_restricted_service_ids", []))
