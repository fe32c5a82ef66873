"""The seeded adaptive policies' floors (see apps/ratelimits/defaults.py) on installs seeded before them: only
where the floor is still the model's default, so an operator's own choice stays. A factor already below the new
floor is lifted by the controller's next run, with a recorded adjustment ("min_factor raised to ...")."""

from django.db import migrations

from apps.ratelimits.defaults import DEFAULT_POLICIES

OLD_DEFAULT_FLOOR = 0.1


def raise_seeded_floors(apps, schema_editor):
    policy = apps.get_model("ratelimits", "RateLimitPolicy")
    for scope, fields in DEFAULT_POLICIES.items():
        if "min_factor" in fields:
            policy.objects.filter(scope=scope, min_factor=OLD_DEFAULT_FLOOR).update(min_factor=fields["min_factor"])


class Migration(migrations.Migration):
    dependencies = [("ratelimits", "0009_prune_hits_schedule")]

    operations = [migrations.RunPython(raise_seeded_floors, migrations.RunPython.noop)]
