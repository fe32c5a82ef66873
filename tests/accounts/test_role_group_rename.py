"""A role's group keeps its name: renamed, it was no longer a role's group, so the guard against deleting one
(refuse_deleting_a_role_group, which goes by name) let it be deleted, and a service restricted to it fell
open to every staff role; the next migrate made an empty group of the old name besides."""

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from apps.accounts.roles import ADMINISTRATORS, ROLE_GROUPS
from apps.services.services import service_create
from tests.helpers import embedded_env, run_python

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ROLE_GROUPS)
def test_a_role_group_cannot_be_renamed_in_admin_and_so_cannot_be_deleted(client, admin_user, role):
    group = Group.objects.get(name=role)
    service = service_create(name="Sepsis model", slug="sepsis", base_url="http://sepsis.internal")
    service.visible_to.set([group])
    held = list(group.permissions.values_list("pk", flat=True))
    client.force_login(admin_user)  # a superuser: even they are refused
    url = f"/admin/auth/group/{group.pk}/change/"
    assert 'name="name"' not in client.get(url).content.decode()  # shown, not offered as a field
    response = client.post(url, {"name": "Former role", "permissions": held})
    assert response.status_code in (200, 302)
    group.refresh_from_db()
    assert group.name == role
    assert client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Group.objects.filter(pk=group.pk, name=role).exists()
    assert list(service.visible_to.all()) == [group]


def test_a_role_group_cannot_be_renamed_through_the_orm_either():
    group = Group.objects.get(name=ADMINISTRATORS)
    group.name = "Former administrators"
    with pytest.raises(ProtectedError), transaction.atomic():
        group.save()
    assert Group.objects.filter(name=ADMINISTRATORS).exists()


def test_a_team_group_is_renamed_as_before(client, admin_user):
    team = Group.objects.create(name="Oncology AI")
    client.force_login(admin_user)
    response = client.post(f"/admin/auth/group/{team.pk}/change/", {"name": "Oncology & sepsis AI", "permissions": []})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.name == "Oncology & sepsis AI"


@pytest.mark.parametrize("role", ROLE_GROUPS)
def test_the_database_refuses_renaming_a_role_group_past_the_model(role):
    """update() and SQL skip the pre_save guard: a trigger holds the name."""
    with pytest.raises(IntegrityError), transaction.atomic():
        Group.objects.filter(name=role).update(name="Former role")
    assert Group.objects.filter(name=role).exists()
    team = Group.objects.create(name="Oncology AI")
    Group.objects.filter(pk=team.pk).update(name="Oncology & sepsis AI")  # other groups as before
    assert Group.objects.filter(name="Oncology & sepsis AI").exists()


SQLITE_RENAME = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
assert connection.vendor == "sqlite", connection.vendor
try:
    with transaction.atomic():
        Group.objects.filter(name="Administrators").update(name="Former role")
except IntegrityError:
    print("refused", Group.objects.filter(name="Administrators").exists())
else:
    print("renamed")
"""


@pytest.mark.django_db(databases=[])
def test_sqlite_refuses_renaming_a_role_group_too(tmp_path):
    """The embedded run (no DATABASE_URL: SQLite) holds the same trigger."""
    result = run_python(SQLITE_RENAME, embedded_env(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "refused True"
