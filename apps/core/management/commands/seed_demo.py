"""Idempotent demo data: services, an admin user and an API client, with credentials printed."""

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.accounts.models import ApiClient
from apps.accounts.scopes import BENCHMARK, SCOPES
from apps.accounts.selectors import api_client_named_alike
from apps.accounts.services import api_client_create, api_client_rotate, token_hash
from apps.benchmarks.models import BenchmarkPlan
from apps.benchmarks.services import nightly_benchmarks_ensure
from apps.clinical.loader import AlreadyLoaded, synthetic_ranges_missing
from apps.clinical.management.commands.load_synthetic import BOUNDS as SYNTHETIC_BOUNDS
from apps.clinical.models import Patient
from apps.core import links
from apps.core.broker_errors import broker_failure, send_errors
from apps.inference.services import bundled_deployments_ensure
from apps.optimizer.services import optimizer_schedules_ensure
from apps.ratelimits.models import RateLimitPolicy
from apps.scaling.models import ScalingPolicy, WorkloadForecast
from apps.scaling.services import scaling_policy_ensure
from apps.scaling.tasks import forecast as forecast_task
from apps.services.models import Service, base_url_problem
from apps.services.services import service_ensure, service_update

DEMO_SERVICES = [
    {
        "slug": "clinical-api",
        "name": "Clinical data API",
        "kind": Service.Kind.API,
        "owner_team": "Clinical platform",
        "description": "Patient, encounter, vital-sign and medication reads (REST).",
        "route_prefix": "api/v1/patients/",  # its request metrics, SLO status and live row
        "slo_p95_ms": 200,
        "slo_p99_ms": 500,
        "slo_avg_ms": 100,
        "slo_min_rps": 100,
    },
    {
        # The FHIR R4 endpoints' traffic (/fhir/Patient, /fhir/Observation...) was no service's: no SLO judged it.
        "slug": "fhir-api",
        "name": "FHIR R4 API",
        "kind": Service.Kind.API,
        "owner_team": "Clinical platform",
        "description": "FHIR R4 reads and searches: patients, observations, encounters, medication requests.",
        "route_prefix": "fhir/",
        "slo_p95_ms": 300,
        "slo_p99_ms": 800,
        "slo_avg_ms": 150,
    },
    {
        "slug": "clinical-assistant",
        "name": "Clinical assistant",
        "kind": Service.Kind.INFERENCE,
        "owner_team": "Clinical AI",
        "description": "Text generation for clinicians (SmolLM2-135M-Instruct, bundled offline).",
        # Metrics are kept per route template, which names no deployment: every /generate call is this
        # service's (the bundled generation model), as every /embed call is the embeddings service's.
        "route_prefix": "api/v1/inference/<slug:name>/generate",
        # Its deployment's p95 SLO (8 s for up to 64 new tokens on a CPU): the services' 2 s default had its
        # first generations shown as a missed SLO on the overview while the inference page said they met it.
        "slo_p95_ms": 8000,
        "slo_p99_ms": 12000,
        "slo_avg_ms": 4000,
    },
    {
        "slug": "embeddings",
        "name": "Clinical embeddings",
        "kind": Service.Kind.INFERENCE,
        "owner_team": "Clinical AI",
        "description": "Sentence embeddings for triage and search (MiniLM, bundled offline).",
        "route_prefix": "api/v1/inference/<slug:name>/embed",
        "slo_p95_ms": 300,
        "slo_p99_ms": 600,
        "slo_avg_ms": 150,
    },
    {
        "slug": "workers",
        "name": "Background workers",
        "kind": Service.Kind.WORKER,
        "owner_team": "Platform",
        "description": "Celery workers running benchmarks, optimizations and forecasts.",
    },
    {
        "slug": "dashboard",
        "name": "Performance dashboard",
        "kind": Service.Kind.FRONTEND,
        "owner_team": "Platform",
        "description": "The React dashboard served at /dashboard/.",
    },
]

