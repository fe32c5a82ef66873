"""What the optimizer steps hand to the orchestrator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Draft:
    """A recommendation before it is stored."""

    kind: str
    subject: str
    title: str
    reason: str
    change: dict
    evidence: dict
    actionable: bool = True


@dataclass
class StepResult:
    """A step's measurements and proposals. `skipped` carries why there was nothing to measure."""

    findings: dict = field(default_factory=dict)
    drafts: list[Draft] = field(default_factory=list)
    skipped: str = ""


@dataclass(frozen=True)
class Goals:
    """The run's targets; None where the caller set none (each service's own SLO then applies)."""

    response_time_ms: float | None = None
    cache_hit_rate: float | None = None
    service_slug: str | None = None
    subject: str | None = None  # one thing to optimize, e.g. a model deployment's name


Progress = Callable[[float, str], None]


def verdict(
    *, target: str, subject: str, measured: float | None, goal: float, unit: str, higher_is_better: bool
) -> dict:
    """One target against one measurement; `met` is None when nothing was measured."""
    met = None if measured is None else (measured >= goal if higher_is_better else measured <= goal)
    return {"target": target, "subject": subject, "measured": measured, "goal": goal, "unit": unit, "met": met}
