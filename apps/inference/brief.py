"""The brief's model-optimization API, over the same services the product uses."""

from __future__ import annotations

import statistics

from apps.inference import services
from apps.inference.backends import LoadSpec, load
from apps.inference.models import ModelDeployment
from apps.inference.profiling import timed_ms


class ModelPerformanceOptimizer:
    """`auto_optimize_quantization(name, prompts)` and `dynamic_batch_optimization(name, prompts, ...)`,
    where `name` is a ModelDeployment's name."""

    def auto_optimize_quantization(self, model_name: str, test_prompts: list[str]) -> dict:
        """Measure every mode on these prompts (fidelity on the fixed clinical sets) and record the choice."""
        prompts = _texts(test_prompts)
        deployment = ModelDeployment.objects.get(name=model_name)
        profiles = services.deployment_profile(deployment, workload=prompts or None)
        chosen = next(p for p in profiles if p.chosen)
        return {
            "model": model_name,
            "chosen_quantization": chosen.mode,
            "reason": chosen.verdict,
            "modes": {p.mode: {"available": p.available, "verdict": p.verdict, "sequences_per_s": p.sequences_per_s,
                               "tokens_per_s": p.tokens_per_s, "peak_memory_mb": p.peak_memory_mb,
                               "fidelity_loss": p.fidelity_loss} for p in profiles},
        }  # fmt: skip

    def dynamic_batch_optimization(self, model_name: str, test_prompts: list[str], max_batch_size: int = 8) -> dict:
        """Throughput and latency at each batch size up to `max_batch_size` in the serving mode; the best size
        is the fastest whose batch latency stays inside the deployment's p95 SLO."""
        prompts = _texts(test_prompts) or ["Summarize the patient's vital signs."]
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or not 1 <= max_batch_size <= 256:
            # 0 answered best_batch_size 1 with nothing measured
            raise ValueError(f"max_batch_size must be a whole number from 1 to 256, not {max_batch_size!r}")
        deployment = ModelDeployment.objects.get(name=model_name)
        runner = load(LoadSpec.of(deployment), deployment.serving_quantization)
        embedding = deployment.task == ModelDeployment.Task.EMBEDDING
        sizes, best = {}, None
        for size in range(1, max_batch_size + 1):
            batch = (prompts * size)[:size]
            call = (lambda b=batch: runner.embed(b)) if embedding else (lambda b=batch: runner.generate(b, 16))
            latency = statistics.median(timed_ms(call, 3))
            sizes[size] = {"latency_ms": round(latency, 2), "sequences_per_s": round(size * 1000 / latency, 2)}
            if latency <= deployment.slo_p95_ms and (
                best is None or sizes[size]["sequences_per_s"] > sizes[best]["sequences_per_s"]
            ):
                best = size
        return {"model": model_name, "quantization": deployment.serving_quantization, "best_batch_size": best or 1,
                "batch_sizes": sizes}  # fmt: skip


def _texts(test_prompts) -> list[str]:
    """The prompts as a list of texts. One string was taken letter by letter (a prompt per character), and a
    number or an empty text failed every mode, reported as the model not loading."""
    if isinstance(test_prompts, str) or not all(isinstance(text, str) and text.strip() for text in test_prompts):
        raise ValueError("test_prompts must be a list of non-empty texts")
    return list(test_prompts)
