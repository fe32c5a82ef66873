"""The optimizer's choice rule: the fastest mode inside the fidelity budget, and a reason for every other."""

import pytest

from apps.inference.profiling import ModeResult, choose


def mode(name, speed, loss, available=True, memory=100.0):
    verdict = "" if available else "unavailable: no CUDA"
    figures = {"peak_memory_mb": memory}
    return ModeResult(
        name, "cpu", available=available, speed=speed, fidelity_loss=loss, figures=figures, verdict=verdict
    )


def test_the_fastest_inside_the_budget_wins_and_the_others_say_why():
    results = [mode("fp32", 10, 0.0), mode("int8", 20, 0.05), mode("bf16", 14, 0.01), mode("nf4", None, None, False)]
    chosen = choose(results, budget=0.02, task="generation")
    assert chosen.mode == "bf16"
    verdicts = {r.mode: r.verdict for r in results}
    assert verdicts["bf16"].startswith("chosen")
    assert verdicts["int8"].startswith("outside the fidelity budget: loss 0.0500 > 0.02")
    assert verdicts["fp32"].startswith("slower: 10.0 tokens/s, 0.71x bf16")
    assert verdicts["nf4"] == "unavailable: no CUDA"


def test_a_looser_budget_lets_the_faster_mode_in_and_fp32_is_always_eligible():
    results = [mode("fp32", 10, 0.0), mode("int8", 20, 0.05)]
    assert choose(results, budget=0.1, task="embedding").mode == "int8"
    assert choose([mode("fp32", 10, 0.0), mode("int8", 20, 0.05)], budget=0.0, task="embedding").mode == "fp32"


def test_equal_speed_prefers_the_smaller_memory():
    results = [mode("fp32", 10, 0.0, memory=500), mode("bf16", 10, 0.0, memory=250)]
    assert choose(results, budget=0.01, task="embedding").mode == "bf16"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("prompts", "max_batch_size"),
    [("one prompt, not a list", 4), (["fever", 7], 4), (["fever", "  "], 4), (["fever"], 0), (["fever"], 2.5)],
)
def test_the_briefs_api_refuses_what_it_cannot_measure(prompts, max_batch_size):
    """One string was measured letter by letter; a number or a blank text failed every mode ("fp32 did not
    run", as if the model could not load); max_batch_size=0 answered best_batch_size 1, measured at none."""
    from apps.inference import services
    from apps.inference.brief import ModelPerformanceOptimizer

    services.bundled_deployments_ensure()
    with pytest.raises(ValueError, match=r"test_prompts|max_batch_size"):
        ModelPerformanceOptimizer().dynamic_batch_optimization("clinical-embeddings", prompts, max_batch_size)
