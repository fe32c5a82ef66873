"""Stored identifier systems in the normal spelling of a later normalize_system, which also lower-cases a URN's
namespace identifier (`urn:OID:1.2` is `urn:oid:1.2`) and drops a default port and a host's trailing dot: rows
stored in those spellings since 0002 (which kept them) were missed by lookups, which normalise. 0002's step
again (it uses the live function): colliding rows are listed and left as they are, and nothing fails.

A query or fragment whose trailing slashes the earlier function dropped (`.../mrn/?x=/` stored as `.../mrn?x=`)
cannot be restored: what was typed is gone."""

import importlib

from django.db import migrations

normalize_identifier_systems = importlib.import_module(
    "apps.clinical.migrations.0002_normalize_identifier_systems"
).normalize_identifier_systems


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0002_normalize_identifier_systems"),
    ]

    operations = [
        migrations.RunPython(normalize_identifier_systems, migrations.RunPython.noop, elidable=True),
    ]
