"""Staff roles as Django groups, kept in step with the models on every migrate.

Administrators: every permission of the control plane. Operators: see everything that is not patient
data, and change policies (cache, rate limits, scaling, alerts, services, schedules) and decide
recommendations; they retime and switch the beat schedules but never add one nor choose what one
runs. Viewers: see what operators see, change nothing. Patient data and the audit trail are
read through the scoped API only, never through a role's admin pages.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

ADMINISTRATORS, OPERATORS, VIEWERS = "Administrators", "Operators", "Viewers"
ROLE_GROUPS = (ADMINISTRATORS, OPERATORS, VIEWERS)

CONTROL_PLANE_APPS = ("services", "metrics", "caching", "ratelimits", "resources", "optimizer", "scaling",
                      "benchmarks", "inference", "accounts", "django_celery_beat")  # fmt: skip
PHI_APPS = ("clinical", "audit")
OPERATOR_CHANGES = {
    "caching": ["cachepolicy"],
    "ratelimits": ["ratelimitpolicy"],
    "scaling": ["scalingpolicy"],
    "metrics": ["alertrule"],
    "services": ["service"],
    "optimizer": ["recommendation"],
    "benchmarks": ["benchmarkplan", "benchmarkrun", "regression"],
    "inference": ["modeldeployment"],
    "django_celery_beat": ["periodictask", "crontabschedule", "intervalschedule"],
}
# Changed but never added by operators: a new schedule chooses a task and its arguments (apps/core/admin.py).
OPERATORS_NEVER_ADD = {"django_celery_beat": ["periodictask"]}


def roles_ensure(*, sender=None, **kwargs) -> None:
    """Create or refresh the three groups' permissions. Connected to post_migrate, it acts once, after the
    last app's permissions exist."""
    from django.apps import apps

    if sender is not None and sender is not list(apps.get_app_configs())[-1]:
        return
    ours = Permission.objects.filter(content_type__app_label__in=(*CONTROL_PLANE_APPS, *PHI_APPS, "auth"))
    Group.objects.get_or_create(name=ADMINISTRATORS)[0].permissions.set(ours)
    view = Permission.objects.filter(content_type__app_label__in=CONTROL_PLANE_APPS, codename__startswith="view_")
    view = view.exclude(content_type__app_label="accounts")  # API clients' names and scopes are for admins
    change = Q()
    for app_label, models in OPERATOR_CHANGES.items():
        for model in models:
            adds = [] if model in OPERATORS_NEVER_ADD.get(app_label, []) else [f"add_{model}"]
            change |= Q(content_type__app_label=app_label, codename__in=[f"change_{model}", *adds])
    Group.objects.get_or_create(name=OPERATORS)[0].permissions.set([*view, *Permission.objects.filter(change)])
    Group.objects.get_or_create(name=VIEWERS)[0].permissions.set(view)


def refuse_deleting_a_role_group(sender, instance: Group, **kwargs) -> None:
    """A role's group is never deleted (pre_delete, so the ORM, admin and a shell alike): its members lost
    their role, and a service restricted to the Administrators group alone fell open to every staff role
    (visibility names groups; none left means everyone). The next migrate made an empty group anew."""
    from django.db.models import ProtectedError

    if instance.name in ROLE_GROUPS:
        raise ProtectedError(
            f"The {instance.name} group is a staff role and is kept: change its members instead.", {instance}
        )


def refuse_renaming_a_role_group(sender, instance: Group, raw: bool = False, **kwargs) -> None:
    """A role's group keeps its name (pre_save): renamed, it was no role's group any more, so the guard above
    (which goes by name) let it be deleted, a service restricted to it fell open to every staff role, and the
    next migrate made an empty group of the role's name beside it."""
    from django.db.models import ProtectedError

    if raw or instance.pk is None:
        return
    stored = Group.objects.filter(pk=instance.pk).values_list("name", flat=True).first()
    if stored in ROLE_GROUPS and instance.name != stored:
        raise ProtectedError(f"The {stored} group is a staff role and keeps its name.", {instance})
