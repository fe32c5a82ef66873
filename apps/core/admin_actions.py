"""Every admin's actions refuse a selected id that is not one of the model's keys with a 400.

A changelist action filters its rows by the posted `_selected_action` values: a crafted or mangled form with
"abc" in it made the filter raise, a 500. The check lives on ModelAdmin itself, installed once by
CoreConfig.ready(), so every admin has it, third parties' and one added later too.
"""

from __future__ import annotations

import functools

from django.contrib import admin
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseBadRequest


def malformed_selection(model_admin: admin.ModelAdmin, request: HttpRequest) -> str | None:
    """Why the posted selection cannot be the model's keys, or None when each value is one."""
    pk = model_admin.model._meta.pk
    for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        try:
            if "\x00" in value:
                raise ValidationError("NUL")
            pk.to_python(value)
        except ValidationError:
            kind = "a whole number" if pk.get_internal_type().endswith("AutoField") else f"a {pk.verbose_name}"
            return (
                f"{helpers.ACTION_CHECKBOX_NAME}: each selected row is a {model_admin.opts.verbose_name} id ({kind})."
            )
    return None


def install() -> None:
    """Wrap ModelAdmin.response_action once (ready() may run twice)."""
    original = admin.ModelAdmin.response_action
    if getattr(original, "refuses_malformed_selection", False):
        return

    @functools.wraps(original)
    def response_action(self, request, queryset):
        problem = malformed_selection(self, request)
        if problem is not None:
            return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
        return original(self, request, queryset)

    response_action.refuses_malformed_selection = True
    admin.ModelAdmin.response_action = response_action
