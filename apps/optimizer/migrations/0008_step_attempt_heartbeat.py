from django.db import migrations, models


# Nullable columns without a default: an older release's worker, still running during the upgrade, inserts
# and updates steps without them (NULL: no owner known, its steps taken over on redelivery as before).
class Migration(migrations.Migration):
    dependencies = [
        ("optimizer", "0007_step_next_sent_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="optimizationstep",
            name="attempt_token",
            field=models.UUIDField(blank=True, editable=False, help_text="The attempt running it.", null=True),
        ),
        migrations.AddField(
            model_name="optimizationstep",
            name="heartbeat_at",
            field=models.DateTimeField(
                blank=True, help_text="Last refreshed by the attempt running it; stale: its worker was lost.", null=True
            ),
        ),
    ]
