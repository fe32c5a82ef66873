import sys

from django.core.management.base import BaseCommand, CommandParser

from apps.optimizer.services import database_optimization_run


class Command(BaseCommand):
    help = "Measure and optimize a part of the system. Without --apply nothing is changed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", choices=["database"])
        parser.add_argument("--apply", action="store_true", help="Apply the recommendations that are safe to apply.")
        parser.add_argument("--report", help="Also write the HTML report to this file.")

    def handle(self, *args, target: str, apply: bool, report: str | None, **options) -> None:
        run = database_optimization_run(apply=apply, progress=lambda step: print(f"  … {step}", file=sys.stderr))
        for pattern in run.findings["patterns"]:
            timing = f"{pattern['execution_ms']:>8.3f} ms" if "execution_ms" in pattern else "    (plan)"
            after = f" -> {pattern['execution_ms_after']:.3f} ms" if pattern.get("execution_ms_after") else ""
            scans = f"  SEQ SCAN {', '.join(pattern['seq_scans'])}" if pattern["seq_scans"] else ""
            self.stdout.write(
                f"{pattern['pattern']:<26}{timing}{after}  {', '.join(pattern['indexes_used']) or '-'}{scans}"
            )
        for recommendation in run.recommendations:
            self.stdout.write(f"RECOMMEND {recommendation['kind']}: {recommendation['reason']}")
        for change in run.applied:
            self.stdout.write(f"APPLIED   {change['sql']}")
        if report:
            with open(report, "w", encoding="utf-8") as handle:
                handle.write(run.report_html)
        self.stdout.write(f"Optimization run #{run.pk} stored; report at /optimizer/runs/{run.pk}/report/")
