"""The serving stack: the same bare view (/healthz) under gunicorn (WSGI) and uvicorn (ASGI).

Why the product runs its data plane under WSGI and only websockets under ASGI.
The servers run on the bench's own database, Redis and VAR_DIR with DEBUG off (harness.django_setup): started
with the shell's environment, they wrote their requests into a running product's rollups.

Run: .venv/bin/python bench/stack.py [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse

from harness import django_setup, emit, progress, server, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cp_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    django_setup(args.database_url, args.redis_url)

    results = {}
    for kind in ("wsgi", "asgi"):
        progress(f"{kind}: warming up and measuring for {args.seconds}s at {args.connections} connections")
        with server(kind) as base:
            wrk(base + "/healthz", connections=args.connections, seconds=2)
            results[kind] = wrk(base + "/healthz", connections=args.connections, seconds=args.seconds)
    emit(
        {
            "bench": "stack",
            "view": "/healthz (bare JsonResponse)",
            "connections": args.connections,
            "wsgi_gunicorn_2_workers": results["wsgi"],
            "asgi_uvicorn_2_workers": results["asgi"],
            "asgi_rps_over_wsgi_rps": round(results["asgi"]["rps"] / results["wsgi"]["rps"], 3),
        }
    )


if __name__ == "__main__":
    main()
