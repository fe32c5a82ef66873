"""A policy edit (admin, or an adaptive step) reaches every process within about a second."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.ratelimits.models import RateLimitPolicy
from apps.ratelimits.selectors import policy_cache


@receiver(post_save, sender=RateLimitPolicy)
@receiver(post_delete, sender=RateLimitPolicy)
def rate_limit_policy_changed(sender, **kwargs) -> None:
    # In the edit's transaction: the restore watermark's draw (caching 0006) is taken back with the edit by a
    # restore; the other processes' entries are dropped once it commits (`invalidate` bumps the version then).
    policy_cache.invalidate()
