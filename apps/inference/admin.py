from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from apps.core.admin_lookups import PlainLookupsAdmin
from apps.core.admin_paginator import EstimatedCountPaginator
from apps.inference import selectors
from apps.inference.models import ModelDeployment, QuantizationProfile
from apps.services.admin import ServiceVisibilityAdmin


def _figure(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


QUANTIZATION_FIELDS = ["quantization", "fidelity_budget", "chosen_quantization", "chosen_at", "serving_here",
                       "load_failure", "load_failed_at"]  # fmt: skip
SERVING_FIELDS = ["max_batch_size", "max_queue_delay_ms", "max_input_tokens", "max_new_tokens",
                  "max_concurrent_streams", "slo_p95_ms", "updated_at"]  # fmt: skip


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    unassigned_visible = True  # a deployment of no service is everyone's
    list_display = ["name", "task", "source", "quantization", "chosen_quantization", "max_batch_size",
                    "slo_p95_ms", "enabled"]  # fmt: skip
    readonly_fields = ["chosen_quantization", "chosen_at", "serving_here", "load_failure", "load_failed_at",
                       "updated_at", "measured_modes"]  # fmt: skip
    actions = ["measure_modes"]
    fieldsets = [
        (None, {"fields": ["name", "service", "enabled", "task", "source", "local_path", "device"]}),
        ("Quantization", {"fields": QUANTIZATION_FIELDS}),
        ("Serving", {"fields": SERVING_FIELDS}),
        ("Measured on this host", {"fields": ["measured_modes"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # As a cache policy's namespace: a bundled deployment is found by its name (seed_demo, the API's URL).
        bundled = obj is not None and selectors.is_bundled_deployment(obj)
        return [*self.readonly_fields, "name"] if bundled else self.readonly_fields

    @admin.display(description="serving here")
    def serving_here(self, deployment: ModelDeployment) -> str:
        """The mode this server process answers in, which is not always the one configured or measured."""
        from apps.inference import serving

        if deployment.pk is None:
            return "-"
        mode, reason = serving.serving_here(deployment)
        return mode if reason is None else f"{mode}: {reason}"

    @admin.display(description="modes")
    def measured_modes(self, deployment: ModelDeployment) -> str:
        profiles = selectors.latest_profiles(deployment)
        if not profiles:
            return "Not measured yet: use the action “Measure every quantization mode”, or `manage.py optimize model`."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (p.mode, _figure(p.sequences_per_s), _figure(p.tokens_per_s), _figure(p.p95_ms_batch1),
                 _figure(p.peak_memory_mb, 0), _figure(p.fidelity_loss, 4), p.best_batch_size or "-", p.verdict)
                for p in profiles
            ),
        )  # fmt: skip
        return format_html(
            "<p>Measured {}.</p><table><tr><th>mode</th><th>seq/s</th><th>tokens/s</th><th>p95 batch 1 (ms)</th>"
            "<th>memory (MB)</th><th>fidelity loss</th><th>best batch</th><th>verdict</th></tr>{}</table>",
            profiles[0].measured_at,
            rows,
        )

    # Only for those who may edit deployments: a measurement loads every mode of the model on the inference
    # workers, beside the traffic they serve.
    @admin.action(description="Measure every quantization mode (on an inference worker)", permissions=["change"])
    def measure_modes(self, request, queryset) -> None:
        from apps.inference.tasks import profile_deployment

        try:
            for deployment in queryset:
                profile_deployment.delay(deployment.pk)
        except Exception as exc:  # noqa: BLE001 - the broker is down: say so rather than fail the page
            self.message_user(request, f"Could not reach the workers: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Measuring {queryset.count()} deployment(s) on the inference queue.")


@admin.register(QuantizationProfile)
class QuantizationProfileAdmin(PlainLookupsAdmin, ServiceVisibilityAdmin):
    service_field, unassigned_visible = "deployment__service", True
    show_full_result_count = False  # one row per mode per measurement
    paginator = EstimatedCountPaginator  # unfiltered: the table's statistics, not a COUNT(*) of it
    list_display = ["deployment", "mode", "measured_at", "available", "chosen", "sequences_per_s", "tokens_per_s",
                    "peak_memory_mb", "fidelity_loss"]  # fmt: skip
    list_filter = [("deployment", admin.RelatedOnlyFieldListFilter), "mode", "chosen", "available"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
