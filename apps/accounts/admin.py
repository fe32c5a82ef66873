from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.models import ApiClient
from apps.accounts.services import UPDATABLE_FIELDS, api_client_revoke, api_client_rotate, api_client_update


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "token_prefix", "scopes", "is_active", "expires_at", "revoked_at", "created_at"]
    list_filter = ["is_active", "expires_at", "revoked_at"]
    search_fields = ["name", "token_prefix", "description"]
    readonly_fields = ["token_prefix", "token_hash", "created_at", "rotated_at", "revoked_at"]
    actions = ["revoke_tokens", "rotate_tokens"]

    def save_model(self, request: HttpRequest, obj: ApiClient, form, change: bool) -> None:
        # Through the service, so every process drops its cached copy of the client.
        changed = {name: form.cleaned_data[name] for name in UPDATABLE_FIELDS if name in form.changed_data}
        api_client_update(client=obj, **changed)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is shown exactly once; `manage.py create_api_client` is the place to see it.
        return False

    @admin.action(description="Revoke the selected clients' tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            api_client_revoke(client=client)
        self.message_user(request, f"Revoked {queryset.count()} client(s).", messages.SUCCESS)

    @admin.action(description="Rotate the selected clients' tokens (shown once)")
    def rotate_tokens(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            issued = api_client_rotate(client=client)
            self.message_user(
                request,
                f"New token for {client.name} (copy it now, it is not stored): {issued.token}",
                messages.WARNING,
            )
