"""A policy edit, from admin or anywhere else, reaches every process on their next poll (about a second)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.caching.models import CachePolicy
from apps.caching.stack import POLICY_SCOPE, default_stack


@receiver(post_save, sender=CachePolicy)
@receiver(post_delete, sender=CachePolicy)
def cache_policy_changed(sender, **kwargs) -> None:
    default_stack().invalidate_scopes([POLICY_SCOPE])
