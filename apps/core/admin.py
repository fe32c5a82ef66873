"""The beat schedules' admin, narrowed for those who may not choose what runs.

A schedule's task and arguments are a code path with its inputs: `optimizer.scheduled_run` with
`apply: true`, a benchmark or a scaling apply on the id of a service hidden from the editor. Operators
retime, enable, disable and run the schedules that exist; only those who may add one (Administrators)
choose a task, its arguments and where it is sent.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

WHAT_RUNS = ("name", "task", "args", "kwargs", "queue", "exchange", "routing_key", "priority", "headers",
             "expires", "expire_seconds", "one_off")  # fmt: skip


class RetimeForm(forms.ModelForm):
    """When and whether it runs: no registered-task picker, no task required from the form."""

    class Meta:
        model = PeriodicTask
        fields = ("enabled", "description", "interval", "crontab", "solar", "clocked", "start_time")


class ScheduleAdmin(PeriodicTaskAdmin):
    @staticmethod
    def may_choose_what_runs(request: HttpRequest) -> bool:
        return request.user.has_perm("django_celery_beat.add_periodictask")

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if self.may_choose_what_runs(request) else (*fields, *WHAT_RUNS)

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self.may_choose_what_runs(request):
            return fieldsets
        return [(title, {**options, "fields": [f for f in options["fields"] if f != "regtask"]})
                for title, options in fieldsets]  # fmt: skip

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        if not self.may_choose_what_runs(request):
            kwargs["form"] = RetimeForm
        return super().get_form(request, obj, change=change, **kwargs)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, ScheduleAdmin)
