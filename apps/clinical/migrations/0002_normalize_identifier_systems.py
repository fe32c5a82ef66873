"""Stored identifier systems in their normal spelling (apps.clinical.identifiers.normalize_system).

Rows whose normal spellings would collide (one MRN registered under `HTTP://Hospital.example.org/mrn/` and
`http://hospital.example.org/mrn`) are one patient registered twice, or two patients: only a person can tell.
They are listed (patient ids and systems, never the MRN: this reaches logs) and left as they are, all of them,
so the migration neither merges records nor fails; the lookups, which normalise, then find the one already
in the normal spelling, or none, until someone resolves them.
"""

import logging

from django.db import migrations
from django.db.models import Count

from apps.clinical.identifiers import normalize_system

logger = logging.getLogger("apps.clinical.migrations")


def normalize_identifier_systems(apps, schema_editor, label: str = "0002") -> list[list[int]]:
    """Normalise every system that can be; returns the colliding groups of patient ids it left (for tests).
    Later migrations that widen the normal spelling (0003: percent-encoding) run it again under their `label`."""
    Patient = apps.get_model("clinical", "Patient")
    spellings: dict[str, set[str]] = {}
    for system in Patient.objects.values_list("identifier_system", flat=True).distinct().iterator():
        spellings.setdefault(normalize_system(system), set()).add(system)
    left = []
    for normal, systems in sorted(spellings.items()):
        if systems == {normal}:
            continue
        rows = Patient.objects.filter(identifier_system__in=systems)
        colliding = list(rows.values("mrn").annotate(n=Count("pk")).filter(n__gt=1).values_list("mrn", flat=True))
        rows.exclude(identifier_system=normal).exclude(mrn__in=colliding).update(identifier_system=normal)
        for mrn in colliding:
            group = list(rows.filter(mrn=mrn).order_by("pk").values_list("pk", "identifier_system"))
            left.append([pk for pk, _ in group])
            line = (
                f"clinical {label}: patients {', '.join(str(pk) for pk, _ in group)} hold one MRN in systems that "
                f"are one ({normal!r}, spelt {', '.join(repr(system) for _, system in group)}); left as they "
                "are: resolve them by hand (merge or correct one)."
            )
            logger.warning(line)
            print(f"\n  {line}")  # noqa: T201 - `migrate`'s operator should see it whatever the log level
    return left


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(normalize_identifier_systems, migrations.RunPython.noop, elidable=True),
    ]
