"""The beat schedules' admin, narrowed for those who may not choose what runs.

A schedule's task and arguments are a code path with its inputs: `optimizer.scheduled_run` with
`apply: true`, a benchmark or a scaling apply on the id of a service hidden from the editor. Operators
retime, enable, disable and run the schedules that exist; only those who may add one (Administrators)
choose a task, its arguments and where it is sent.
"""

from __future__ import annotations

import inspect
import json
from datetime import UTC, date, timedelta

from celery import current_app
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django_celery_beat.admin import (
    ClockedScheduleAdmin,
    CrontabScheduleAdmin,
    IntervalScheduleAdmin,
    PeriodicTaskAdmin,
    PeriodicTaskForm,
    PeriodicTaskInline,
    SolarScheduleAdmin,
)
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule
from kombu.utils.json import loads

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.core.broker_errors import broker_failure, send_errors
from apps.core.schedules import CRONTAB_GAP_HORIZON_DAYS
from apps.services.selectors import sees_all_traffic, visible_service_ids

WHAT_RUNS = ("name", "task", "args", "kwargs", "queue", "exchange", "routing_key", "priority", "headers",
             "expires", "expire_seconds", "one_off")  # fmt: skip


def consumed_queues() -> tuple[str, ...]:
    """The queues the product's workers consume (CELERY_TASK_QUEUES: the Procfile's and k8s's workers name them)."""
    return tuple(queue.name for queue in settings.CELERY_TASK_QUEUES)


def time_readable_in_utc(value):
    """`value` (a form's aware datetime, or None) when the database can give it back: in a zone west of UTC a
    form's last evening of year 9999 is year 10,000 in UTC (east of it, year 1's first hours are year 0), which
    PostgreSQL stores and psycopg cannot read: every later read of the row failed, its own admin page included."""
    if value is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("A time between the years 1 and 9999 in UTC.") from None
    return value


def task_arguments_error(task, args, kwargs) -> str | None:
    """Why Celery's registered `task` cannot be called with `args` and `kwargs` (its signature), or None. Beat
    sent such a schedule at each due time and the worker failed it (or Celery refused the send: a
    SchedulingError logged every time), and "Run selected tasks" was a 500 after sending the schedules before."""
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return "Arguments must be a JSON list (args) and a JSON object (kwargs)."
    try:
        signature = inspect.signature(task.run)  # a bound task's run is its bound method: no `self` to give
    except (TypeError, ValueError):
        return None  # nothing to check against
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"These arguments do not fit the task {task.name}{signature}: {exc}."
    check = ARGUMENT_CHECKS.get(task.name)
    return check(bound.arguments) if check is not None else None


def _partition_months_ahead(arguments: dict) -> str | None:
    """audit.ensure_partitions' months_ahead within the bounds the task accepts: out of them each daily run
    failed (a ValueError), and the trail's months ran out of partitions."""
    from apps.audit.services import PARTITION_MONTHS_AHEAD_MAX

    months = arguments.get("months_ahead", 0)
    if isinstance(months, bool) or not isinstance(months, int) or not 0 <= months <= PARTITION_MONTHS_AHEAD_MAX:
        return f"months_ahead must be a whole number from 0 to {PARTITION_MONTHS_AHEAD_MAX}, not {months!r}."
    return None


# A task's own bounds on its arguments, checked once they fit its signature (task name: check of the arguments
# bound by name, returning why not or None).
ARGUMENT_CHECKS = {"audit.ensure_partitions": _partition_months_ahead}


def registered_task(name: str):
    """Celery's registered task named `name`, or None: the tasks of every app, imported."""
    current_app.loader.import_default_modules()
    return current_app.tasks.get(name)


class TimesReadableInUtc:
    """A schedule's start and expiry times, readable back (`time_readable_in_utc`): the schedules' list, the
    schedule's own page and beat's every read of the schedules failed on one that was not."""

    def clean_start_time(self):
        return time_readable_in_utc(self.cleaned_data.get("start_time"))

    def clean_expires(self):
        return time_readable_in_utc(self.cleaned_data.get("expires"))


class RetimeForm(TimesReadableInUtc, forms.ModelForm):
    """When and whether it runs: no registered-task picker, no task required from the form."""

    class Meta:
        model = PeriodicTask
        fields = ("enabled", "description", "interval", "crontab", "solar", "clocked", "start_time")


