"""A staff user sets the password only of accounts holding nothing beyond what they hold themselves: an
Administrator who set the password of a user a superuser had given axes' permissions signed in as that user
and cleared their own lockouts (the very escalation the user and group forms refuse), or anything else that
user held beyond the Administrators' role."""

import pytest
from django.contrib.auth.models import Group, Permission

from apps.accounts.roles import ADMINISTRATORS

pytestmark = pytest.mark.django_db

NEW = {"password1": "Taken-over-123", "password2": "Taken-over-123", "usable_password": "true"}


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user("adm", "adm@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=ADMINISTRATORS)])
    return user


@pytest.fixture
def lockout_clearer(django_user_model):
    user = django_user_model.objects.create_user("nurse-lead", "n@example.org", "pw-Long-enough-1", is_staff=True)
    return user


@pytest.mark.parametrize("through", ["permission", "group"])
def test_an_administrator_cannot_set_the_password_of_a_user_holding_more(client, administrator, lockout_clearer,
                                                                         through):  # fmt: skip
    axes_clear = Permission.objects.get(codename="delete_accessattempt")
    if through == "permission":
        lockout_clearer.user_permissions.set([axes_clear])
    else:
        clearers = Group.objects.create(name="Lockout clearers")
        clearers.permissions.set([axes_clear])
        lockout_clearer.groups.set([clearers])
    client.force_login(administrator)
    url = f"/admin/auth/user/{lockout_clearer.pk}/password/"
    assert client.get(url).status_code == 403
    assert client.post(url, NEW).status_code == 403
    lockout_clearer.refresh_from_db()
    assert not lockout_clearer.check_password("Taken-over-123")
    assert lockout_clearer.check_password("pw-Long-enough-1")
    # The rest of the account is still theirs to edit (tests/accounts/test_user_admin.py).
    assert client.get(f"/admin/auth/user/{lockout_clearer.pk}/change/").status_code == 200


def test_an_administrator_still_sets_the_password_of_a_user_within_their_role(client, administrator,
                                                                               lockout_clearer):  # fmt: skip
    lockout_clearer.user_permissions.set([Permission.objects.get(codename="view_service")])
    client.force_login(administrator)
    assert client.post(f"/admin/auth/user/{lockout_clearer.pk}/password/", NEW).status_code == 302
    lockout_clearer.refresh_from_db()
    assert lockout_clearer.check_password("Taken-over-123")


def test_a_superuser_still_sets_anyones(client, admin_user, lockout_clearer):
    lockout_clearer.user_permissions.set([Permission.objects.get(codename="delete_accessattempt")])
    client.force_login(admin_user)
    assert client.post(f"/admin/auth/user/{lockout_clearer.pk}/password/", NEW).status_code == 302
    lockout_clearer.refresh_from_db()
    assert lockout_clearer.check_password("Taken-over-123")
