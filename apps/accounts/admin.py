from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from apps.accounts.models import ApiClient
from apps.accounts.selectors import groups_grantable_by, holds_beyond, permissions_grantable_by, scopes_held_by
from apps.accounts.services import (
    RUNNER_ONLY_SCOPES,
    UPDATABLE_FIELDS,
    api_client_delete,
    api_client_revoke,
    api_client_rotate,
    api_client_update,
    validate_application_scopes,
    validate_expires_at,
)
from apps.core.admin import time_readable_in_utc
from apps.core.admin_lookups import PlainLookupsAdmin


@admin.register(ApiClient)
class ApiClientAdmin(PlainLookupsAdmin, admin.ModelAdmin):
    list_display = ["name", "token_prefix", "scopes", "is_active", "expires_at", "revoked_at", "created_at"]
    list_filter = ["is_active", "expires_at", "revoked_at"]
    search_fields = ["name", "token_prefix", "description"]
    readonly_fields = ["name", "token_prefix", "token_hash", "created_at", "rotated_at", "revoked_at"]
    actions = ["revoke_tokens", "rotate_tokens"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # A revoke is for good: 'active' ticked again would only make the changelist say so of a refused token.
        readonly = super().get_readonly_fields(request, obj)
        return [*readonly, "is_active"] if obj is not None and obj.revoked_at is not None else readonly

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        held = scopes_held_by(request.user)

        class ApiClientForm(form):
            def clean_scopes(self):
                """Checked here, not only in the service, so a refusal is a message on the field (not a 500);
                a user may give a client only scopes they hold, or a token would carry what they lack."""
                before = self.instance.scopes if self.instance.pk else []
                try:
                    scopes = validate_application_scopes(self.cleaned_data.get("scopes"), before=before)
                except ValidationError as invalid:
                    raise ValidationError(invalid.message_dict["scopes"]) from None
                missing = sorted(set(scopes) - set(before) - set(held))
                if missing:
                    raise ValidationError(f"You may give a client only scopes you hold; not {', '.join(missing)}.")
                return scopes

            def clean_expires_at(self):
                """An expiry the edit sets is within ten years (one it leaves as stored is not checked again)."""
                expires_at = self.cleaned_data.get("expires_at")
                if expires_at != self.instance.expires_at:
                    try:
                        validate_expires_at(expires_at)
                    except ValidationError as invalid:
                        raise ValidationError(invalid.message_dict["expires_at"]) from None
                return expires_at

        return ApiClientForm

    def save_model(self, request: HttpRequest, obj: ApiClient, form, change: bool) -> None:
        # Through the service, so every process drops its cached copy of the client.
        changed = {name: form.cleaned_data[name] for name in UPDATABLE_FIELDS if name in form.changed_data}
        api_client_update(client=obj, **changed)

    def delete_model(self, request: HttpRequest, obj: ApiClient) -> None:
        api_client_delete(client=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            api_client_delete(client=client)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is shown exactly once; `manage.py create_api_client` is the place to see it.
        return False

    @admin.action(description="Revoke the selected clients' tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        revoked = 0
        for client in queryset:
            # Only a revoke this action made: one committed since the changelist read the client (another admin,
            # the command, a benchmark run's clean-up) is not this admin's.
            if client.revoked_at is None and api_client_revoke(client=client).revoked:
                self.log_change(request, client, "Revoked its token.")  # who revoked it, in its history
                revoked += 1
        self.message_user(request, f"Revoked {revoked} client(s).", messages.SUCCESS)

    @admin.action(description="Rotate the selected clients' tokens (shown once)", permissions=["change"])
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> TemplateResponse | None:
        """The new tokens are shown on a page of their own, never cached: as a message they went into the
        `messages` cookie (Django's default storage), readable in the browser and sent back on the next request.

        No token for a client whose token is refused anyway (revoked, expired: as `rotate_api_client`), checked
        on the row locked for the rotation, so a revoke committed meanwhile is seen. Each rotation is in the
        client's history with who made it (the token never is)."""
        held = set(scopes_held_by(request.user))
        issued = []
        refusals = []
        # One transaction for all of them: a rotation failing half-way (a database error, a 500) must not leave
        # the clients before it with new tokens nobody was shown, their only ones.
        with transaction.atomic():
            for pk in queryset.values_list("pk", flat=True):
                client = ApiClient.objects.select_for_update().filter(pk=pk).first()
                if client is None:  # deleted meanwhile
                    continue
                if client.is_revoked:
                    refusals.append(f"{client.name}: not rotated; it is revoked; create a new client instead.")
                elif client.is_expired:
                    refusals.append(f"{client.name}: not rotated; it expired; set a new expiry first.")
                elif RUNNER_ONLY_SCOPES.intersection(client.scopes if isinstance(client.scopes, list) else []):
                    refusals.append(f"{client.name}: not rotated; it is a benchmark run's own token (limitless).")
                elif missing := sorted(set(client.scopes) - held):  # whoever sees the new token holds its scopes
                    refusals.append(f"{client.name}: not rotated; you do not hold {', '.join(missing)}.")
                else:
                    issued.append(api_client_rotate(client=client))
                    self.log_change(request, client, "Rotated its token.")
        for refusal in refusals:
            self.message_user(request, refusal, messages.ERROR)
        if not issued:
            return None
        context = {**self.admin_site.each_context(request), "title": "New tokens", "tokens": issued,
                   "opts": self.model._meta}  # fmt: skip
        response = TemplateResponse(request, "admin/accounts/apiclient/rotated_tokens.html", context)
        add_never_cache_headers(response)
        return response


class GrantsOnlyWhatTheEditorHolds:
    """Permission and group choices limited to what the editor may hand out; an edit keeps what the object held
    beyond that (granted by a superuser), since a form that did not offer it would drop it on save."""

    def formfield_for_manytomany(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name in ("user_permissions", "permissions"):
            kwargs["queryset"] = permissions_grantable_by(request.user).select_related("content_type")
        elif db_field.name == "groups":
            kwargs["queryset"] = groups_grantable_by(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        kept: dict[str, list] = {}
        if change and not request.user.is_superuser:
            for field in self.granting_fields:
                by = groups_grantable_by if field == "groups" else permissions_grantable_by
                kept[field] = list(getattr(form.instance, field).exclude(pk__in=by(request.user)))
        super().save_related(request, form, formsets, change)
        for field, objects in kept.items():
            getattr(form.instance, field).add(*objects)


class StaffGroupAdmin(PlainLookupsAdmin, GrantsOnlyWhatTheEditorHolds, GroupAdmin):
    """Django's group admin offered every permission: an Administrator (who holds auth.change_group) could add
    axes' permissions to their own group, clear their own lockouts and keep guessing a superuser's password."""

    granting_fields = ("permissions",)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        """A role's group is kept (see refuse_deleting_a_role_group): no delete button, and 'Delete selected'
        names it among what it may not delete."""
        from apps.accounts.roles import ROLE_GROUPS

        if obj is not None and obj.name in ROLE_GROUPS:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        """A role's group keeps its name (see refuse_renaming_a_role_group): renamed, it could be deleted."""
        from apps.accounts.roles import ROLE_GROUPS

        readonly = super().get_readonly_fields(request, obj)
        return [*readonly, "name"] if obj is not None and obj.name in ROLE_GROUPS else readonly


class StaffUserAdmin(PlainLookupsAdmin, GrantsOnlyWhatTheEditorHolds, UserAdmin):
    """Django's user admin, except that only a superuser makes or edits a superuser: an Administrator holds
    every permission of the control plane, but could otherwise tick their own superuser box, or reset a
    superuser's password and act as them. And a staff user hands out only the permissions and groups they
    hold: an Administrator could otherwise grant themselves axes' permissions (clear their own lockouts and
    keep guessing a superuser's password) or anything else outside their role."""

    granting_fields = ("user_permissions", "groups")

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class UserForm(form):
            """Times the database can give back: west of UTC the form's 9999-12-31 23:00 was stored as year 10,000,
            and every read of the user failed (the users' list, their own page, their sign-in)."""

            def clean_date_joined(self):
                return time_readable_in_utc(self.cleaned_data.get("date_joined"))

            def clean_last_login(self):
                return time_readable_in_utc(self.cleaned_data.get("last_login"))

        return UserForm

    def get_queryset(self, request: HttpRequest):
        users = super().get_queryset(request)
        return users if request.user.is_superuser else users.filter(is_superuser=False)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return readonly if request.user.is_superuser else [*readonly, "is_superuser"]

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""):
        """Whoever sets a user's password can sign in as them: only for a user holding nothing beyond the editor
        (an Administrator otherwise took over an account a superuser had given axes' permissions, and cleared
        their own lockouts). The rest of such an account stays editable: the grant fields keep what it held."""
        user = self.get_object(request, unquote(id))
        if user is not None and holds_beyond(user, request.user):
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, StaffGroupAdmin)