class WhatRunsForm(TimesReadableInUtc, PeriodicTaskForm):
    """django-celery-beat's form, without its two 500s: a task name its own field refused (a NUL byte) reached
    its `clean()` as a KeyError, and empty headers were saved as NULL into a NOT NULL column. Its arguments
    had only to be JSON: kwargs of `[]` or args of `{}` were stored, then Celery refused every send of them
    (beat logged the error at each due time, the task never ran, and "Run selected tasks" was a 500)."""

    def clean_args(self) -> str:
        return self._json_of_type("args", list, 'A JSON list of positional arguments, e.g. [] or [1, "all"].')

    def clean_kwargs(self) -> str:
        return self._json_of_type("kwargs", dict, 'A JSON object of keyword arguments, e.g. {"target": "all"}.')

    def _json_of_type(self, field: str, kind: type, wanted: str) -> str:
        value = self._clean_json(field)
        if value and not isinstance(loads(value), kind):  # empty: the model's default ([] or {})
            raise forms.ValidationError(wanted)
        return value

    def clean_regtask(self) -> str:
        # The picker's field takes any value (its valid_value is always True): "a\x00b" was a 500 at the
        # save, and any other text was stored as the task name, which beat then failed to send.
        value = self.cleaned_data.get("regtask") or ""
        if value and value not in {name for name, _ in self.fields["regtask"].widget.choices if name}:
            raise forms.ValidationError("Not a registered task: choose one from the list.")
        return value

    def clean(self):
        if "task" in self._errors or "regtask" in self._errors:
            return self.cleaned_data  # the field's own error says why
        data = super().clean()
        name = data.get("task") or ""
        task = registered_task(name)
        if task is None and name:
            # The custom field took any name: `core.heartbeet` was saved, and the worker dropped each send of it
            # ("Received unregistered task") while the schedule showed enabled.
            self.add_error("task", f'"{name}" is not a task registered with Celery: check its spelling.')
        elif task is not None and not {"args", "kwargs"} & set(self._errors):
            args, kwargs = loads(data.get("args") or "[]"), loads(data.get("kwargs") or "{}")
            error = task_arguments_error(task, args, kwargs)
            if error is not None:
                keyword = kwargs and ("keyword" in error or "months_ahead" in error)
                self.add_error("kwargs" if keyword else "args", error)
        return data

    def clean_queue(self) -> str:
        # Any name was saved, and beat sent to it for good: a queue no worker consumes (the heartbeat's
        # `defualt`) piled the work up unread, with nothing said anywhere.
        value = (self.cleaned_data.get("queue") or "").strip()
        allowed = consumed_queues()
        if value and value not in allowed:
            raise forms.ValidationError(
                f"Not a queue the workers consume: one of {', '.join(allowed)}, or blank for the task's own route."
            )
        return value

    def clean_headers(self) -> str:
        value = self.cleaned_data.get("headers") or "{}"
        try:
            headers = json.loads(value)
        except ValueError as exc:
            raise forms.ValidationError(f"Unable to parse JSON: {exc}") from None
        if not isinstance(headers, dict):
            raise forms.ValidationError('A JSON object, e.g. {"x-origin": "admin"}.')
        return value


EVERY_SERVICE = "every service"  # what a schedule acting on the whole registry concerns

# The schedules' tasks that act on services (a load test, a measurement, a scaling apply): task name -> (the
# argument naming a row, its model as "app.Model", the path from that model to its service). A schedule of
# any other task (pruning, heartbeat, forecasts, alerts) sends no work to a service: it is everyone's.
SERVICE_ROW_ARGUMENTS = {
    "benchmarks.scheduled_run": ("plan_id", "benchmarks.BenchmarkPlan", "service_id"),
    "benchmarks.execute_run": ("run_id", "benchmarks.BenchmarkRun", "plan__service_id"),
    "scaling.apply_policy": ("policy_id", "scaling.ScalingPolicy", "service_id"),
    "scaling.withdraw_policy": ("policy_id", "scaling.ScalingPolicy", "service_id"),
    "inference.profile_deployment": ("deployment_id", "inference.ModelDeployment", "service_id"),
}
# Tasks that measure (and may apply to) every service: "optimize all" sends its load to each one.
EVERY_SERVICE_TASKS = frozenset({"optimizer.scheduled_run"})


