"""Measuring each quantization mode of a deployment on this host, and the rule that picks one.

For every mode: load, warm up, latency at batch 1 (p50/p95), throughput at the best batch size that
keeps p95 inside the SLO (sequences/s; for generation tokens/s, time to first token and per output
token), memory, and fidelity against fp32 on fixed clinical-style texts. The fastest mode inside the
fidelity budget wins; every other mode gets the reason it lost.
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.inference.backends import (
    CPU_MODES,
    LoadSpec,
    ModelUnavailable,
    base_models_release,
    load,
    resolve_device,
)
from apps.inference.workloads import EMBEDDING_TEXTS, FIDELITY_TEXTS, GENERATION_PROMPTS

Progress = Callable[[float, str], None]
Check = Callable[[str], None]  # a progress report inside one mode: raises when the run no longer wants it
GENERATED_TOKENS = 24


class _ProgressRaised(Exception):
    """What a progress report raised (the run was cancelled), carried past the per-mode error handling."""


@dataclass
class ModeResult:
    mode: str
    device: str
    available: bool = True
    verdict: str = ""
    figures: dict = field(default_factory=dict)
    fidelity: dict = field(default_factory=dict)
    fidelity_loss: float | None = None
    speed: float | None = None  # what the choice compares: sequences/s (embedding), tokens/s (generation)


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _release_memory() -> None:
    """Collect, then hand freed heap back to the OS (glibc keeps it otherwise), so RSS is a fair baseline."""
    import ctypes

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the baseline is only less tight
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRss:
    """The highest RSS seen while the block runs (sampled every 5 ms in a thread)."""

    def __enter__(self) -> PeakRss:
        import threading

        self.peak, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def weights_mb(model) -> float:
    """Bytes of every tensor the model holds (int8-packed weights included), in MB."""
    import torch

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, (tuple, list)):
            return sum(size(item) for item in value)
        return 0

    return sum(size(value) for value in model.state_dict().values()) / 2**20


def timed_ms(call: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _embedding_figures(runner, slo_ms: float, max_batch: int, texts: list[str], check: Check) -> tuple[dict, float]:
    runner.embed(texts[:4])  # warm-up
    check("latency at batch 1")
    single = timed_ms(lambda: runner.embed([texts[0]]), 20)
    best = (1, 1000 / statistics.median(single), _percentile(single, 0.95))
    size = 2
    while size <= max_batch:
        check(f"throughput at batch {size}")
        batch = (texts * math.ceil(size / len(texts)))[:size]
        samples = timed_ms(lambda batch=batch: runner.embed(batch), 3)
        rate, p95 = size * 1000 / statistics.median(samples), _percentile(samples, 0.95)
        if p95 <= slo_ms and rate > best[1]:
            best = (size, rate, p95)
        size *= 2
    figures = {"p50_ms_batch1": statistics.median(single), "p95_ms_batch1": _percentile(single, 0.95),
               "best_batch_size": best[0], "sequences_per_s": best[1], "p95_ms_best_batch": best[2]}  # fmt: skip
    return figures, best[1]


def _generation_figures(runner, slo_ms: float, max_batch: int, prompts: list[str], check: Check) -> tuple[dict, float]:
    prompt = prompts[0]
    runner.generate([prompt], 2)  # warm-up
    check("time to first token")
    first = timed_ms(lambda: runner.generate([prompt], 1), 3)
    check(f"{GENERATED_TOKENS} tokens, one stream")
    started = time.perf_counter()
    [answer] = runner.generate([prompt], GENERATED_TOKENS)
    total_ms = (time.perf_counter() - started) * 1000
    tokens = max(answer["output_tokens"], 1)
    ttft = statistics.median(first)
    figures = {
        "p50_ms_batch1": total_ms, "p95_ms_batch1": total_ms, "ttft_ms": ttft,
        "tpot_ms": (total_ms - ttft) / max(tokens - 1, 1), "tokens_per_s": tokens * 1000 / total_ms,
        "tokens_per_s_batch1": tokens * 1000 / total_ms,
        "best_batch_size": 1, "sequences_per_s": 1000 / total_ms, "p95_ms_best_batch": total_ms,
    }  # fmt: skip
    size = min(len(prompts), max_batch)
    if size > 1:
        check(f"{GENERATED_TOKENS} tokens, {size} streams")
        started = time.perf_counter()
        answers = runner.generate(prompts[:size], GENERATED_TOKENS)
        batch_ms = (time.perf_counter() - started) * 1000
        rate = sum(max(a["output_tokens"], 1) for a in answers) * 1000 / batch_ms
        if rate > figures["tokens_per_s"] and batch_ms <= slo_ms * GENERATED_TOKENS:
            figures.update(best_batch_size=size, tokens_per_s=rate, sequences_per_s=size * 1000 / batch_ms,
                           p95_ms_best_batch=batch_ms)  # fmt: skip
    return figures, figures["tokens_per_s"]


def _embedding_fidelity(runner, reference: list[list[float]]) -> tuple[dict, float]:
    vectors = runner.embed(EMBEDDING_TEXTS)
    cosines = [sum(a * b for a, b in zip(v, r, strict=True)) for v, r in zip(vectors, reference, strict=True)]
    worst = min(cosines)
    return {"mean_cosine": round(statistics.fmean(cosines), 6), "min_cosine": round(worst, 6)}, max(0.0, 1 - worst)


def _generation_fidelity(runner, reference: list) -> tuple[dict, float]:
    import torch

    agree = total = 0
    nll_mode = nll_ref = 0.0
    for (ref_logits, ids), text in zip(reference, FIDELITY_TEXTS, strict=True):
        logits, _ = runner.next_token_logits(text)
        agree += int((logits[:-1].argmax(-1) == ref_logits[:-1].argmax(-1)).sum())
        total += len(ids) - 1
        targets = ids[1:]
        nll_mode += float(torch.nn.functional.cross_entropy(logits[:-1], targets, reduction="sum"))
        nll_ref += float(torch.nn.functional.cross_entropy(ref_logits[:-1], targets, reduction="sum"))
    perplexity, reference_perplexity = math.exp(nll_mode / total), math.exp(nll_ref / total)
    agreement = agree / total
    return {
        "top1_agreement": round(agreement, 4), "perplexity": round(perplexity, 3),
        "fp32_perplexity": round(reference_perplexity, 3),
        "perplexity_change_pct": round(100 * (perplexity / reference_perplexity - 1), 2),
    }, 1 - agreement  # fmt: skip


def profile(spec: LoadSpec, *, slo_ms: float, max_batch: int, modes: list[str] | None = None,
            workload: list[str] | None = None,
            progress: Progress = lambda fraction, message: None) -> list[ModeResult]:  # fmt: skip
    """Measure every mode (fp32 first: it is the fidelity reference). `workload` replaces the texts
    (or prompts) speed is measured on; fidelity is always scored on the fixed sets. Raises
    ModelUnavailable when fp32 cannot run here (the model cannot be loaded). The fp32 base the modes were
    copied from is let go of after, unless this process serves it (see _bases_released)."""
    with _profiling_lock:
        _profiling[spec.weights] = _profiling.get(spec.weights, 0) + 1
    try:
        return _profile(spec, slo_ms=slo_ms, max_batch=max_batch, modes=modes, workload=workload, progress=progress)
    finally:
        _bases_released(spec.weights)


_profiling_lock = threading.Lock()
_profiling: dict[tuple, int] = {}  # weights -> the profiles of them running in this process


def _bases_released(weights: tuple) -> None:
    """The fp32 bases no served deployment, load in progress or other profile of this process uses are let go:
    kept, a long worker held each model it ever profiled for life (SmolLM2's ~520 MB, in a pool process under a
    4 GiB limit shared with the benchmarks' load generators)."""
    from apps.inference import serving

    with _profiling_lock:
        _profiling[weights] -= 1
        if not _profiling[weights]:
            del _profiling[weights]
        profiled = set(_profiling)
    with serving._lock:
        keep = serving._weights_in_use()
    base_models_release(keep=keep | profiled)
    _release_memory()


def _profile(spec: LoadSpec, *, slo_ms: float, max_batch: int, modes: list[str] | None, workload: list[str] | None,
             progress: Progress) -> list[ModeResult]:  # fmt: skip
    device = resolve_device(spec.device)
    modes = ["fp32", *[m for m in (modes or CPU_MODES) if m != "fp32"]]
    results, reference = [], {}
    for index, mode in enumerate(modes):
        fraction = index / len(modes)
        progress(fraction, f"{mode}: loading and measuring")

        def check(what: str, fraction=fraction, mode=mode) -> None:
            # The same report as between modes, so a cancel stops within one measurement, not after the mode.
            try:
                progress(fraction, f"{mode}: {what}")
            except Exception as error:
                raise _ProgressRaised from error

        result = ModeResult(mode, device)
        try:
            _measure_mode(spec, result, reference, slo_ms=slo_ms, max_batch=max_batch, workload=workload, check=check)
        except _ProgressRaised as raised:
            raise raised.__cause__ from None  # not this mode's failure: the caller's stop, as it was raised
        except ModelUnavailable as unavailable:
            result.available, result.verdict = False, f"unavailable: {unavailable}"
        except Exception as error:  # noqa: BLE001 - a mode this torch cannot run is recorded, the others measured
            result.available, result.verdict = False, f"failed: {type(error).__name__}: {error}"[:500]
        if not results and not result.available:
            # Without fp32 no mode has a fidelity to compare, so there is nothing to choose from.
            raise ModelUnavailable(f"fp32, the reference every mode is scored against, did not run: {result.verdict}")
        results.append(result)
    progress(1.0, "measured")
    return results


def _measure_mode(spec: LoadSpec, result: ModeResult, reference: dict, *, slo_ms: float, max_batch: int,
                  workload: list[str] | None, check: Check = lambda what: None) -> None:  # fmt: skip
    """Load one mode and fill `result`; the first mode measured (fp32) also fills `reference`."""
    import torch

    _release_memory()
    if result.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = _rss_mb()
    with PeakRss() as rss:
        started = time.perf_counter()
        runner = load(spec, result.mode)
        load_seconds = time.perf_counter() - started
        check("loaded, warming up")
        if spec.task == "embedding":
            figures, result.speed = _embedding_figures(runner, slo_ms, max_batch, workload or EMBEDDING_TEXTS, check)
            check("fidelity")
            reference.setdefault("vectors", runner.embed(EMBEDDING_TEXTS))
            result.fidelity, result.fidelity_loss = _embedding_fidelity(runner, reference["vectors"])
        else:
            figures, result.speed = _generation_figures(
                runner, slo_ms, max_batch, workload or GENERATION_PROMPTS, check
            )
            check("fidelity")
            if "logits" not in reference:
                reference["logits"] = [runner.next_token_logits(text) for text in FIDELITY_TEXTS]
            result.fidelity, result.fidelity_loss = _generation_fidelity(runner, reference["logits"])
    memory = torch.cuda.max_memory_allocated() / 2**20 if result.device == "cuda" else rss.peak - before
    result.figures = {**figures, "load_seconds": load_seconds, "peak_memory_mb": max(memory, 0.0),
                      "weights_mb": weights_mb(runner.model)}  # fmt: skip


def choose(results: list[ModeResult], *, budget: float, task: str) -> ModeResult:
    """The fastest available mode whose fidelity loss is inside the budget; sets every verdict."""
    unit = "sequences/s" if task == "embedding" else "tokens/s"
    eligible = [r for r in results if r.available and r.fidelity_loss is not None and r.fidelity_loss <= budget]
    chosen = max(eligible, key=lambda r: (r.speed, -r.figures.get("peak_memory_mb", 0)))
    for result in results:
        if not result.available:
            continue
        ratio = result.speed / chosen.speed if chosen.speed else 0
        if result is chosen:
            result.verdict = f"chosen: the fastest inside the fidelity budget ({result.speed:.1f} {unit}"
            result.verdict += f", fidelity loss {result.fidelity_loss:.4f} <= {budget})"
        elif result.fidelity_loss is not None and result.fidelity_loss > budget:
            result.verdict = (f"outside the fidelity budget: loss {result.fidelity_loss:.4f} > {budget}"
                              f" ({result.speed:.1f} {unit}, {ratio:.2f}x the chosen mode)")  # fmt: skip
        else:
            result.verdict = f"slower: {result.speed:.1f} {unit}, {ratio:.2f}x {chosen.mode} on this {result.device}"
    return chosen