# Each demo API's load plan (name, weighted requests): the clinical API's patient cards and latest vitals, the FHIR
# API's Patient reads and vital-sign searches.
DEMO_LOAD_PLANS = {
    "clinical-api": ("clinical-api load", [
        {"name": "patient card", "method": "GET", "path": "/api/v1/patients/{patient_id}/", "weight": 2},
        {"name": "latest vitals", "method": "GET", "path": "/api/v1/patients/{patient_id}/vitals/?latest=true",
         "weight": 1},
    ]),
    "fhir-api": ("fhir-api load", [
        {"name": "FHIR Patient read", "method": "GET", "path": "/fhir/Patient/{patient_id}", "weight": 2},
        {"name": "FHIR vital signs", "method": "GET", "weight": 1,
         "path": "/fhir/Observation?patient={patient_id}&category=vital-signs&_count=4"},
    ]),
}  # fmt: skip

# The service whose p95 the adaptive ai_inference limit watches: the latency-bound one (a 300 ms SLO);
# a generation's time follows how much text is asked for (up to 64 new tokens), so it says less about load.
AI_INFERENCE_WATCHED = "embeddings"
# A clinician's app: every scope but the benchmark runner's (which skips rate limits).
DEMO_SCOPES = [scope for scope in SCOPES if scope != BENCHMARK]
ADMIN_USERNAME = "admin"
DEMO_CLIENT_NAME = "demo-clinical-app"


