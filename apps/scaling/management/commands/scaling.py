from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service


class Command(BaseCommand):
    help = "Kubernetes scaling: export manifests, forecast workloads and plan replicas, apply to a cluster."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        export = commands.add_parser("export", help="Write every policy's manifests (validated) to a folder.")
        export.add_argument("--out", default="deploy/generated/")
        forecast = commands.add_parser("forecast", help="Forecast the next 24 h and plan replicas, now.")
        apply = commands.add_parser("apply", help="Apply the manifests to SCALING_KUBECONFIG's cluster, here.")
        commands.add_parser("status", help="Each policy's state on the cluster.")
        for sub in (export, forecast, apply):
            sub.add_argument("--service", action="append", help="Only this service (slug); repeatable.")

    def _services(self, slugs: list[str] | None, *, predictive: bool = False) -> list[Service] | None:
        """The services named, each with an enabled policy (and a predictive one to forecast): one without
        was left out in silence, the command doing nothing and exiting 0 as if it had."""
        if not slugs:
            return None
        found = list(Service.objects.filter(slug__in=slugs).select_related("scaling_policy"))
        missing = set(slugs) - {s.slug for s in found}
        if missing:
            raise CommandError(f"No service {', '.join(sorted(missing))}.")
        unusable = []
        for service in sorted(found, key=lambda service: service.slug):
            policy = getattr(service, "scaling_policy", None)
            if policy is None:
                unusable.append(f"{service.slug}: no scaling policy")
            elif not policy.enabled:
                unusable.append(f"{service.slug}: its scaling policy is disabled")
            elif predictive and not policy.predictive:
                unusable.append(f"{service.slug}: its scaling policy is not predictive")
        if unusable:
            raise CommandError(f"{'; '.join(unusable)}. (Admin: Scaling policies.)")
        return found

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"_{action}")(**options)

    def _export(self, *, out: str, service: list[str] | None, **options) -> None:
        try:
            written = services.manifests_export(out=Path(out), services=self._services(service))
        except ValueError as exc:
            raise CommandError(f"Manifests would be refused: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"Cannot write to {out}: {exc.strerror}") from exc
        for path in written:
            self.stdout.write(str(path))
        self.stdout.write(f"{len(written)} manifests written, each validated (schemas, ranges, HPA/VPA rule).")

    def _forecast(self, *, service: list[str] | None, **options) -> None:
        named = self._services(service, predictive=True)
        # Each metric's backtests take seconds, the whole a minute or more: say where it is, on stderr.
        report = services.forecasts_refresh(services=named, progress=lambda line: self.stderr.write(f"  {line}"))
        for line in report["forecasts"]:
            self.stdout.write(f"forecast  {line}")
        for line in report["recommendations"]:
            self.stdout.write(f"plan      {line}")
        for line in report["skipped"]:
            self.stderr.write(f"skipped   {line}")

    def _apply(self, *, service: list[str] | None, **options) -> None:
        policies = ScalingPolicy.objects.filter(enabled=True).select_related("service")
        named = self._services(service)
        if named is not None:
            policies = policies.filter(service__in=named)
        failed = False
        for policy in policies:
            if services.policy_state_refresh(policy) == ScalingPolicy.ApplyState.NOT_CONFIGURED:
                raise CommandError("No cluster configured: set SCALING_KUBECONFIG (or export the manifests).")
            if not services.apply_requested(policy):
                self.stdout.write(f"{policy.service.slug:<20} an apply is in flight; not applied twice")
                continue
            done = services.policy_apply(policy_id=policy.pk)
            self.stdout.write(f"{policy.service.slug:<20} {done.apply_state:<8} {done.apply_error}")
            failed |= done.apply_state == ScalingPolicy.ApplyState.FAILED
        if failed:
            raise CommandError("Some manifests were not applied.")

    def _status(self, **options) -> None:
        for policy in ScalingPolicy.objects.select_related("service"):
            self.stdout.write(
                f"{policy.service.slug:<20} {policy.apply_state:<15} attempts {policy.apply_attempts}  "
                f"{policy.apply_error[:100]}"
            )
            plan = policy.service.scaling_recommendations.first() if policy.predictive else None
            if plan is not None and plan.is_stale():
                # Only KEDA's cron windows carry a plan to the cluster: without KEDA it is advice, repeated nowhere.
                repeated = " (its KEDA cron windows repeat it every day)" if policy.keda_enabled else ""
                self.stdout.write(
                    f"{'':<20} stale replica plan from {plan.created_at:%Y-%m-%d %H:%M} UTC: no forecast since"
                    + repeated
                )
