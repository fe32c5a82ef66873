"""Model inference on this CPU: dynamic batching against one-at-a-time serving, the quantization modes
against fp32, and generation speed, all in one run.

  * embeddings (bundled all-MiniLM-L6-v2): N concurrent clients, each sending single texts through the
    product's batcher; baseline: the same clients and code with batches of one (one-at-a-time serving);
  * every quantization mode of both bundled models, measured by the optimizer's own profiling: speed,
    peak memory and fidelity as ratios to fp32;
  * generation (bundled SmolLM2-135M-Instruct): tokens/s of one stream and batched, time to first token;
  * mixed generation lengths (`--only mixed` runs this alone): short requests (8 new tokens) sent beside
    long ones (--long-tokens) through the product's batcher, grouped by max_new_tokens bucket (as served)
    against the baseline of the same batcher gathering them all into one batch (every request waits for
    the longest): the short requests' p50/p95 and the long ones', as ratios to the baseline.
Run: .venv/bin/python bench/inference.py [--clients 32] [--requests 20] [--only mixed]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from harness import REPO_ROOT, django_setup, emit, progress

sys.path.insert(0, str(REPO_ROOT))


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)


def concurrent_embeddings(runner, bridge, *, clients: int, requests: int, max_batch: int, delay_ms: float) -> dict:
    """`clients` threads, each sending `requests` single texts and waiting for each answer."""
    from apps.inference.batcher import BatchController, DynamicBatcher
    from apps.inference.workloads import EMBEDDING_TEXTS

    controller = BatchController(slo_ms=300, max_batch_size=max_batch, max_delay_ms=delay_ms)
    batcher = DynamicBatcher(runner.embed, controller, length=len)
    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(requests):
            text = f"{EMBEDDING_TEXTS[(n + i) % len(EMBEDDING_TEXTS)]} (note {n}-{i})"
            started = time.perf_counter()
            bridge.call(batcher.submit(text), timeout=120)
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)

    bridge.call(batcher.submit("warm-up"))
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {
        "requests": len(latencies), "seconds": round(seconds, 2), "per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 2), "p95_ms": _p95(latencies),
        "batches": batcher.batches - 1, "mean_batch": round((batcher.items - 1) / max(batcher.batches - 1, 1), 2),
        "controller_batch_size": controller.batch_size, "controller_changes": len(controller.changes),
    }  # fmt: skip


def modes_table(deployment) -> dict:
    from apps.inference import profiling
    from apps.inference.backends import LoadSpec

    results = profiling.profile(LoadSpec.of(deployment), slo_ms=deployment.slo_p95_ms,
                                max_batch=deployment.max_batch_size,
                                progress=lambda f, m: progress(f"{deployment.name}: {m}"))  # fmt: skip
    chosen = profiling.choose(results, budget=deployment.fidelity_budget, task=deployment.task)
    fp32 = next(r for r in results if r.mode == "fp32")
    table = {}
    for r in results:
        if not r.available:
            table[r.mode] = {"available": False, "verdict": r.verdict}
            continue
        f = r.figures
        table[r.mode] = {
            "speed": round(r.speed, 2), "speed_vs_fp32": round(r.speed / fp32.speed, 3),
            "peak_memory_mb": round(f["peak_memory_mb"], 1), "weights_mb": round(f["weights_mb"], 1),
            "weights_vs_fp32": round(f["weights_mb"] / fp32.figures["weights_mb"], 3),
            "fidelity": r.fidelity, "fidelity_loss": round(r.fidelity_loss, 5), "chosen": r is chosen,
            **{k: round(f[k], 2) for k in ("tokens_per_s_batch1", "tokens_per_s", "ttft_ms", "tpot_ms") if k in f},
        }  # fmt: skip
    unit = "sequences/s at the best batch" if deployment.task == "embedding" else "tokens/s at the best batch"
    return {"speed_unit": unit, "fidelity_budget": deployment.fidelity_budget, "chosen": chosen.mode, "modes": table}


def mixed_generation(runner, bridge, *, rounds: int, long_tokens: int, grouped: bool) -> dict:
    """`rounds` times: three 8-token requests and one `long_tokens` request sent at once (a batch of 4)."""
    from apps.inference.batcher import BatchController, DynamicBatcher
    from apps.inference.serving import _generate_batch, new_tokens_bucket

    controller = BatchController(slo_ms=600_000, max_batch_size=4, max_delay_ms=500)
    batcher = DynamicBatcher(_generate_batch(runner), controller, length=lambda item: len(item[0]),
                             group=new_tokens_bucket if grouped else None)  # fmt: skip
    latencies: dict[str, list[float]] = {"short": [], "long": []}
    lock = threading.Lock()

    def client(kind: str, prompt: str, tokens: int) -> None:
        started = time.perf_counter()
        bridge.call(batcher.submit((prompt, tokens)), timeout=600)
        with lock:
            latencies[kind].append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    for n in range(rounds):
        requests = [("short", f"Name one vital sign ({n}-{i}).", 8) for i in range(3)]
        requests.append(("long", f"Write a discharge letter for a patient with pneumonia ({n}).", long_tokens))
        threads = [threading.Thread(target=client, args=request) for request in requests]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seconds = time.perf_counter() - started
    batcher.close()
    return {
        "seconds": round(seconds, 2), "batches": batcher.batches,
        **{f"{kind}_p50_ms": round(statistics.median(values), 1) for kind, values in latencies.items()},
        **{f"{kind}_p95_ms": _p95(values) for kind, values in latencies.items()},
    }  # fmt: skip


def mixed_generation_figures(assistant, bridge, *, rounds: int, long_tokens: int) -> dict:
    from apps.inference.backends import LoadSpec, load

    runner = load(LoadSpec.of(assistant), "fp32")
    runner.generate(["Warm up."], 2)
    progress(f"mixed generation: {rounds} rounds of 3 x 8 tokens + 1 x {long_tokens}, one batch (baseline)")
    together = mixed_generation(runner, bridge, rounds=rounds, long_tokens=long_tokens, grouped=False)
    progress("mixed generation: the same, grouped by max_new_tokens bucket (as served)")
    grouped = mixed_generation(runner, bridge, rounds=rounds, long_tokens=long_tokens, grouped=True)
    return {
        "rounds": rounds, "long_tokens": long_tokens, "one_batch": together, "grouped": grouped,
        "short_p50_ratio": round(grouped["short_p50_ms"] / together["short_p50_ms"], 3),
        "long_p50_ratio": round(grouped["long_p50_ms"] / together["long_p50_ms"], 3),
        "throughput_ratio": round(together["seconds"] / grouped["seconds"], 3),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/cp_bench")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20, help="Per client.")
    parser.add_argument("--rounds", type=int, default=6, help="Mixed generation: rounds of four requests.")
    parser.add_argument("--long-tokens", type=int, default=64, help="Mixed generation: the long request's cap.")
    parser.add_argument("--only", choices=["mixed"], help="Run one measurement alone.")
    args = parser.parse_args()
    # None measured (--requests 0) crashed after the models had loaded and run for minutes: a median of nothing.
    for flag in ("clients", "requests", "rounds", "long_tokens"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be above 0")
    django_setup(args.database_url)

    from apps.inference.backends import LoadSpec, load
    from apps.inference.batcher import EventLoopThread
    from apps.inference.services import bundled_deployments_ensure

    embeddings, assistant = bundled_deployments_ensure()
    bridge = EventLoopThread()  # one loop thread for every measurement of this run
    mixed = {"rounds": args.rounds, "long_tokens": args.long_tokens}
    if args.only == "mixed":
        emit({"bench": "inference", "mixed_generation": mixed_generation_figures(assistant, bridge, **mixed)})
        return
    figures = {"bench": "inference", "embedding_modes": modes_table(embeddings)}
    for mode in ("fp32", figures["embedding_modes"]["chosen"]):
        runner = load(LoadSpec.of(embeddings), mode)
        progress(f"embeddings {mode}: {args.clients} clients x {args.requests} texts, one at a time (baseline)")
        alone = concurrent_embeddings(
            runner, bridge, clients=args.clients, requests=args.requests, max_batch=1, delay_ms=0
        )
        progress(f"embeddings {mode}: the same with dynamic batching (up to {embeddings.max_batch_size})")
        batching = {"max_batch": embeddings.max_batch_size, "delay_ms": embeddings.max_queue_delay_ms}
        batched = concurrent_embeddings(runner, bridge, clients=args.clients, requests=args.requests, **batching)
        figures[f"embeddings_concurrent_{mode}"] = {
            "clients": args.clients, "one_at_a_time": alone, "dynamic_batching": batched,
            "throughput_ratio": round(batched["per_s"] / alone["per_s"], 2),
            "p95_ratio": round(batched["p95_ms"] / alone["p95_ms"], 3),
        }  # fmt: skip
    figures["generation_modes"] = modes_table(assistant)
    figures["mixed_generation"] = mixed_generation_figures(assistant, bridge, **mixed)
    emit(figures)


if __name__ == "__main__":
    main()
