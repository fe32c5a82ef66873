"""System checks on stored scaling policies (`manage.py check`): warnings, so a deploy goes on."""

from __future__ import annotations

from django.core.checks import CheckMessage, Warning, register
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import DatabaseError, transaction

POLICY_OUT_OF_BOUNDS = "scaling.W001"

# The fields a forecast or its replica plan reads: a policy with one of them out of bounds is not forecast
# (services.usable_history says why), as a plan from 1e308 req/s per replica or a lead of 4,000 years is one
# nobody chose, and it would go to the cluster as KEDA cron windows.
FORECAST_FIELDS = ("replica_capacity_rps", "target_utilization", "lead_minutes")


# What a ceiling below the maximum does, and does not: the forecast plans replicas up to the maximum (the
# cluster's maxReplicaCount, which an administrator raised by hand past the ceiling), never the ceiling, which
# bounds only how far the optimizer raises the maximum. Planning to the ceiling would hold a service below what
# its cluster allows and its load needs, on a value the model refuses today; so the check names it instead.
_CEILING_BELOW_MAXIMUM = (
    " Replica plans and manifests are held to the maximum ({maximum}), never to the ceiling: the ceiling bounds "
    "only how far the optimizer raises the maximum, so below it the optimizer raises nothing (its advice says the "
    "forecast is above the ceiling). Raise the ceiling to at least the maximum, or lower the maximum to the "
    "ceiling to plan fewer replicas."
)


def policy_bound_problems(policy) -> dict[str, str]:
    """{field: why} for each stored value outside the model's bounds (its fields' min/max and finite
    validators, the ceiling not below the maximum). The form and the API refuse such values, but a policy saved
    before a bound was added (scaling 0011, 0012), or written by raw SQL or a fixture, keeps them until its
    next edit."""
    from apps.scaling.models import finite

    problems = {}
    for field in type(policy)._meta.concrete_fields:
        value = getattr(policy, field.attname)
        if value is None:
            continue
        for validator in field.validators:
            if not (isinstance(validator, MinValueValidator | MaxValueValidator) or validator is finite):
                continue
            try:
                validator(value)
            except ValidationError as refused:
                problems[field.name] = f"{field.verbose_name} is {value}: {refused.messages[0].rstrip('.')}"
                break
    if policy.max_replicas_ceiling and policy.max_replicas and policy.max_replicas_ceiling < policy.max_replicas:
        problems["max_replicas_ceiling"] = (
            f"{type(policy)._meta.get_field('max_replicas_ceiling').verbose_name} is {policy.max_replicas_ceiling}, "
            f"below the maximum replicas ({policy.max_replicas})"
        )
    return problems


@register("scaling")
def policies_out_of_bounds(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Each scaling policy (named by its service's slug) whose stored values are out of the model's bounds.
    Admin shows these only once the policy is opened, and until then forecasts skip it and the optimizer's
    ceiling means nothing. A database not reachable or not migrated yet says nothing here (`migrate` runs the
    checks before it adds the columns)."""
    from apps.scaling.models import ScalingPolicy

    try:
        with transaction.atomic():
            policies = list(ScalingPolicy.objects.select_related("service").order_by("service__slug"))
    except DatabaseError:
        return []
    warnings = []
    for policy in policies:
        problems = policy_bound_problems(policy)
        if not problems:
            continue
        warnings.append(
            Warning(
                f"The scaling policy of {policy.service.slug} has stored values out of bounds: "
                f"{'; '.join(problems.values())}.",
                hint=f"Edit the policy (admin: Scaling policies, {policy.service.slug}) and bring "
                f"{', '.join(problems)} within the bounds named"
                + (
                    ": until then it is not forecast and its last plan is kept."
                    if set(problems) & set(FORECAST_FIELDS)
                    else "."
                )
                + (
                    _CEILING_BELOW_MAXIMUM.format(maximum=policy.max_replicas)
                    if "max_replicas_ceiling" in problems
                    else ""
                ),
                obj="scaling.ScalingPolicy",
                id=POLICY_OUT_OF_BOUNDS,
            )
        )
    return warnings
