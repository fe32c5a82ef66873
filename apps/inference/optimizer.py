"""The orchestrator's model step: measure every deployment's modes, propose the measured choice."""

from __future__ import annotations

from apps.core.services import fields_update
from apps.inference import services
from apps.inference.backends import ModelUnavailable
from apps.inference.models import ModelDeployment
from apps.inference.selectors import PROFILE_FIELDS
from apps.optimizer.types import Draft, Goals, Progress, StepResult, verdict

TOKENS_PER_S_FLOOR = 10.0  # the brief's floor for generation


def measure(goals: Goals, progress: Progress) -> StepResult:
    deployments = list(ModelDeployment.objects.filter(enabled=True))
    if goals.subject:
        deployments = [d for d in deployments if d.name == goals.subject]
        if not deployments:
            return StepResult(skipped=f"No enabled deployment named {goals.subject!r} (admin: Model deployments).")
    if not deployments:
        return StepResult(skipped="No enabled model deployment (admin: Model deployments).")
    findings, drafts, unavailable = {"deployments": []}, [], {}
    for position, deployment in enumerate(deployments):
        share = 1 / len(deployments)

        def step_progress(fraction: float, message: str, position=position, name=deployment.name, share=share) -> None:
            progress((position + fraction) * share, f"{name}: {message}")

        try:
            profiles = services.deployment_profile(deployment, progress=step_progress)
        except ModelUnavailable as reason:  # one deployment this host cannot load does not stop the others
            unavailable[deployment.name] = str(reason)
            continue
        chosen = next(p for p in profiles if p.chosen)
        findings["deployments"].append({
            "deployment": deployment.name, "task": deployment.task, "configured": deployment.quantization,
            "serving": deployment.serving_quantization, "chosen": chosen.mode, "slo_p95_ms": deployment.slo_p95_ms,
            "fidelity_budget": deployment.fidelity_budget,
            "table": [{name: getattr(p, name) for name in PROFILE_FIELDS} for p in profiles],
        })  # fmt: skip
        if deployment.quantization not in (ModelDeployment.Quantization.AUTO, chosen.mode):
            drafts.append(
                Draft(
                    kind="model_quantization",
                    subject=deployment.name,
                    title=f"Serve {deployment.name} in {chosen.mode} instead of {deployment.quantization}",
                    reason=chosen.verdict,
                    change={"quantization": chosen.mode},
                    evidence={"table": findings["deployments"][-1]["table"]},
                )
            )
    if unavailable:
        findings["unavailable"] = unavailable
        if not findings["deployments"]:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in unavailable.items())
            return StepResult(skipped=f"No deployment can be measured on this host. {reasons}"[:2000])
    return StepResult(findings=findings, drafts=drafts)


def apply(change: dict, subject: str) -> dict:
    _, before = fields_update(ModelDeployment.objects.filter(name=subject), change)
    return {"deployment": subject, "before": before, "after": change}


def verdicts(findings: dict, goals: Goals) -> list[dict]:
    results = []
    for summary in findings.get("deployments", []):
        chosen = next(row for row in summary["table"] if row["chosen"])
        if summary["task"] == ModelDeployment.Task.GENERATION:
            subject = f"{summary['deployment']} in {chosen['mode']}, one stream"
            results.append(verdict(target="tokens_per_s", subject=subject, measured=chosen["tokens_per_s_batch1"],
                                   goal=TOKENS_PER_S_FLOOR, unit="tokens/s", higher_is_better=True))  # fmt: skip
        else:
            goal = goals.response_time_ms or summary["slo_p95_ms"]
            results.append(verdict(target="response_time",
                                   subject=f"{summary['deployment']} p95 at batch {chosen['best_batch_size']}",
                                   measured=chosen["p95_ms_best_batch"], goal=goal, unit="ms",
                                   higher_is_better=False))  # fmt: skip
    return results
