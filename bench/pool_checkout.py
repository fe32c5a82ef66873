"""What a pooled connection's checkout costs with the check for a session the server ended while idle.

A request takes a connection from the pool and gives it back (CONN_MAX_AGE=0). Timed in one run, alternated in
rounds on the same server, each on a pool of its own:
  * django: Django's PostgreSQL backend as it comes (no check; a connection the server ended fails its request);
  * checked: apps.core.postgresql, the product's (one zero-timeout poll of the socket per checkout);
  * health_checks: Django's CONN_HEALTH_CHECKS=True, its own answer (a round trip per checkout), for scale;
and the check alone (IdleWatch.ended_by_server on a live idle connection). Figures: microseconds per checkout
(connect, then close: what Django does around a request), the median of the rounds.

Run:  .venv/bin/python bench/pool_checkout.py [--checkouts 2000] [--rounds 7]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from harness import emit, isolate, progress

VARIANTS = {  # name: (ENGINE, CONN_HEALTH_CHECKS)
    "django": ("django.db.backends.postgresql", False),
    "checked": ("apps.core.postgresql", False),
    "health_checks": ("django.db.backends.postgresql", True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkouts", type=int, default=2000, help="checkouts per variant per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cp_bench_pool_checkout")
    args = parser.parse_args()
    if args.checkouts < 1 or args.rounds < 1:
        parser.error("--checkouts and --rounds must be above 0")
    import psycopg

    name = args.database_url.rsplit("/", 1)[1]
    with psycopg.connect(args.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')  # no tables: a checkout reads none
    os.environ.update(
        DB_POOL_MIN_SIZE="4", DB_POOL_MAX_SIZE="20", SECRET_KEY="bench-" + "k" * 60, ALLOWED_HOSTS="127.0.0.1,localhost"
    )
    isolate(args.database_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    import django

    django.setup()
    from django.db import connections
    from django.db.utils import load_backend

    from apps.core.postgresql.idle import IdleWatch

    base = connections["default"].settings_dict
    wrappers = {
        variant: load_backend(engine).DatabaseWrapper({**base, "ENGINE": engine, "CONN_HEALTH_CHECKS": checks}, variant)
        for variant, (engine, checks) in VARIANTS.items()
    }

    def checkouts(wrapper) -> float:
        started = time.perf_counter()
        for _ in range(args.checkouts):
            wrapper.ensure_connection()
            wrapper.close()
        return (time.perf_counter() - started) / args.checkouts * 1e6

    for wrapper in wrappers.values():  # the pools open and fill before any round is timed
        checkouts(wrapper)
        wrapper.pool.wait(120)
    watched = psycopg.connect(**connections["default"].get_connection_params(), autocommit=True)
    watch = IdleWatch(watched)

    def check_alone() -> float:
        started = time.perf_counter()
        for _ in range(args.checkouts):
            watch.ended_by_server()
        return (time.perf_counter() - started) / args.checkouts * 1e6

    rounds: dict[str, list[float]] = {variant: [] for variant in [*VARIANTS, "check_alone"]}
    for n in range(args.rounds):
        progress(f"round {n + 1}/{args.rounds}")
        for variant, wrapper in wrappers.items():
            rounds[variant].append(checkouts(wrapper))
        rounds["check_alone"].append(check_alone())
    watched.close()
    for wrapper in wrappers.values():
        wrapper.close_pool()
    median = {variant: round(statistics.median(times), 2) for variant, times in rounds.items()}
    emit(
        {
            "bench": "pool_checkout",
            "checkouts_per_round": args.checkouts,
            "rounds": args.rounds,
            "us_per_checkout_median": median,
            "us_per_checkout_rounds": {variant: [round(t, 2) for t in times] for variant, times in rounds.items()},
            "checked_minus_django_us": round(median["checked"] - median["django"], 2),
            "checked_over_django": round(median["checked"] / median["django"], 3),
            "health_checks_over_django": round(median["health_checks"] / median["django"], 3),
        }
    )


if __name__ == "__main__":
    main()
