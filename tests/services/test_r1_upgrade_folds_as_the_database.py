"""The upgrade that makes service names and slugs unique in any case (0006 renames, 0007 constrains) folds case
as the database does. 0006 grouped by Python's str.lower() ("İstanbul" -> "i̇stanbul") while 0007's Lower()
constraint folds by PostgreSQL's ("istanbul"): "İstanbul" beside "istanbul" was renamed by no one and 0007
failed with `IntegrityError ... (lower(name))=(istanbul) is duplicated`, blocking the upgrade."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count
from django.db.models.functions import Lower

from apps.services.models import Service

pytestmark = pytest.mark.django_db

BEFORE = [("services", "0005_base_url_credentials_removed")]
AFTER = [("services", "0007_name_slug_any_case_visible")]


def _database_lower(text: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT LOWER(%s)", [text])
        return cursor.fetchone()[0]


def _upgrade_with(rows: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    OldService = executor.loader.project_state(BEFORE).apps.get_model("services", "Service")
    for name, slug in rows:
        OldService.objects.create(name=name, slug=slug, description="Ward.")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)


def _no_two_fold_alike(field: str) -> None:
    repeated = Service.objects.values(folded=Lower(field)).annotate(n=Count("pk")).filter(n__gt=1)
    assert not repeated.exists(), list(repeated)


def test_names_that_only_the_databases_lower_folds_alike_are_renamed():
    if _database_lower("İstanbul") != _database_lower("istanbul"):
        pytest.skip("this database's lower() keeps the dotted capital I apart")
    _upgrade_with([("İstanbul", "ist-1"), ("istanbul", "ist-2"), ("Vitals", "vitals")])

    rows = list(Service.objects.order_by("pk").values_list("name", "slug"))
    assert rows == [("İstanbul", "ist-1"), ("istanbul-2", "ist-2"), ("Vitals", "vitals")]
    renamed = Service.objects.get(slug="ist-2")
    assert "'istanbul' -> 'istanbul-2'" in renamed.description and renamed.description.endswith("Ward.")
    _no_two_fold_alike("name")


def test_slugs_that_only_the_databases_lower_folds_alike_are_renamed():
    if _database_lower("İSTANBUL") != _database_lower("istanbul"):
        pytest.skip("this database's lower() keeps the dotted capital I apart")
    _upgrade_with([("One", "İSTANBUL"), ("Two", "istanbul"), ("Three", "Istanbul-2")])

    slugs = list(Service.objects.order_by("pk").values_list("slug", flat=True))
    # The oldest keeps its own, lower-cased by the database; the next takes the first suffix no one holds.
    assert slugs == ["istanbul", "istanbul-3", "istanbul-2"]
    _no_two_fold_alike("slug")


def test_a_suffix_taken_in_the_databases_case_only_is_skipped():
    if _database_lower("İstanbul-2") != _database_lower("istanbul-2"):
        pytest.skip("this database's lower() keeps the dotted capital I apart")
    _upgrade_with([("Istanbul", "a"), ("ISTANBUL", "b"), ("İstanbul-2", "c")])

    names = list(Service.objects.order_by("pk").values_list("name", flat=True))
    assert names == ["Istanbul", "ISTANBUL-3", "İstanbul-2"]
    _no_two_fold_alike("name")
