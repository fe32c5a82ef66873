"""A policy edit (admin, or an adaptive step) reaches every process within about a second."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache


@receiver(post_save, sender=RateLimitPolicy)
@receiver(post_delete, sender=RateLimitPolicy)
def rate_limit_policy_changed(sender, **kwargs) -> None:
    transaction.on_commit(policy_cache.invalidate)
