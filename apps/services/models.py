from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models.functions import Lower

from apps.core.link_local import LINK_LOCAL_MESSAGE, is_link_local_url
from apps.core.validators import refuse_unseen_characters, unseen_characters_message

# Django's URL validator, taking one-label host names too. A one-label name is how a Kubernetes Service or
# a docker compose service is reached (http://controlplane-api:8000, the name BENCHMARK_TOKEN_HOSTS ships);
# Django took "localhost" only, so that service could not be saved and every benchmark run was refused its
# token. Everything else it refuses (spaces, a user name, a bad port, an empty label) it still refuses.
if "|localhost)" not in URLValidator.host_re or URLValidator.host_re not in URLValidator.regex.pattern:
    raise RuntimeError("django.core.validators.URLValidator's host pattern changed: update BaseURLValidator")
# A one-label host the resolver reads as an IPv4 address (2130706433, 0x7f000001, 017700000001) is no name.
_NUMERIC_HOST = re.compile(r"[0-9]+|0x[0-9a-f]*", re.IGNORECASE)


class BaseURLValidator(URLValidator):
    """URLValidator for a service's base URL: a one-label host name (controlplane-api) is a host too."""

    regex = re.compile(
        URLValidator.regex.pattern.replace(
            URLValidator.host_re, URLValidator.host_re.replace("|localhost)", "|" + URLValidator.hostname_re + ")")
        ),
        re.IGNORECASE,
    )

    def __call__(self, value) -> None:
        super().__call__(value)
        host = urlsplit(value).hostname or ""
        if _NUMERIC_HOST.fullmatch(host):
            raise ValidationError(self.message, code=self.code, params={"value": value})


class BaseURLFormField(forms.URLField):
    """The form field of a base URL (admin): BaseURLValidator, not Django's URLValidator."""

    default_validators = [BaseURLValidator()]


class BaseURLField(models.URLField):
    """A URLField validated by BaseURLValidator (model, form and, through its serializer, the API)."""

    default_validators = [BaseURLValidator()]

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": BaseURLFormField, **kwargs})

    def deconstruct(self):
        """A URLField to migrations: the column is the same, only validation differs."""
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.URLField", args, kwargs