def _row_argument(schedule: PeriodicTask, name: str):
    """The schedule's argument `name` (by keyword, else its first positional), or None when unreadable."""
    try:
        args, kwargs = loads(schedule.args or "[]"), loads(schedule.kwargs or "{}")
    except ValueError:
        return None
    if isinstance(kwargs, dict) and name in kwargs:
        return kwargs[name]
    return args[0] if isinstance(args, list) and args else None


def schedules_hidden_from(user, schedules) -> tuple[set[int], set[int]]:
    """(the ids of `schedules` that act on a service hidden from `user`, those that act on every service while
    one is hidden from them). A nightly benchmark is named after its plan and carries the plan's id: listed,
    an Operator outside the service's group read it, disabled it, or ran a load test of the hidden service."""
    from django.apps import apps

    visible = visible_service_ids(user)
    if visible is None:
        return set(), set()
    rows = [PeriodicTask(pk=pk, task=task, args=args, kwargs=kwargs) for pk, task, args, kwargs
            in schedules.filter(task__in=[*SERVICE_ROW_ARGUMENTS, *EVERY_SERVICE_TASKS])
            .select_related(None).values_list("pk", "task", "args", "kwargs")]  # fmt: skip
    every = {row.pk for row in rows if row.task in EVERY_SERVICE_TASKS}
    if every and sees_all_traffic(visible):
        every = set()
    wanted: dict[str, dict[int, list[int]]] = {}  # task -> row id -> schedule ids
    for row in rows:
        if row.task in SERVICE_ROW_ARGUMENTS:
            row_id = _row_argument(row, SERVICE_ROW_ARGUMENTS[row.task][0])
            if isinstance(row_id, int) and not isinstance(row_id, bool):
                wanted.setdefault(row.task, {}).setdefault(row_id, []).append(row.pk)
    hidden: set[int] = set()
    for task, by_row in wanted.items():
        _, model_name, service_path = SERVICE_ROW_ARGUMENTS[task]
        services = apps.get_model(model_name).objects.filter(pk__in=by_row).values_list("pk", service_path)
        for row_id, service_id in services:
            if service_id not in visible:
                hidden.update(by_row[row_id])
    return hidden, every


def schedules_visible_to(user, schedules):
    """`schedules` less those acting on a service hidden from `user` (as absent as missing ones)."""
    hidden, _ = schedules_hidden_from(user, schedules)
    return schedules.exclude(pk__in=hidden) if hidden else schedules


class ScheduleAdmin(PlainLookupsAdmin, PeriodicTaskAdmin):
    form = WhatRunsForm

    def get_queryset(self, request: HttpRequest):
        return schedules_visible_to(request.user, super().get_queryset(request))

    def may_act_on(self, request: HttpRequest, schedule: PeriodicTask | None) -> bool:
        """A schedule acting on every service ("optimize all") is changed, switched and run only by those from
        whom no service is hidden: its load reaches the services they cannot see."""
        if schedule is None:
            return True
        _, every = schedules_hidden_from(request.user, PeriodicTask.objects.filter(pk=schedule.pk))
        return not every

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self.may_act_on(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self.may_act_on(request, obj)

    def _actionable(self, request: HttpRequest, queryset):
        """The selected schedules this user may act on; each left out is named in an error."""
        _, every = schedules_hidden_from(request.user, queryset)
        if not every:
            return queryset
        for name in queryset.filter(pk__in=every).values_list("name", flat=True):
            self.message_user(request, f"Not changed: {name} acts on every service, some hidden from you; "
                              "an administrator changes or runs it.", messages.ERROR)  # fmt: skip
        return queryset.exclude(pk__in=every)

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request: HttpRequest, queryset) -> None:
        queryset = self._actionable(request, queryset)
        if queryset.exists():
            super().enable_tasks(request, queryset)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request: HttpRequest, queryset) -> None:
        queryset = self._actionable(request, queryset)
        if queryset.exists():
            super().disable_tasks(request, queryset)

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request: HttpRequest, queryset) -> None:
        queryset = self._actionable(request, queryset)
        if queryset.exists():
            super().toggle_tasks(request, queryset)

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

    @admin.action(description="Run selected tasks")
    def run_tasks(self, request: HttpRequest, queryset) -> None:
        """django-celery-beat's action, sending each schedule as it did (its arguments, its queue, its name as the
        periodic_task_name header), with each schedule that cannot be sent named in an error (its arguments do
        not fit its task, or its task is not registered): such a schedule was a 500 after the ones before it
        were sent. The broker not taking the send is said so (as the benchmark, scaling and inference "send now"
        actions do): kombu's OperationalError, or the transport's refusal (a vhost missing), was a 500."""
        queryset = self._actionable(request, queryset)  # "optimize all" while a service is hidden from them
        sent, refused = 0, []
        for schedule in queryset:
            task = registered_task(schedule.task)
            if task is None:
                refused.append(f'{schedule.name}: task "{schedule.task}" is not registered')
                continue
            try:
                args, kwargs = loads(schedule.args or "[]"), loads(schedule.kwargs or "{}")
            except ValueError:
                refused.append(f"{schedule.name}: its arguments are not JSON")
                continue
            error = task_arguments_error(task, args, kwargs)
            if error is not None:
                refused.append(f"{schedule.name}: {error}")
                continue
            options = {"queue": schedule.queue} if schedule.queue else {}
            try:
                task.apply_async(args=args, kwargs=kwargs, headers={"periodic_task_name": schedule.name}, **options)
            except send_errors(task.app) as exc:
                unsent = "the selected tasks were not sent" if not sent else f"{sent} sent, the others not"
                self.message_user(request, f"{unsent.capitalize()}: {broker_failure(exc)}.", messages.ERROR)
                return
            except (TypeError, ValueError) as exc:  # what Celery refused to send
                refused.append(f"{schedule.name}: {exc}")
                continue
            sent += 1
        if sent:
            self.message_user(request, f"{sent} task{pluralize(sent)} {pluralize(sent, 'was,were')} successfully run")
        for reason in refused:
            self.message_user(request, f"Not sent: {reason}", messages.ERROR)


