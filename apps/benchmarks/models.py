"""Benchmark plans (edited in admin), their runs with results and verdicts, and detected regressions."""

from __future__ import annotations

import contextlib
import math
import re
import unicodedata
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.benchmarks.token_hosts import canonical_host, token_host_parse


def default_requests() -> list[dict]:
    return [{"name": "patient card", "method": "GET", "path": "/api/v1/patients/{patient_id}/", "weight": 1}]


def default_scopes() -> list[str]:
    return ["patient:read", "clinical:read"]


# A run's shape is built in memory and its deadline computed from it (runner.stages_for): these keep both
# bounded, and a run within a day, so "Run now" never fails on a value the form accepted.
MAX_USERS = 10_000
MAX_SECONDS = 24 * 3600
MAX_STAGES = 1_000
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REQUEST_KEYS = {"name", "method", "path", "weight", "body"}
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# A weight is a share of the mix: a million to one already sends the lighter request once in a million.
# Capped, each weight is a float and so is their sum (the locustfile's float(), random.choices): 10**400, or
# two weights of 1e308, passed "finite" and then failed every run of the plan.
MAX_WEIGHT = 1_000_000


def above_zero(value: float) -> None:
    """A latency or rate gate of 0 or less could never pass (and 0 read as empty: the service's SLO)."""
    if value is not None and not value > 0:
        raise ValidationError("Above 0, or empty for the service's SLO.")


# A request's body, like the mix and the scopes, is data, not a document: nested deeper than this it is a
# mistake or an attack, and walking it (our checks, the JSON encoder, PostgreSQL) ran out of Python's stack.
MAX_JSON_DEPTH = 32


def _too_deep(value) -> bool:
    """Whether a JSON value nests lists or objects deeper than MAX_JSON_DEPTH (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > MAX_JSON_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _non_finite(value) -> bool:
    """NaN or an infinity anywhere in a JSON value: Python's json reads them, PostgreSQL's json refuses them."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(item) for item in value)
    return False


def _request_error(request) -> str | None:
    """What is wrong with one entry of a plan's request mix, if anything."""
    if not isinstance(request, dict):
        return 'an object like {"path": "/...", "weight": 1}'
    unknown = sorted(set(request) - REQUEST_KEYS)
    if unknown:
        return f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(REQUEST_KEYS))})"
    if not isinstance(request.get("path"), str) or not request["path"].startswith("/"):
        return "a path starting with /"
    if any(char.isspace() or unicodedata.category(char).startswith("C") for char in request["path"]):
        # CR/LF would end the request line and start a header of the path's choosing; a space ends the path.
        # The plan was stored, and its run "succeeded" with every request failed.
        return "a path without spaces or control characters (percent-encode them: %20, %0D)"
    unknown_fields = sorted(set(PLACEHOLDER.findall(request["path"])) - {"patient_id"})
    if unknown_fields:
        # Sent as written, "/patients/{mrn}/" made every request a 404: a run of errors, not of the service.
        return f"a path whose only placeholder is {{patient_id}} (not {', '.join(f'{{{f}}}' for f in unknown_fields)})"
    if "name" in request and (not isinstance(request["name"], str) or not request["name"].strip()):
        # A blank name is no name to Locust, which then names each request by its URL: one endpoint row per
        # patient drawn, each patient's id in the run's endpoints, report and API.
        return "a name that is text (or no name: the path is its name)"
    method = request.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        return f"an HTTP method ({', '.join(HTTP_METHODS)})"
    weight = request.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= MAX_WEIGHT:
        return f"a weight above 0 and at most {MAX_WEIGHT:,} (a share of the mix, not a count)"
    return None


def request_mix_error(requests) -> str | None:
    """What is wrong with a plan's request mix, if anything: checked on save (clean) and again as a run starts,
    for a plan stored around the checks (raw SQL, an older release), whose Locust would fail on it."""
    if _too_deep(requests):
        return f"Nested more than {MAX_JSON_DEPTH} levels deep."
    if _non_finite(requests):
        return "NaN and Infinity are not JSON numbers: use a finite number."
    if not isinstance(requests, list) or not requests:
        return "A list of at least one request."
    for position, request in enumerate(requests):
        if problem := _request_error(request):
            return f"Request {position + 1}: {problem}."
    return None


