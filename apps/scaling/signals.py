"""A policy edit in admin recomputes its manifests' digest; a change makes it PENDING for the checker."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.scaling.models import ScalingPolicy


@receiver(post_save, sender=ScalingPolicy)
def scaling_policy_saved(sender, instance: ScalingPolicy, **kwargs) -> None:
    from apps.scaling.services import policy_state_refresh

    policy_state_refresh(instance)
