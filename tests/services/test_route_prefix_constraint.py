"""A route prefix is one service's, held by the database: two saves at once both passed the check in Python
and both inserted (two real PostgreSQL sessions), so each service owned all of the prefix's routes (the same
requests counted twice in the totals, each one's alerts and forecasts on the other's load)."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.services.models import Service
from apps.services.services import service_create
from tests.helpers import behind_an_uncommitted_insert


@pytest.mark.django_db(transaction=True)  # two sessions: each commits
def test_the_second_of_two_concurrent_saves_of_one_prefix_is_refused_on_the_field():
    def other_save() -> None:  # the other request: its service inserted, committed once this save waits on it
        service_create(name="Patients", slug="patients", route_prefix="api/v1/patients/")

    with behind_an_uncommitted_insert(other_save), pytest.raises(ValidationError) as refused:
        service_create(name="Patients v2", slug="patients-v2", route_prefix="api/v1/patients/")
    assert refused.value.message_dict == {
        "route_prefix": ["Another service has this route prefix: a route is one service's."]
    }
    assert list(Service.objects.filter(route_prefix="api/v1/patients/").values_list("slug", flat=True)) == ["patients"]


@pytest.mark.django_db
def test_the_upgrade_keeps_a_shared_prefix_on_the_first_service_and_notes_it_on_the_others():
    """Rows that already share a prefix (saved before the constraint) must not stop the upgrade."""
    executor = MigrationExecutor(connection)
    before, after = [("services", "0003_service_visible_to")], [("services", "0004_service_route_prefix_unique")]
    executor.migrate(before)
    OldService = executor.loader.project_state(before).apps.get_model("services", "Service")
    for slug in ("patients", "patients-copy", "patients-again"):
        OldService.objects.create(name=slug.title(), slug=slug, route_prefix="api/v1/patients/", description="Ward.")
    OldService.objects.create(name="Vitals", slug="vitals", route_prefix="api/v1/vitals/")
    OldService.objects.create(name="No routes", slug="none")
    OldService.objects.create(name="No routes either", slug="none-2")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    prefixes = dict(Service.objects.values_list("slug", "route_prefix"))
    assert prefixes == {"patients": "api/v1/patients/", "patients-copy": "", "patients-again": "",
                        "vitals": "api/v1/vitals/", "none": "", "none-2": ""}  # fmt: skip
    copy = Service.objects.get(slug="patients-copy")
    assert "'api/v1/patients/'" in copy.description and "'Patients'" in copy.description
    assert copy.description.endswith("Ward.")
    with pytest.raises(ValidationError):
        service_create(name="Again", slug="again", route_prefix="api/v1/patients/")


@pytest.mark.django_db
def test_the_exact_prefix_of_a_hidden_service_is_refused_as_an_overlap_as_admin_says(staff_api):
    """The constraint's own message ("another service has this prefix") is not what an Operator is told about
    a service hidden from them: the API and admin say the same."""
    from django.contrib.auth.models import Group

    hidden = service_create(name="Oncology triage", slug="onco", route_prefix="api/v1/onco/")
    hidden.visible_to.add(Group.objects.create(name="Oncology AI"))
    response = staff_api.post("/api/v1/services/", {"name": "New", "slug": "new", "route_prefix": "api/v1/onco/"})
    assert response.status_code == 400
    assert "overlaps the routes of a service you do not see" in response.json()["errors"]["route_prefix"][0]