class VisibleSchedulesInline(PeriodicTaskInline):
    """The schedules using a timing, less those acting on a service hidden from the user: the crontab's page
    listed the nightly benchmark of a hidden service, its name and plan id."""

    def get_queryset(self, request: HttpRequest):
        return schedules_visible_to(request.user, super().get_queryset(request))


class InlineOnlyShown:
    """A beat timing's admin whose inline (the schedules using it) is read-only with nothing to add: a posted
    form has nothing to save in it, so a post builds none. Built on a post it trusted the posted TOTAL_FORMS,
    and 99999999 built and rendered a thousand empty forms (seconds of a worker) only to refuse the save. It
    lists only the schedules the user sees (VisibleSchedulesInline), and a timing shared with a schedule the
    user may not change is theirs to read only (`may_retime`)."""

    inlines = [VisibleSchedulesInline]

    def get_inline_instances(self, request: HttpRequest, obj=None):
        if request.method == "POST":
            return []
        return super().get_inline_instances(request, obj)

    def may_retime(self, request: HttpRequest, timing) -> bool:
        """Whether the user may change or delete `timing`: not when a schedule using it acts on a service hidden
        from them, or on every service while one is (ScheduleAdmin.may_act_on). The row is shared: an Operator
        saving the nightly crontab retimed the hidden service's load test and "optimize all" with it (deleting
        it deletes them), though the inline listed neither. Asked several times a page: kept on the request."""
        if timing is None or timing.pk is None:
            return True
        known = request.__dict__.setdefault("_may_retime", {})
        key = (timing._meta.label, timing.pk)
        if key not in known:
            hidden, every = schedules_hidden_from(request.user, timing.periodictask_set.all())
            known[key] = not hidden and not every
        return known[key]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self.may_retime(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self.may_retime(request, obj)

    def render_change_form(self, request: HttpRequest, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not self.may_retime(request, obj) and super().has_change_permission(request, obj):
            self.message_user(request, "Read only: schedules you may not change use this timing too (a hidden "
                              "service's, or one acting on every service); an administrator changes it, or choose "
                              "another timing for your schedule.", messages.WARNING)  # fmt: skip
        return super().render_change_form(request, context, add, change, form_url, obj)


# The shortest interval a schedule may have: `1 microseconds` was saved, and beat sent 1,821 messages in 9 s.
MIN_INTERVAL = timedelta(seconds=1)


class IntervalForm(forms.ModelForm):
    class Meta:
        model = IntervalSchedule
        fields = ("every", "period")

    def clean(self):
        data = super().clean()
        every, period = data.get("every"), data.get("period")
        if isinstance(every, int) and period:
            try:
                length = timedelta(**{period: every})
            except (TypeError, OverflowError):
                length = None
            if length is not None and length < MIN_INTERVAL:
                self.add_error("every", "An interval of at least one second: beat would send it without pause.")
        return data


class IntervalAdmin(PlainLookupsAdmin, InlineOnlyShown, IntervalScheduleAdmin):
    form = IntervalForm


def crontab_never_runs(schedule: CrontabSchedule, *, start: date | None = None) -> bool:
    """Whether the crontab's days never come (`0 0 31 2 *`): no day over CRONTAB_GAP_HORIZON_DAYS (eight years
    and a day: 29 February across a century's skipped leap day) matches its day of month, month and day of week
    together, as celery reads them, or celery refuses it as such. Beat skipped such a schedule with nothing said,
    while it showed enabled. Its fields must parse (their own validators say why not)."""
    try:
        cron = schedule.schedule  # celery's crontab, its fields expanded to sets
    except ValueError:  # celery's own check: "day_of_month '31' never occurs in month_of_year '2'"
        return True
    day = start or date.today()
    for _ in range(CRONTAB_GAP_HORIZON_DAYS):
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and (day.weekday() + 1) % 7 in cron.day_of_week
        ):
            return False
        day += timedelta(days=1)
    return True


class CrontabForm(forms.ModelForm):
    class Meta:
        model = CrontabSchedule
        fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")

    def clean(self):
        data = super().clean()
        fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        if any(field in self._errors for field in fields):
            return data  # the field's own error says why
        candidate = CrontabSchedule(**{field: data.get(field) or "*" for field in fields})
        try:
            never = crontab_never_runs(candidate)
        except Exception:  # noqa: BLE001 - celery's ParseException is no ValueError; the fields say what is wrong
            return data
        if never:
            raise forms.ValidationError(
                "This crontab never runs: no day matches its day of month, month and day of week together."
            )
        return data


class SolarAdmin(PlainLookupsAdmin, InlineOnlyShown, SolarScheduleAdmin):
    pass


class ClockedAdmin(PlainLookupsAdmin, InlineOnlyShown, ClockedScheduleAdmin):
    pass


class CrontabAdmin(PlainLookupsAdmin, InlineOnlyShown, CrontabScheduleAdmin):
    """django-celery-beat's crontab admin, whose page showed its readable form even for values the fields had
    just refused: "-1" as a minute was a 500 (celery's ParseException) instead of the field's error. A crontab
    that never runs is refused (crontab_never_runs)."""

    form = CrontabForm

    list_display = ("__str__", "readable")
    fields = ("readable", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")
    readonly_fields = ("readable",)

    @admin.display(description="human readable")
    def readable(self, schedule: CrontabSchedule) -> str:
        try:
            return schedule.human_readable
        except Exception:  # noqa: BLE001 - celery's ParseException is no ValueError; the fields say what is wrong
            return "-"

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "timezone":
            field.coerce = _zone_or_invalid(field.coerce)
        return field


def _zone_or_invalid(coerce):
    """The time zone field's coercion with every unreadable name a ValidationError. Django coerces the form's
    hidden initial value too (to see whether the field changed) and expects only that error: a 300-character
    `initial-timezone` made zoneinfo open a file name too long (OSError), a 500."""

    def zone(value):
        try:
            return coerce(value)
        except (OSError, ValueError):
            raise forms.ValidationError("Unknown time zone.") from None

    return zone


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, ScheduleAdmin)
admin.site.unregister(CrontabSchedule)
admin.site.register(CrontabSchedule, CrontabAdmin)
for _model, _admin in ((IntervalSchedule, IntervalAdmin), (SolarSchedule, SolarAdmin), (ClockedSchedule, ClockedAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, _admin)


def _with_plain_lookups(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    return type(admin_class.__name__, (PlainLookupsAdmin, admin_class), {"__module__": __name__})


# django-axes registers its lockout logs itself (when AXES_ENABLE_ADMIN): the same admins, with changelist lookups
# limited to plain comparisons (`?attempt_time__year=99999` was a 500). Registered before this module (axes comes
# first in INSTALLED_APPS).
for _model, _model_admin in list(admin.site._registry.items()):
    if _model._meta.app_label == "axes" and not isinstance(_model_admin, PlainLookupsAdmin):
        admin.site.unregister(_model)
        admin.site.register(_model, _with_plain_lookups(type(_model_admin)))
