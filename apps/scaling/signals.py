"""A policy edit in admin recomputes its manifests' digest; a change makes it PENDING for the checker. A deleted
policy's autoscalers are removed from the cluster."""

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from apps.scaling.models import ScalingPolicy


@receiver(post_save, sender=ScalingPolicy)
def scaling_policy_saved(sender, instance: ScalingPolicy, **kwargs) -> None:
    from apps.scaling.services import policy_state_refresh

    policy_state_refresh(instance)


@receiver(pre_delete, sender=ScalingPolicy)
def scaling_policy_deleted(sender, instance: ScalingPolicy, **kwargs) -> None:
    """Also sent for a policy deleted with its service (the cascade)."""
    from apps.scaling.services import policy_deleted

    policy_deleted(instance)