class Service(models.Model):
    """An AI or data service the control plane watches, with its SLO targets (the brief's defaults)."""

    class Kind(models.TextChoices):
        API = "api", "API"
        INFERENCE = "inference", "Inference"
        WORKER = "worker", "Worker"
        FRONTEND = "frontend", "Frontend"

    # Unique in any case too (the constraints below): "Triage" and "triage" are one service to a reader.
    name = models.CharField(max_length=120, unique=True, validators=[refuse_unseen_characters])
    # Lower case, as the service layer writes it: the slug is the service's URL in the API.
    slug = models.SlugField(max_length=80, unique=True, validators=[refuse_unseen_characters])
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.API)
    base_url = BaseURLField(blank=True, help_text="Where the service answers, for probes and load tests.")
    route_prefix = models.CharField(
        max_length=200,
        blank=True,
        validators=[refuse_unseen_characters],
        help_text="URL pattern prefix of this service's routes served here (e.g. api/v1/patients/): "
        "their request metrics are this service's.",
    )
    owner_team = models.CharField(max_length=120, blank=True, validators=[refuse_unseen_characters])
    visible_to = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="services",
        help_text="Only members of these groups (and administrators) see and operate this service. "
        "Empty: every staff role.",
    )
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    slo_p95_ms = models.PositiveIntegerField("p95 target (ms)", default=2000, validators=[MinValueValidator(1)])
    slo_p99_ms = models.PositiveIntegerField("p99 target (ms)", default=3000, validators=[MinValueValidator(1)])
    slo_avg_ms = models.PositiveIntegerField("average target (ms)", default=1000, validators=[MinValueValidator(1)])
    slo_min_rps = models.FloatField("minimum throughput (req/s)", default=50.0, validators=[MinValueValidator(0)])
    slo_error_rate_pct = models.FloatField(
        "maximum error rate (%)", default=5.0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["kind", "is_active"])]
        constraints = [
            # A route is owned by the longest prefix it starts with: two services with one prefix would each
            # count all its traffic. Held by the database, as two saves at once both pass a check in Python.
            models.UniqueConstraint(
                fields=["route_prefix"],
                condition=~models.Q(route_prefix=""),
                name="service_route_prefix_unique",
                violation_error_code="unique",  # reported on the route_prefix field (Model.validate_constraints)
                violation_error_message="Another service has this route prefix: a route is one service's.",
            ),
            # The service layer checks these first, on the field; the database holds them against a race.
            models.UniqueConstraint(
                Lower("name"),
                name="service_name_unique_any_case",
                violation_error_message="Another service has this name (in some case).",
            ),
            models.UniqueConstraint(
                Lower("slug"),
                name="service_slug_unique_any_case",
                violation_error_message="Another service has this slug (in some case).",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def base_url_error(self) -> str | None:
        """Why the stored base URL is unusable, or None. Rows stored before a rule existed (or by raw SQL or
        a fixture) are refused only at their next edit: every use of the URL asks this first, and admin's
        list, the API and `manage.py check` show it."""
        return base_url_problem(self.base_url)

    def clean(self) -> None:
        errors = {}
        if self.slo_p95_ms and self.slo_p99_ms and self.slo_p95_ms > self.slo_p99_ms:
            errors["slo_p95_ms"] = "The p95 target cannot be above the p99 target."
        if self.slo_avg_ms and self.slo_p99_ms and self.slo_avg_ms > self.slo_p99_ms:
            errors["slo_avg_ms"] = "The average target cannot be above the p99 target."
        # Requests are recorded by their URL pattern as Django resolves it (api/v1/patients/<int:pk>/), so a
        # path as a browser shows it (/api/..., a full URL, a query) matches no route: the service would
        # silently have no traffic, SLO status or forecast.
        prefix = self.route_prefix or ""
        if prefix.startswith("/") or "://" in prefix or "?" in prefix or prefix != "".join(prefix.split()):
            errors["route_prefix"] = (
                "A URL pattern as Django resolves it: no leading '/', host, query or spaces, e.g. api/v1/patients/."
            )
        if self.base_url and (problem := base_url_rule_broken(self.base_url)):
            errors["base_url"] = problem
        if errors:
            raise ValidationError(errors)


def base_url_problem(base_url: str) -> str | None:
    """Why this base URL cannot be used (the URL field's own validation and the model's rules), or None;
    an empty one is no problem (the service has no URL)."""
    if not base_url:
        return None
    try:
        BaseURLValidator()(base_url)
    except ValidationError:
        return "Not a valid URL."
    if len(base_url) > Service._meta.get_field("base_url").max_length:
        return "Longer than a base URL may be."
    return base_url_rule_broken(base_url)


def base_url_rule_broken(base_url: str) -> str | None:
    """The model's rules for a base URL the URL validator took (its message otherwise is the field's own)."""
    # Every staff role reads the registry (API and admin): a password in the URL would be shown to all of
    # them, and benchmarks send their token to this URL only over HTTP(S).
    try:
        url = urlsplit(base_url)
    except ValueError:  # "http://[::1": the URL field's own validator has said so
        url = urlsplit("")
    if problem := unseen_characters_message(base_url):
        # Shown in admin, the dashboard and logs as something other than what is fetched.
        return problem
    if url.username is not None or url.password is not None or "@" in url.netloc:
        return "No user name or password in the URL: every staff role can read it."
    if url.scheme and url.scheme.lower() not in ("http", "https"):
        return "An http:// or https:// URL."
    if not _port_valid(url):
        # The URL validator takes any 1-5 digits: port 0 or 99999 was stored, and every probe and
        # benchmark of the service then failed (urlsplit's port raises on it).
        return "A port from 1 to 65535, or none."
    if "?" in base_url or "#" in base_url:
        # Probes and benchmarks append their paths to the base URL: after a query or a fragment they went
        # to the wrong place (or nowhere).
        return "No query string or fragment: the base URL is a scheme, host, port and path."
    if is_link_local_url(base_url):
        # Probes and benchmarks fetch it from the product's own hosts: at 169.254.169.254 that is the cloud
        # metadata service (apps/core/link_local.py).
        return LINK_LOCAL_MESSAGE
    return None


def _port_valid(url: SplitResult) -> bool:
    """No port, or one from 1 to 65535 (urlsplit reads "host:0" as port 0 and raises past 65535)."""
    try:
        port = url.port
    except ValueError:
        return False
    return port is None or 1 <= port <= 65535
