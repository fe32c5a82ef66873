"""The hourly sign-in prune (core.prune_sign_ins) on a backlog of expired sessions: batched against one DELETE.

A first run after an upgrade finds every session ever expired. In one run, on the bench database:
  * the baseline: N expired sessions (and a few live ones) deleted by one `DELETE ... WHERE expire_date < now()`,
    what `clearsessions` runs;
  * the same N deleted by sessions_expired_prune (batches of SIGN_IN_PRUNE_BATCH, each its own statement);
figures: the longest single statement (how long one transaction holds the deleted rows' locks and keeps vacuum
and a replica's apply behind it) and the whole prune, each as a ratio of the one DELETE's.

Run:  .venv/bin/python bench/sign_in_prune.py [--sessions 200000]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from harness import django_setup, emit, progress

LIVE = 100


def seed(expired: int) -> None:
    """`expired` sessions past their expiry over the last year, and LIVE ones still valid."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_session")
        cursor.execute(
            "INSERT INTO django_session (session_key, session_data, expire_date) "
            "SELECT md5('expired' || n), repeat('x', 200), now() - (n %% 365 + 1) * interval '1 day' "
            "FROM generate_series(1, %s) AS n",
            [expired],
        )
        cursor.execute(
            "INSERT INTO django_session (session_key, session_data, expire_date) "
            "SELECT md5('live' || n), repeat('x', 200), now() + interval '1 hour' FROM generate_series(1, %s) AS n",
            [LIVE],
        )
        cursor.execute("VACUUM ANALYZE django_session")


def timed_statements(action: Callable[[], object]) -> tuple[float, list[float]]:
    """The whole action's seconds and each DELETE statement's seconds."""
    from django.db import connection

    durations: list[float] = []

    def wrapper(execute: Callable, sql: str, params: object, many: bool, context: dict) -> object:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if sql.lstrip().upper().startswith("DELETE"):
                durations.append(time.perf_counter() - started)

    started = time.perf_counter()
    with connection.execute_wrapper(wrapper):
        action()
    return time.perf_counter() - started, durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/cp_bench_sign_in_prune",
        help="The bench's own database: its sessions are TRUNCATED each run (every user signed out).",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    if args.sessions < 1:
        parser.error("--sessions must be above 0")
    if "bench" not in args.database_url.rsplit("/", 1)[1]:  # truncated: never a product's database by a slip
        parser.error("--database-url must name a bench database (its name containing 'bench'): it is truncated")
    django_setup(args.database_url, args.redis_url)
    from django.contrib.sessions.models import Session
    from django.db import connection

    from apps.core.services import SIGN_IN_PRUNE_BATCH, sessions_expired_prune

    def one_delete() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM django_session WHERE expire_date < now()")

    progress(f"seeding {args.sessions:,} expired sessions for the single DELETE")
    seed(args.sessions)
    single_total, single = timed_statements(one_delete)
    assert Session.objects.count() == LIVE
    progress(f"seeding {args.sessions:,} expired sessions for the batched prune")
    seed(args.sessions)
    batched_total, batched = timed_statements(sessions_expired_prune)
    assert Session.objects.count() == LIVE
    emit(
        {
            "bench": "sign_in_prune",
            "expired_sessions": args.sessions,
            "batch": SIGN_IN_PRUNE_BATCH,
            "single_delete": {"statements": len(single), "longest_ms": round(max(single) * 1000, 1),
                              "total_s": round(single_total, 3)},
            "batched": {"statements": len(batched), "longest_ms": round(max(batched) * 1000, 1),
                        "median_ms": round(sorted(batched)[len(batched) // 2] * 1000, 1),
                        "total_s": round(batched_total, 3)},
            "longest_statement_batched_over_single": round(max(batched) / max(single), 3),
            "total_batched_over_single": round(batched_total / single_total, 3),
        }
    )  # fmt: skip


if __name__ == "__main__":
    main()