def _allowed_origins() -> list[tuple[str, int | None]]:
    """BENCHMARK_TOKEN_HOSTS as (canonical host, port or None): an entry that is none matches nothing (never
    "any port"; start-up refuses it)."""
    origins = []
    for entry in settings.BENCHMARK_TOKEN_HOSTS:
        with contextlib.suppress(ValueError):
            origins.append(token_host_parse(entry))
    return origins


def token_host_allowed(base_url: str) -> bool:
    """Whether a run may send its token to this URL (settings.BENCHMARK_TOKEN_HOSTS, set at deploy time).
    An entry with a port (`127.0.0.1:8000`) allows that port only: another port of a shared host may be
    anyone's listener.

    The host and port must be the same to urllib and to urllib3 (what requests, and so Locust, sends with),
    and the URL may hold no credentials or backslash: `http://evil.example\\@127.0.0.1` is 127.0.0.1 to one
    and evil.example to the other."""
    from urllib3.util import parse_url

    if "@" in base_url or "\\" in base_url:
        return False
    try:
        split, sent_to = urlsplit(base_url), parse_url(base_url)
        host, port = (split.hostname or "").lower(), split.port
    except ValueError:
        return False
    if host != (sent_to.host or "").lower().strip("[]") or port != sent_to.port:
        return False
    port, host = port or {"http": 80, "https": 443}.get(split.scheme.lower()), canonical_host(host)
    return any(host == allowed and allowed_port in (None, port) for allowed, allowed_port in _allowed_origins())


