"""Stored identifier systems in their normal spelling again, now that it normalises percent-encoding (RFC 3986,
6.2.2.2: `http://hospital.example.org/%6Drn` is `http://hospital.example.org/mrn`, `%2f` is `%2F`).

As in 0002 (whose step this runs again): rows whose normal spellings would now collide (one MRN under `/%6Drn`
and `/mrn`) are listed (patient ids and systems, never the MRN) and left as they are, all of them, for a person
to resolve; the others are rewritten in the normal spelling.
"""

import importlib

from django.db import migrations

_0002 = importlib.import_module("apps.clinical.migrations.0002_normalize_identifier_systems")


def normalize_identifier_systems(apps, schema_editor) -> list[list[int]]:
    """0002's step under this migration's name; returns the colliding groups of patient ids it left (for tests)."""
    return _0002.normalize_identifier_systems(apps, schema_editor, label="0003")


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0002_normalize_identifier_systems"),
    ]

    operations = [
        migrations.RunPython(normalize_identifier_systems, migrations.RunPython.noop, elidable=True),
    ]
