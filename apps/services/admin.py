from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.http import HttpRequest

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.services.models import Service
from apps.services.selectors import of_visible_services, sees_every_service, services_visible_to, visible_service_ids
from apps.services.services import (
    EDITABLE_FIELDS,
    name_and_slug_check,
    normalize_name,
    normalize_slug,
    route_prefix_check,
    service_create,
    service_delete,
    service_delete_refusal,
    service_update,
)


class ListRowForm(forms.ModelForm):
    """A row of a changelist's editable columns (`list_editable`). The model's cross-field rules name fields the
    row lacks (a TTL raised past what the stale window leaves names `stale_while_revalidate_seconds`), which a
    form cannot hold: Django raises ValueError, a 500. The row shows them as its own errors, named; a row left as
    it was keeps them out of the way (every row is validated, and one set wrong outside admin would block every
    save of the list)."""

    def add_error(self, field: str | None, error) -> None:
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            kept: dict[str, list] = {}
            for name, errors in error.error_dict.items():
                if name in self.fields or name == NON_FIELD_ERRORS:
                    kept.setdefault(name, []).extend(errors)
                elif self.has_changed():
                    label = self._meta.model._meta.get_field(name).verbose_name
                    kept.setdefault(NON_FIELD_ERRORS, []).extend(
                        ValidationError(f"{label[:1].upper()}{label[1:]}: {message}") for e in errors for message in e
                    )
            if not kept:
                return
            error = ValidationError(kept)
        super().add_error(field, error)


class ListRowFormAdmin(admin.ModelAdmin):
    """An admin whose list has editable columns: a row's errors are shown on the row, never a 500."""

    def get_changelist_form(self, request: HttpRequest, **kwargs):
        kwargs.setdefault("form", ListRowForm)
        return super().get_changelist_form(request, **kwargs)


class ServiceVisibilityAdmin(admin.ModelAdmin):
    """Rows of a service hidden from the user are as absent as missing ones (lists, pages, actions), and
    their forms offer only the services the user sees."""

    service_field = "service"  # the path from this model to its service
    unassigned_visible = False  # rows without a service: everyone's (True) or nobody's but administrators'

    def get_queryset(self, request: HttpRequest):
        visible = visible_service_ids(request.user)
        return of_visible_services(super().get_queryset(request), visible, self.service_field,
                                   unassigned=self.unassigned_visible_to(visible))  # fmt: skip

    def unassigned_visible_to(self, visible_services: frozenset[int] | None) -> bool:
        return self.unassigned_visible

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.related_model is Service:
            kwargs["queryset"] = services_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Service)
class ServiceAdmin(PlainLookupsAdmin, admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "owner_team", "is_active", "slo_p95_ms", "slo_p99_ms", "slo_error_rate_pct",
                    "base_url_error"]  # fmt: skip
    list_filter = ["kind", "is_active", "owner_team"]
    search_fields = ["name", "slug", "owner_team", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["base_url_error", "created_at", "updated_at"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "slug",
                    "kind",
                    "base_url",
                    "base_url_error",
                    "owner_team",
                    "description",
                    "is_active",
                ]
            },
        ),
        ("Access", {"fields": ["visible_to"]}),
        ("Metrics", {"fields": ["route_prefix"]}),
        ("SLO targets", {"fields": ["slo_p95_ms", "slo_p99_ms", "slo_avg_ms", "slo_min_rps", "slo_error_rate_pct"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    filter_horizontal = ["visible_to"]

    @admin.display(description="Base URL problem")
    def base_url_error(self, obj: Service) -> str | None:
        """A URL stored before its rules (or outside admin): benchmarks refuse it with this reason."""
        return obj.base_url_error

    def get_queryset(self, request: HttpRequest):
        return services_visible_to(request.user)

    def get_form(self, request: HttpRequest, obj: Service | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class ServiceForm(form):
            def clean_name(self) -> str:
                """Another service's name in some case, or one that reads the same (full-width letters, runs
                of spaces): a message on the field (the database's constraint would say it for the whole form,
                and only for case). The name is stored normalised; kept as stored, it is not checked again, so
                a stored look-alike pair (services.W003) stays editable until one of them is renamed."""
                name = self.cleaned_data.get("name", "")
                if self.instance.pk and name == self.instance.name:
                    return name
                name = normalize_name(name)
                try:
                    name_and_slug_check(name=name, service_pk=self.instance.pk, editor=user)
                except ValidationError as refused:
                    raise ValidationError(refused.message_dict["name"]) from None
                return name

            def clean_slug(self) -> str:
                slug = normalize_slug(self.cleaned_data.get("slug", ""))
                try:
                    name_and_slug_check(slug=slug, service_pk=self.instance.pk, editor=user)
                except ValidationError as refused:
                    raise ValidationError(refused.message_dict["slug"]) from None
                return slug

            def clean_base_url(self) -> str:
                """A benchmark run sends its plan's token to this URL: see base_url_change_refusal."""
                from apps.benchmarks.selectors import base_url_change_refusal

                base_url = self.cleaned_data.get("base_url", "")
                refusal = base_url_change_refusal(service=self.instance, user=user, base_url=base_url)
                if refusal:
                    raise ValidationError(refusal)
                return base_url

            def clean_route_prefix(self) -> str:
                """Checked here too, so a refusal is a message on the field, not an error page."""
                route_prefix = self.cleaned_data.get("route_prefix", "")
                try:
                    route_prefix_check(route_prefix=route_prefix, service_pk=self.instance.pk, editor=user)
                except ValidationError as refused:
                    raise ValidationError(refused.message_dict["route_prefix"]) from None
                return route_prefix

        return ServiceForm

    def get_readonly_fields(self, request: HttpRequest, obj: Service | None = None) -> list[str]:
        # Who sees a service is the administrators' decision: an Operator of a restricted service could
        # otherwise open it, its traffic and its benchmarks to every role.
        if sees_every_service(request.user):
            return self.readonly_fields
        return [*self.readonly_fields, "visible_to"]

    def get_deleted_objects(self, objs, request: HttpRequest):
        """A service with rows of its own (benchmark runs, alerts...) is shown as protected: the delete page
        and 'Delete selected' refuse it, saying what it has and to deactivate it instead."""
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        refusals = [refusal for service in objs if (refusal := service_delete_refusal(service))]
        if refusals:  # refused whatever the permissions: the page says why (it lists only missing ones otherwise,
            perms_needed = set()  # such as alerts', which no one deletes on their own)
        return to_delete, model_count, perms_needed, [*protected, *refusals]

    def delete_model(self, request: HttpRequest, obj: Service) -> None:
        service_delete(service=obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for service in queryset:
            service_delete(service=service)

    def save_model(self, request: HttpRequest, obj: Service, form, change: bool) -> None:
        # The form already validated; the service layer saves so admin and API behave the same.
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.cleaned_data}
        if change:
            # Only what the form changed: the others as the form read them would undo a concurrent edit.
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            service_update(service=obj, editor=request.user, **changed)
        else:
            saved = service_create(editor=request.user, **fields)
            obj.pk = saved.pk
