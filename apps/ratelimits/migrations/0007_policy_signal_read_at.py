from django.db import migrations, models
from django.db.models.functions import Now


def confirm_tightenings_in_force(apps, schema_editor):
    """A tightening in force at the upgrade keeps it until the controller's next run reads a signal (or
    TIGHTENING_LAPSES_AFTER passes without one), rather than lapsing at once for want of a first reading."""
    policy = apps.get_model("ratelimits", "RateLimitPolicy")
    policy.objects.filter(current_factor__lt=1.0).update(signal_read_at=Now())


class Migration(migrations.Migration):
    dependencies = [
        ("ratelimits", "0006_prune_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="ratelimitpolicy",
            name="signal_read_at",
            field=models.DateTimeField(
                editable=False,
                help_text="The adaptive controller last read a load signal for it; a tightening lapses 15 minutes after.",
                null=True,
            ),
        ),
        migrations.RunPython(confirm_tightenings_in_force, migrations.RunPython.noop),
    ]
