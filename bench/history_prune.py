"""The daily history prune (core.prune_history) on a backlog of old benchmark runs: batched against one DELETE.

The first run after an upgrade finds every run ever finished. In one run, on the bench database:
  * the baseline: N old finished runs (each with its report and samples, as a nightly run stores them) deleted by one
    `DELETE ... WHERE finished_at < cutoff` (their regressions first), what a hand-written cleanup runs;
  * the same N deleted by benchmark_history_prune, history_prune's part for them (batches of HISTORY_PRUNE_BATCH,
    each its own transaction);
figures: the longest transaction (how long the deleted rows' locks are held and vacuum and a replica's apply kept
behind it) and the whole prune, each as a ratio of the one DELETE's.

Run:  .venv/bin/python bench/history_prune.py [--runs 5000]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator

from harness import django_setup, emit, progress

KEPT_PLANS = 10  # plans, each keeping its latest run


def seed(runs: int) -> None:
    """`runs` failed runs finished 100 to 465 days ago over KEPT_PLANS plans, each with a 30 kB report and 2,000
    latency samples, a tenth with an acknowledged regression; and each plan's latest run, from yesterday."""
    from django.db import connection

    from apps.benchmarks.models import BenchmarkPlan
    from apps.services.services import service_ensure

    service, _ = service_ensure(slug="bench-target", name="Bench target", base_url="http://127.0.0.1:9")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE benchmarks_regression, benchmarks_benchmarkrun")
    plans = [
        BenchmarkPlan.objects.get_or_create(name=f"bench prune {n}", service=service)[0] for n in range(KEPT_PLANS)
    ]
    ids = [plan.pk for plan in plans]
    columns = (
        "status, requested_by, cancel_requested, created_at, started_at, finished_at, config_digest, worker_host, "
        "stop_reason, attempts, progress, progress_message, summary, endpoints, timeline, histogram, findings, "
        "verdicts, report_html, error, plan_id"
    )
    values = (
        "'failed', 'schedule', false, now() - (n %% 365 + 100) * interval '1 day', now() - (n %% 365 + 100) * "
        "interval '1 day', now() - (n %% 365 + 100) * interval '1 day', 'load', '', '', 1, 1.0, '', '{}', '[]', "
        "'[]', '[]', jsonb_build_object('latencies_ms', (SELECT jsonb_agg(random() * 100) FROM generate_series(1, "
        "2000) WHERE n > 0)), '[]', repeat(md5(n::text), 940), '', (%s::int[])[n %% %s + 1]"
    )
    ago, recent = "(n %% 365 + 100) * interval '1 day'", "interval '1 day'"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO benchmarks_benchmarkrun ({columns}) SELECT {values} FROM generate_series(1, %s) AS n",  # noqa: S608
            [ids, KEPT_PLANS, runs],
        )
        cursor.execute(
            "INSERT INTO benchmarks_regression (plan_id, run_id, metric, baseline, current, change_pct, p_value, "
            "threshold_pct, change_point, detected_at, acknowledged_at) SELECT plan_id, id, 'latency_ms', 10, 20, "
            "100, 0.001, 5, false, finished_at, finished_at FROM benchmarks_benchmarkrun WHERE id % 10 = 0"
        )
        cursor.execute(
            f"INSERT INTO benchmarks_benchmarkrun ({columns}) SELECT {values.replace(ago, recent)} "  # noqa: S608
            "FROM generate_series(1, %s) AS n",
            [ids, KEPT_PLANS, KEPT_PLANS],
        )
        cursor.execute("VACUUM ANALYZE benchmarks_benchmarkrun")
        cursor.execute("VACUUM ANALYZE benchmarks_regression")


def timed_transactions(action: Callable[[], object]) -> tuple[float, list[float]]:
    """The whole action's seconds and each outermost transaction's (the batches' `transaction.atomic`)."""
    from django.db import transaction

    import apps.core.services as core

    durations: list[float] = []
    atomic = transaction.atomic

    @contextlib.contextmanager
    def timed_atomic(*args, **kwargs) -> Iterator[None]:
        started = time.perf_counter()
        with atomic(*args, **kwargs):
            yield
        durations.append(time.perf_counter() - started)

    class Timed:
        def __getattr__(self, name: str):
            return timed_atomic if name == "atomic" else getattr(transaction, name)

    core.transaction = Timed()
    try:
        started = time.perf_counter()
        action()
        return time.perf_counter() - started, durations
    finally:
        core.transaction = transaction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5_000)
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/cp_bench_history_prune",
        help="The bench's own database: its benchmark runs are TRUNCATED each run.",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be above 0")
    if "bench" not in args.database_url.rsplit("/", 1)[1]:  # truncated: never a product's database by a slip
        parser.error("--database-url must name a bench database (its name containing 'bench'): it is truncated")
    django_setup(args.database_url, args.redis_url)
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.benchmarks.models import BenchmarkRun
    from apps.benchmarks.services import benchmark_history_prune
    from apps.core.services import HISTORY_PRUNE_BATCH

    def one_delete() -> None:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM benchmarks_regression WHERE run_id IN (SELECT id FROM benchmarks_benchmarkrun "
                "WHERE finished_at < now() - interval '90 days')"
            )
            cursor.execute("DELETE FROM benchmarks_benchmarkrun WHERE finished_at < now() - interval '90 days'")
        single.append(time.perf_counter() - started)

    progress(f"seeding {args.runs:,} old benchmark runs for the single DELETE")
    seed(args.runs)
    single: list[float] = []
    started = time.perf_counter()
    one_delete()
    single_total = time.perf_counter() - started
    assert BenchmarkRun.objects.count() == KEPT_PLANS
    progress(f"seeding {args.runs:,} old benchmark runs for the batched prune")
    seed(args.runs)
    older_than = timezone.now() - timezone.timedelta(days=90)
    batched_total, batched = timed_transactions(
        lambda: benchmark_history_prune(older_than=older_than, batch_size=HISTORY_PRUNE_BATCH)
    )
    assert BenchmarkRun.objects.count() == KEPT_PLANS
    emit(
        {
            "bench": "history_prune",
            "old_runs": args.runs,
            "batch": HISTORY_PRUNE_BATCH,
            "single_delete": {"longest_transaction_ms": round(max(single) * 1000, 1),
                              "total_s": round(single_total, 3)},
            "batched": {"transactions": len(batched), "longest_transaction_ms": round(max(batched) * 1000, 1),
                        "median_ms": round(sorted(batched)[len(batched) // 2] * 1000, 1),
                        "total_s": round(batched_total, 3)},
            "longest_transaction_batched_over_single": round(max(batched) / max(single), 3),
            "total_batched_over_single": round(batched_total / single_total, 3),
        }
    )  # fmt: skip


if __name__ == "__main__":
    main()
