"""Rate limits: exactness under concurrency, ours against DRF's own throttle, and the cost of a check.

In one run, on Redis:
  * 64 concurrent clients sharing one token against 100 per minute, each trying 4 times: how many get
    through our limiter (one Lua script) and DRF's SimpleRateThrottle on the same Redis (get, then set);
  * the same over HTTP: gunicorn (2 workers x 16 threads), 64 keep-alive connections, the audit-log
    API limited to 100/min; counted 200s and 429s, and the headers of the last response;
  * the cost of one limiter check against a raw redis-py GET in the same run.

Run:  .venv/bin/python bench/ratelimit.py
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import django_setup, emit, per_call_us, policies, progress, server

CLIENTS, TRIES, LIMIT = 64, 4, 100


def race(attempt) -> int:
    """CLIENTS threads released together, each calling attempt() TRIES times; the number allowed."""
    allowed = []
    barrier = threading.Barrier(CLIENTS)

    def client() -> None:
        barrier.wait()
        for _ in range(TRIES):
            allowed.append(bool(attempt()))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(allowed)


def in_process(redis_url: str, rounds: int) -> dict:
    from django.core.cache import caches
    from rest_framework.throttling import SimpleRateThrottle

    from apps.ratelimits.limiter import RedisSlidingWindow

    ours = RedisSlidingWindow(redis.Redis.from_url(redis_url))

    class SharedTokenThrottle(SimpleRateThrottle):
        rate = f"{LIMIT}/min"
        cache = caches["default"]  # django-redis on the same Redis

        def get_cache_key(self, request, view):
            return self.cache_format % {"scope": "bench", "ident": key}

    class Anonymous:
        pass

    key = f"bench-sequential-{time.time_ns()}"
    drf_sequential = sum(SharedTokenThrottle().allow_request(Anonymous(), None) for _ in range(CLIENTS * TRIES))
    ours_allowed, drf_allowed = [], []
    for n in range(rounds):
        key = f"bench-{time.time_ns()}-{n}"
        ours_allowed.append(race(lambda k=key: ours.hit(k, limit=LIMIT, window_seconds=60).allowed))
        drf_allowed.append(race(lambda: SharedTokenThrottle().allow_request(Anonymous(), None)))
    return {
        "clients": CLIENTS,
        "tries_each": TRIES,
        "limit_per_minute": LIMIT,
        "rounds": rounds,
        "ours_allowed_per_round": ours_allowed,
        "drf_simple_rate_throttle_allowed_per_round": drf_allowed,
        "ours_exact_every_round": all(n == LIMIT for n in ours_allowed),
        "drf_over_admitted_max": max(drf_allowed) - LIMIT,
        # The comparison is fair: one client at a time, DRF's throttle admits exactly the limit too.
        "drf_sequential_allowed": drf_sequential,
    }


def over_http(token: str) -> dict:
    from apps.ratelimits.models import RateLimitPolicy

    with policies(rate_limit_requests=10**9):
        RateLimitPolicy.objects.filter(scope="audit_logs").update(requests=LIMIT)
        with server("wsgi", workers=2, threads=16) as base:
            where = urlsplit(base)
            statuses, last = [], {}
            barrier = threading.Barrier(CLIENTS)

            def client() -> None:
                conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                barrier.wait()
                for _ in range(TRIES):
                    conn.request("GET", "/api/v1/audit/?page_size=1", headers={"Authorization": f"Bearer {token}"})
                    response = conn.getresponse()
                    response.read()
                    statuses.append(response.status)
                    last.update({k: response.getheader(k) for k in ("RateLimit-Limit", "RateLimit-Remaining",
                                                                     "RateLimit-Reset", "Retry-After")})  # fmt: skip
                conn.close()

            threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    return {
        "requests": len(statuses),
        "status_200": statuses.count(200),
        "status_429": statuses.count(429),
        "other": len(statuses) - statuses.count(200) - statuses.count(429),
        "exact": statuses.count(200) == LIMIT,
        "last_response_headers": last,
    }


def check_cost(redis_url: str) -> dict:
    from apps.ratelimits.limiter import RedisSlidingWindow

    client = redis.Redis.from_url(redis_url)
    ours = RedisSlidingWindow(client)

    limiter_us, get_us = [], []
    for _ in range(20):
        get_us.append(per_call_us(lambda: client.get("bench:nothing"), 500))
        limiter_us.append(per_call_us(lambda: ours.hit("bench:cost", limit=10**9, window_seconds=1), 500))
    return {
        "limiter_check_us": round(statistics.median(limiter_us), 1),
        "raw_redis_get_us": round(statistics.median(get_us), 1),
        "limiter_over_raw_get": round(statistics.median(limiter_us) / statistics.median(get_us), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cp_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    django_setup(args.database_url, args.redis_url)
    redis.Redis.from_url(args.redis_url).flushdb()

    from apps.accounts.services import api_client_create

    token = api_client_create(name=f"bench-limits-{time.time_ns()}", scopes=["audit:read"]).token
    progress(f"{CLIENTS} concurrent clients x {TRIES} tries against {LIMIT}/min, in process, {args.rounds} rounds")
    figures = {"bench": "ratelimit", "in_process": in_process(args.redis_url, args.rounds)}
    progress("the same over HTTP")
    figures["over_http"] = over_http(token)
    progress("cost of one check")
    figures["check_cost"] = check_cost(args.redis_url)
    emit(figures)


if __name__ == "__main__":
    main()