class Command(BaseCommand):
    help = "Create demo services, an admin user and an API client (idempotent); print the credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default=links.base_url())
        parser.add_argument(
            "--forecast", action="store_true", help="Send the first workload forecasts to the workers if none exist."
        )
        parser.add_argument(
            "--patients", type=int, default=0,
            help="Top the database up to this many patients with synthetic ones (two days of history).",
        )  # fmt: skip

    def handle(self, *args, base_url: str, forecast: bool = False, patients: int = 0, **options) -> None:
        # load_synthetic's own bound, checked before anything is written: past it the top-up walked every index
        # (a billion for a stray digit in DEMO_PATIENTS: minutes of CPU) and then ended, status 0, on its refusal.
        most = SYNTHETIC_BOUNDS["patients"][1]
        if not 0 <= patients <= most:
            raise CommandError(f"--patients must be from 0 to {most:,}; it is {patients:,}.")
        # Checked before anything is written: the demo API service's full_clean refused it with a traceback
        # (make run PORT=70000, after migrating).
        if problem := ("Empty." if not base_url else base_url_problem(base_url)):
            raise CommandError(f"--base-url {base_url!r} cannot be used: {problem} (e.g. {links.DEFAULT_BASE_URL})")
        credentials_file = Path(settings.VAR_DIR) / "demo-credentials.json"
        stored = self._read_credentials(credentials_file)
        # Files written before the address was kept: make run's default one.
        seeded_url = stored.get("base_url", links.DEFAULT_BASE_URL)

        with transaction.atomic():
            created = []
            seeded: dict[str, Service] = {}  # slug: the demo services this run ensured, the only ones rows point to
            for spec in DEMO_SERVICES:
                fields = dict(spec)
                if fields["kind"] == Service.Kind.API:
                    fields["base_url"] = base_url
                holder = _route_holder(spec)
                if holder is not None:
                    # An operator's service has the route (a route is one service's). A demo service beside it had
                    # no traffic of its own, yet a scaling policy, and a load plan that loaded the operator's routes.
                    self.stdout.write(
                        f"{spec['slug']}: not seeded, its route prefix {spec['route_prefix']} is {holder.slug}'s"
                    )
                    continue
                service, is_new = service_ensure(**fields)
                seeded[spec["slug"]] = service
                if is_new:
                    created.append(spec["slug"])
                elif fields.get("route_prefix") and not service.route_prefix:
                    # Seeded before it had one: without a prefix its traffic is no one's. An admin's own is kept.
                    service_update(service=service, route_prefix=spec["route_prefix"])
                if not is_new and fields.get("base_url") and service.base_url == seeded_url != base_url:
                    # `make run PORT=...` after a run on another port: the demo load plan would send its
                    # benchmark token to whatever listens on the old one. An address an admin gave it stays.
                    service_update(service=service, base_url=base_url)
                if service.kind in (Service.Kind.API, Service.Kind.INFERENCE):
                    # Demo services have no traffic history yet: their forecasts learn synthetic hospital
                    # traffic, labelled as such; switch the history source in admin once real traffic flows.
                    scaling_policy_ensure(service, history_source=ScalingPolicy.HistorySource.SYNTHETIC)
            self._ensure_ai_inference_watch(seeded)
            password = self._ensure_admin(stored)
            demo_client, token = self._ensure_client(stored)
            self._ensure_benchmark_plans(seeded)
            bundled_deployments_ensure()  # the bundled models, served at /api/v1/inference/<name>/...
            schedules = optimizer_schedules_ensure() + nightly_benchmarks_ensure().created
            # Written before the commit: a run stopped between the two left an admin whose random password was
            # neither printed nor kept (the next run could only say "unchanged"). Written and then rolled
            # back, the file names credentials that no longer exist, and the next run makes new ones.
            _write_private(
                credentials_file,
                {
                    "admin_password": password,
                    "api_token": token,
                    "api_client_id": demo_client.pk,
                    "base_url": base_url,
                },
            )

        self.stdout.write(f"Services: {Service.objects.count()} ({len(created)} new).")
        if patients > 0:
            self._ensure_patients(patients)
        if schedules:
            self.stdout.write(f"Schedules created: {', '.join(schedules)} (edit them in admin, Periodic tasks).")
        if forecast and not WorkloadForecast.objects.exists():
            try:
                forecast_task.delay()
                self.stdout.write("First workload forecasts sent to the workers (admin: Workload forecasts).")
            except send_errors(forecast_task.app) as exc:
                self.stderr.write(f"Forecasts not sent, {broker_failure(exc)}: they will run on the hourly schedule.")
        self.stdout.write(f"Admin:     {base_url}/admin/  user {ADMIN_USERNAME!r}  password {password!r}")
        self.stdout.write(f"Dashboard: {base_url}/dashboard/")
        self.stdout.write(f"API token ({demo_client.name}, scopes {', '.join(DEMO_SCOPES)}):")
        self.stdout.write(f"  curl -H 'Authorization: Bearer {token}' {base_url}/api/v1/whoami/")

    def _read_credentials(self, credentials_file: Path) -> dict:
        """What the last run wrote; nothing when the file is unreadable (a run stopped while an older version
        wrote it): its admin password is then unknown, its token is rotated."""
        if not credentials_file.is_file():
            return {}
        try:
            stored = json.loads(credentials_file.read_text())
        except (OSError, ValueError):
            stored = None
        if not isinstance(stored, dict):
            self.stderr.write(f"{credentials_file} is unreadable: its credentials are made again.")
            return {}
        return stored

    def _ensure_patients(self, count: int) -> None:
        """Patients for the APIs, the dashboard and the load plan to show: the demo seed's first `count`, each
        missing one loaded (a load stopped half-way, by Ctrl-C in `make run`, is finished by the next run;
        its two loader processes leave a hole in each half, so the count of patients says nothing of
        where), never more."""
        missing = synthetic_ranges_missing(seed=DEMO_SEED, count=count)
        if not missing:
            self.stdout.write(f"Patients: {Patient.objects.count():,} (already loaded).")
            return
        total = sum(length for _, length in missing)
        self.stdout.write(f"Loading {total:,} synthetic demo patients (two days of history each).")
        for first_index, length in missing:
            try:
                call_command(
                    "load_synthetic", patients=length, first_index=first_index, days=2, seed=DEMO_SEED,
                    stdout=self.stdout._out, stderr=self.stderr._out,
                )  # fmt: skip
            except CommandError as exc:
                if not isinstance(exc.__cause__, AlreadyLoaded):  # a refusal to fix, not a race to ignore
                    raise
                self.stderr.write(f"Demo patients not loaded: {exc}")  # another load got there first: go on
            except KeyboardInterrupt:
                # Ctrl-C in `make run` while the bar runs: an expected stop, so no traceback; 130 as a shell's.
                self.stderr.write("\nStopped while loading demo patients: the next `make run` loads the rest.")
                raise SystemExit(130) from None

    def _ensure_benchmark_plans(self, seeded: dict[str, Service]) -> None:
        """A load plan for each demo API this run seeded (DEMO_LOAD_PLANS), 10 users for a minute."""
        for slug, (name, requests) in DEMO_LOAD_PLANS.items():
            if slug in seeded:
                BenchmarkPlan.objects.get_or_create(
                    name=name,
                    defaults={"service": seeded[slug], "kind": BenchmarkPlan.Kind.LOAD, "requests": requests,
                              "users": 10, "duration_seconds": 60},
                )  # fmt: skip

    def _ensure_ai_inference_watch(self, seeded: dict[str, Service]) -> None:
        """The adaptive ai_inference limit watches an inference service's p95, unless an admin chose one."""
        policy = RateLimitPolicy.objects.filter(scope="ai_inference", service=None).first()
        if policy is not None and AI_INFERENCE_WATCHED in seeded:
            policy.service = seeded[AI_INFERENCE_WATCHED]
            policy.save(update_fields=["service", "updated_at"])  # post_save invalidates the policy cache

    def _ensure_admin(self, stored: dict) -> str:
        User = get_user_model()
        wanted = os.environ.get("DEMO_ADMIN_PASSWORD")
        user = User.objects.filter(username=ADMIN_USERNAME).first()
        if user is None:
            password = wanted or secrets.token_urlsafe(12)
            User.objects.create_superuser(ADMIN_USERNAME, "admin@example.org", password)
            return password
        if wanted:
            user.set_password(wanted)
            user.save(update_fields=["password"])
            return wanted
        if stored.get("admin_password") and user.check_password(stored["admin_password"]):
            return stored["admin_password"]
        # The admin exists but its password was not made here: leave it alone.
        return "(unchanged: set DEMO_ADMIN_PASSWORD to reset it)"

    def _ensure_client(self, stored: dict) -> tuple[ApiClient, str]:
        """The demo's own client: the one the credentials file names (by id, or by its token in files written
        before the id was kept). A client it cannot prove its own is an operator's, even under the demo's name:
        rotating it (its token unknown here) cut off the application using it. The demo then makes its own
        beside it, under the first free name."""
        ours = ApiClient.objects.filter(pk=stored["api_client_id"]).first() if stored.get("api_client_id") else None
        token = stored.get("api_token")
        if ours is None and token and not stored.get("api_client_id"):
            ours = ApiClient.objects.filter(token_hash=token_hash(token)).first()
        if ours is not None:
            if token and token_hash(token) == ours.token_hash and not ours.is_revoked:
                return ours, token
            # Only the hash is stored, so a demo token we no longer know is rotated to print a fresh one.
            return ours, api_client_rotate(client=ours).token
        name = DEMO_CLIENT_NAME
        for n in range(2, 100):
            holder = api_client_named_alike(name)
            if holder is None:
                break
            self.stdout.write(f"API client {holder.name!r} is not the demo's (an operator's): left as it is.")
            name = f"{DEMO_CLIENT_NAME}-{n}"
        issued = api_client_create(
            name=name, scopes=DEMO_SCOPES, description="Demo clinician app created by seed_demo."
        )
        return issued.client, issued.token


def _route_holder(spec: dict) -> Service | None:
    """The service other than the demo one that holds the demo service's route prefix, if any."""
    prefix = spec.get("route_prefix")
    if not prefix:
        return None
    return Service.objects.filter(route_prefix=prefix).exclude(slug=spec["slug"]).order_by("pk").first()


def _write_private(path: Path, content: dict) -> None:
    """`content` as JSON in `path`, readable by its owner only from its first byte (write_text then chmod left
    the password world-readable in between) and whole or not at all (a stop half-way left a truncated file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # a leftover of a stopped run keeps its mode through O_CREAT
        with os.fdopen(descriptor, "w") as file:
            descriptor = None
            json.dump(content, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        if descriptor is not None:
            os.close(descriptor)
        partial.unlink(missing_ok=True)


DEMO_SEED = 1  # load_synthetic's default: the demo's MRNs are S001-0000000 onwards
