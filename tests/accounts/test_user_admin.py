"""Staff accounts in admin: an Administrator manages users, but never becomes or edits a superuser."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from apps.accounts.roles import ADMINISTRATORS, ROLE_GROUPS

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user("adm", "adm@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=ADMINISTRATORS)])
    return user


def _user_form(user, **changes) -> dict:
    data = {"username": user.username, "first_name": "", "last_name": "", "email": user.email, "is_active": "on",
            "is_staff": "on", "groups": [g.pk for g in user.groups.all()], "last_login_0": "", "last_login_1": "",
            "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}  # fmt: skip
    return {**data, **changes}


def test_an_administrator_cannot_make_themselves_superuser(client, administrator):
    client.force_login(administrator)
    url = f"/admin/auth/user/{administrator.pk}/change/"
    response = client.post(url, _user_form(administrator, is_superuser="on", first_name="Ada"))
    assert response.status_code == 302, response.content.decode()[:2000]
    administrator.refresh_from_db()
    assert administrator.first_name == "Ada" and not administrator.is_superuser


def test_an_administrator_cannot_reach_a_superuser_account(client, administrator, admin_user):
    client.force_login(administrator)
    listed = client.get("/admin/auth/user/").content.decode()
    assert f"/admin/auth/user/{administrator.pk}/change/" in listed
    assert f"/admin/auth/user/{admin_user.pk}/change/" not in listed
    for page in (f"/admin/auth/user/{admin_user.pk}/change/", f"/admin/auth/user/{admin_user.pk}/password/"):
        assert client.get(page).status_code in (302, 404), page
    response = client.post(f"/admin/auth/user/{admin_user.pk}/password/",
                           {"password1": "Taken-over-123", "password2": "Taken-over-123"})  # fmt: skip
    assert response.status_code in (302, 404)
    admin_user.refresh_from_db()
    assert not admin_user.check_password("Taken-over-123")


def test_a_superuser_still_can(client, admin_user, administrator):
    client.force_login(admin_user)
    response = client.post(f"/admin/auth/user/{administrator.pk}/change/", _user_form(administrator, is_superuser="on"))
    assert response.status_code == 302
    administrator.refresh_from_db()
    assert administrator.is_superuser


def _permission(codename: str) -> Permission:
    return Permission.objects.get(codename=codename)


def test_an_administrator_cannot_grant_a_permission_they_do_not_hold(client, administrator):
    """Django's user form offered every permission: an Administrator could give themselves axes' permissions
    (clear their own lockouts, keep guessing a superuser's password) or anything outside their role."""
    client.force_login(administrator)
    axes_clear = _permission("delete_accessattempt")
    response = client.post(
        f"/admin/auth/user/{administrator.pk}/change/",
        _user_form(administrator, user_permissions=[axes_clear.pk]),
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not administrator.user_permissions.exists()
    superusers_only = Group.objects.create(name="Lockout clearers")
    superusers_only.permissions.set([axes_clear])
    form = client.get(f"/admin/auth/user/{administrator.pk}/change/").content.decode()
    assert f'value="{axes_clear.pk}"' not in form and "Lockout clearers" not in form
    # Within their own role they still grant freely.
    view_services = _permission("view_service")
    response = client.post(
        f"/admin/auth/user/{administrator.pk}/change/",
        _user_form(administrator, user_permissions=[view_services.pk]),
    )
    assert response.status_code == 302
    assert list(administrator.user_permissions.all()) == [view_services]


def test_an_administrators_edit_keeps_what_a_superuser_granted_beyond_it(client, administrator, django_user_model):
    nurse = django_user_model.objects.create_user("nurse-lead", "n@example.org", "pw-Long-enough-1", is_staff=True)
    axes_clear = _permission("delete_accessattempt")
    nurse.user_permissions.set([axes_clear])
    client.force_login(administrator)
    response = client.post(f"/admin/auth/user/{nurse.pk}/change/", _user_form(nurse, first_name="Grace"))
    assert response.status_code == 302, response.content.decode()[:2000]
    nurse.refresh_from_db()
    assert nurse.first_name == "Grace" and list(nurse.user_permissions.all()) == [axes_clear]


def test_an_administrator_cannot_add_a_permission_they_do_not_hold_to_a_group(client, administrator):
    """The user form was fixed first; Django's group form still offered every permission, and an Administrator
    (auth.change_group) added axes' to their own group: same escalation, one page over."""
    group = Group.objects.get(name=ADMINISTRATORS)
    held = list(group.permissions.values_list("pk", flat=True))
    axes_clear = _permission("delete_accessattempt")
    client.force_login(administrator)
    url = f"/admin/auth/group/{group.pk}/change/"
    assert f'value="{axes_clear.pk}"' not in client.get(url).content.decode()
    response = client.post(url, {"name": ADMINISTRATORS, "permissions": [*held, axes_clear.pk]})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not administrator.has_perm("axes.delete_accessattempt")
    assert not Group.objects.get(pk=group.pk).permissions.filter(pk=axes_clear.pk).exists()


def test_an_administrators_group_edit_keeps_what_a_superuser_granted_beyond_it(client, administrator):
    axes_clear = _permission("delete_accessattempt")
    view_services = _permission("view_service")
    clearers = Group.objects.create(name="Lockout clearers")
    clearers.permissions.set([axes_clear])
    client.force_login(administrator)
    response = client.post(f"/admin/auth/group/{clearers.pk}/change/",
                           {"name": "Lockout clearers", "permissions": [view_services.pk]})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    assert set(clearers.permissions.all()) == {axes_clear, view_services}


@pytest.mark.parametrize("role", ROLE_GROUPS)
def test_a_role_group_is_never_deleted(client, admin_user, role):
    """Deleting the Administrators group left a service restricted to it alone open to every staff role (an
    empty visibility means everyone), and any role's members lost it; the next migrate made an empty group."""
    from django.db.models import ProtectedError

    from apps.services.services import service_create

    group = Group.objects.get(name=role)
    service = service_create(name="Sepsis model", slug="sepsis", base_url="http://sepsis.internal")
    service.visible_to.set([Group.objects.get(name=ADMINISTRATORS)])
    client.force_login(admin_user)  # a superuser: even they are refused
    assert client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/auth/group/", {"action": "delete_selected", "_selected_action": [group.pk], "post": "yes"}
    )
    assert response.status_code in (200, 403)  # the confirmation page naming what may not be deleted
    with pytest.raises(ProtectedError), transaction.atomic():
        group.delete()
    assert Group.objects.filter(name=role).exists()
    assert list(service.visible_to.values_list("name", flat=True)) == [ADMINISTRATORS]


def test_a_team_group_is_deleted_as_before(admin_user, client):
    team = Group.objects.create(name="Oncology AI")
    client.force_login(admin_user)
    assert client.post(f"/admin/auth/group/{team.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Group.objects.filter(pk=team.pk).exists()


@pytest.mark.parametrize("field", ["date_joined", "last_login"])
def test_a_user_s_time_past_year_9999_in_utc_is_a_field_error(admin_client, django_user_model, settings, field):
    """West of UTC the form's 9999-12-31 23:00 was stored as year 10,000, which psycopg cannot read: the users'
    list was a 500 for every administrator, and so was that user's own page (where it would be fixed)."""
    settings.TIME_ZONE = "America/New_York"
    nurse = django_user_model.objects.create_user("nurse", "nurse@example.org", "pw-Long-enough-1", is_staff=True)
    form = _user_form(nurse, **{f"{field}_0": "9999-12-31", f"{field}_1": "23:00:00"})
    admin_client.raise_request_exception = False
    response = admin_client.post(f"/admin/auth/user/{nurse.pk}/change/", form)
    assert response.status_code == 200 and field in response.context["adminform"].form.errors
    assert admin_client.get("/admin/auth/user/").status_code == 200
    assert (
        admin_client.post(f"/admin/auth/user/{nurse.pk}/change/", {**form, f"{field}_0": "2025-06-01"}).status_code
        == 302
    )