class BenchmarkPlan(models.Model):
    """What to send to which service, how (the shape), and the SLO gates a run must pass."""

    class Kind(models.TextChoices):
        LOAD = "load", "Load (steady users)"
        STRESS = "stress", "Stress (step up until a gate breaks)"
        SPIKE = "spike", "Spike (N x the users, then back)"
        ENDURANCE = "endurance", "Endurance (long steady load)"
        VOLUME = "volume", "Volume (across the full data set)"

    name = models.CharField(max_length=120, unique=True)
    service = models.ForeignKey("services.Service", on_delete=models.CASCADE, related_name="benchmark_plans")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.LOAD)
    requests = models.JSONField(
        default=default_requests,
        help_text='Weighted mix: [{"name", "method", "path", "weight", "body"}]; {patient_id} picks a real patient.',
    )
    scopes = models.JSONField(default=default_scopes, help_text="Scopes of the short-lived token each run uses.")
    users = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(MAX_USERS)])
    spawn_rate = models.FloatField(default=10.0, validators=[MinValueValidator(0.1), MaxValueValidator(MAX_USERS)])
    arrival_rate = models.FloatField(
        "arrival rate (req/s)", null=True, blank=True, validators=[MinValueValidator(0.1), MaxValueValidator(1e6)],
        help_text="Open model: the users send at this total rate, latency also measured from the intended send "
        "time. Empty: closed model (each user sends as soon as it has its answer).",
    )  # fmt: skip
    duration_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(5), MaxValueValidator(MAX_SECONDS)]
    )
    generator_processes = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(32)],
        help_text="More than 1: Locust runs distributed (a master and this many worker processes).",
    )  # fmt: skip
    step_users = models.PositiveIntegerField(
        "stress: users added per step", default=10, validators=[MinValueValidator(1), MaxValueValidator(MAX_USERS)]
    )
    step_seconds = models.PositiveIntegerField(
        "stress: seconds per step", default=20, validators=[MinValueValidator(5), MaxValueValidator(MAX_SECONDS)]
    )
    max_users = models.PositiveIntegerField(
        "stress: at most this many users", default=200, validators=[MinValueValidator(1), MaxValueValidator(MAX_USERS)]
    )
    spike_multiplier = models.FloatField(
        "spike: x the users", default=4.0, validators=[MinValueValidator(1.0), MaxValueValidator(100.0)]
    )
    gate_p95_ms = models.FloatField(
        "gate: p95 (ms)", null=True, blank=True, validators=[above_zero], help_text="Empty: the service's SLO."
    )
    gate_p99_ms = models.FloatField("gate: p99 (ms)", null=True, blank=True, validators=[above_zero])
    gate_avg_ms = models.FloatField("gate: average (ms)", null=True, blank=True, validators=[above_zero])
    gate_error_rate_pct = models.FloatField(
        "gate: error rate (%)", null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)]
    )
    gate_min_rps = models.FloatField("gate: minimum req/s", null=True, blank=True, validators=[MinValueValidator(0.0)])
    # Below 0 the threshold was the A/A noise alone: on pooled samples any significant change, however small.
    min_regression_pct = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.0), MaxValueValidator(1000.0)],
        help_text="Smallest median latency change reported as a regression (raised to the plan's own noise).",
    )  # fmt: skip
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse what would fail only later, in a run: a malformed mix, unknown scopes, a shape too big."""
        errors = {}
        if problem := request_mix_error(self.requests):
            errors["requests"] = problem
        if _too_deep(self.scopes):
            errors["scopes"] = f"Nested more than {MAX_JSON_DEPTH} levels deep."
        elif _non_finite(self.scopes):
            errors["scopes"] = "NaN and Infinity are not JSON numbers: use a finite number."
        if "scopes" not in errors:
            problem = self._scopes_error()
            if problem:
                errors["scopes"] = problem
        for field in self._meta.concrete_fields:  # validators let NaN through: it compares False to any bound
            value = getattr(self, field.attname)
            if isinstance(field, models.FloatField) and isinstance(value, float) and not math.isfinite(value):
                errors[field.name] = "A finite number."
        errors = {**self._shape_errors(), **errors}
        if self.service_id and (problem := self.service.base_url_error):  # stored before the registry's rules
            errors["service"] = f"Its base URL cannot be used ({problem}): edit it in the service registry."
        elif self.service_id and not token_host_allowed(self.service.base_url):
            errors["service"] = (
                "Its base URL's host (or its port) is not in BENCHMARK_TOKEN_HOSTS "
                f"({', '.join(settings.BENCHMARK_TOKEN_HOSTS)}): "
                "a run's token carries the plan's scopes and goes only to the hosts the deployment allows."
            )
        if errors:
            raise ValidationError(errors)

    def _scopes_error(self) -> str | None:
        from apps.accounts.scopes import SCOPES

        if not isinstance(self.scopes, list) or not all(isinstance(scope, str) for scope in self.scopes):
            return f'A list of scope names, e.g. ["patient:read"]. Known scopes: {", ".join(SCOPES)}.'
        unknown = sorted(set(self.scopes) - set(SCOPES))
        if unknown:
            return f"Unknown scope(s): {', '.join(unknown)}. Known scopes: {', '.join(SCOPES)}."
        if not self.scopes:
            return f"At least one scope. Known scopes: {', '.join(SCOPES)}."
        return None

    def _shape_errors(self) -> dict[str, str]:
        """The run's stages (as runner.stages_for builds them) stay few and within a day. Computed, never
        built: a bad value must not build millions of stages just to be refused. A value its own validators
        refuse (or one the form could not read) is left to them."""

        def valid(name: str) -> bool:
            value = getattr(self, name)
            try:
                self._meta.get_field(name).run_validators(value)
            except ValidationError:
                return False
            return value is not None and not (isinstance(value, float) and not math.isfinite(value))

        errors = {}
        stress = self.kind == self.Kind.STRESS
        if stress and valid("users") and valid("max_users") and self.max_users < self.users:
            errors["max_users"] = "Stress starts at `users` and steps up to this: it must not be lower."
        elif stress and all(valid(name) for name in ("users", "max_users", "step_users", "step_seconds")):
            steps = math.ceil((self.max_users - self.users) / self.step_users) + 1
            if steps > MAX_STAGES:
                errors["step_users"] = (
                    f"From {self.users} to {self.max_users} users this is {steps} steps: at most {MAX_STAGES}. "
                    "Add more users per step."
                )
            elif steps * self.step_seconds > MAX_SECONDS:
                errors["step_seconds"] = (
                    f"{steps} steps of {self.step_seconds} s last {steps * self.step_seconds} s: at most "
                    f"{MAX_SECONDS} s (24 h). Shorten the steps or add more users per step."
                )
        if self.kind == self.Kind.SPIKE and valid("users") and valid("spike_multiplier"):
            peak = math.ceil(self.users * self.spike_multiplier)
            if peak > MAX_USERS:
                errors["spike_multiplier"] = f"The spike peaks at {peak} users: at most {MAX_USERS}."
        return errors

    def gates(self) -> dict[str, float]:
        """Each gate in force: the plan's own, else the service's SLO. The throughput gate too: left empty it
        was 0 req/s, which every run meets, so a plan with no gate of its own passed a service far below its
        SLO's throughput."""
        service = self.service
        return {
            "p95_ms": self.gate_p95_ms or service.slo_p95_ms,
            "p99_ms": self.gate_p99_ms or service.slo_p99_ms,
            "avg_ms": self.gate_avg_ms or service.slo_avg_ms,
            "error_rate_pct": self.gate_error_rate_pct if self.gate_error_rate_pct is not None
            else service.slo_error_rate_pct,
            "min_rps": self.gate_min_rps if self.gate_min_rps is not None else service.slo_min_rps,
        }  # fmt: skip


class BenchmarkRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        INVALID = "invalid", "Invalid (the generator was saturated)"

    plan = models.ForeignKey(BenchmarkPlan, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    requested_by = models.CharField(max_length=150, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True, help_text="Past this, the checker marks it failed.")
    config_digest = models.CharField(
        max_length=64, blank=True, help_text="The load it ran (shape, mix, target): regressions compare equal ones."
    )
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Its worker's last word (every second while Locust runs)."
    )
    requeued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the checker sent it again, no worker having taken it (its message lost?).",
    )
    # db_default on the columns added since a release: its pods insert rows without them during an upgrade.
    worker_host = models.CharField(
        max_length=255, blank=True, default="", db_default="", help_text="The host of the process running it."
    )
    worker_pid = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The process running it: gone, the run is failed at once, not after its heartbeat.",
    )
    stop_reason = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_default="",
        help_text="Why it was asked to stop, other than a person's cancellation.",
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True)
    generator_cpu_max = models.FloatField(null=True, blank=True, help_text="Locust's own CPU, % of one core.")
    summary = models.JSONField(default=dict, help_text="Requests, errors, req/s, latency percentiles.")
    endpoints = models.JSONField(default=list)
    timeline = models.JSONField(default=list, help_text="Per second: users, req/s, errors, p95.")
    histogram = models.JSONField(default=list, help_text="HDR latency histogram: [[ms, count]].")
    findings = models.JSONField(default=dict, help_text="Per shape: the knee, spike recovery, endurance slope.")
    verdicts = models.JSONField(default=list)
    passed = models.BooleanField(null=True)
    report_html = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["plan", "status", "-created_at"], name="bench_run_plan")]

    def __str__(self) -> str:
        return f"{self.plan} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status not in (self.Status.PENDING, self.Status.RUNNING)


class Regression(models.Model):
    """A run slower than its plan's baseline beyond noise; acknowledged by a person."""

    plan = models.ForeignKey(BenchmarkPlan, on_delete=models.CASCADE, related_name="regressions")
    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="regressions")
    metric = models.CharField(max_length=32, default="latency_ms")
    baseline = models.FloatField(help_text="Median of the baseline runs' samples.")
    current = models.FloatField(help_text="Median of this run's samples.")
    change_pct = models.FloatField()
    p_value = models.FloatField(help_text="Mann-Whitney U, one-sided: this run slower than the baseline.")
    threshold_pct = models.FloatField(help_text="The magnitude it had to exceed (the plan's, or its A/A noise).")
    change_point = models.BooleanField(default=False, help_text="Also a change point in the plan's p95 history.")
    detected_at = models.DateTimeField(auto_now_add=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-detected_at"]

    def __str__(self) -> str:
        return f"{self.plan}: {self.metric} +{self.change_pct:.1f}% (run #{self.run_id})"
