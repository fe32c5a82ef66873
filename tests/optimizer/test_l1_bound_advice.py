"""The L1 entry bound is per process: advice to raise it reads the fullest live process, not the sum."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.caching.models import CachePolicy, CacheStat
from apps.optimizer import caching as cache_optimizer

pytestmark = pytest.mark.django_db


def _l1_drafts_with(per_process_entries: list[int]) -> list:
    policy = CachePolicy.objects.get(namespace="patient_data")
    for number, entries in enumerate(per_process_entries):
        # Each process evicts a third of its lookups: well over the share that calls for a larger bound.
        CacheStat.objects.create(namespace=policy.namespace, tier="l1", process=f"api-{number}", hits=200, misses=100,
                                 evictions=100, entries=entries, bytes=entries * 1_000)  # fmt: skip
    (figure,) = [f for f in cache_optimizer.namespace_figures(window=timedelta(hours=1), now=timezone.now())
                 if f["namespace"] == policy.namespace]  # fmt: skip
    return [
        draft for draft in cache_optimizer.recommendations_for(figure, target=0.8) if draft.kind == "cache_l1_entries"
    ]


def test_four_processes_each_a_third_full_are_no_reason_to_raise_the_bound():
    bound = CachePolicy.objects.get(namespace="patient_data").l1_max_entries
    # Summed, they hold 4 x 0.3 = 1.2 bounds: the old advice read that as one full process.
    assert _l1_drafts_with([int(0.3 * bound)] * 4) == []


def test_one_process_at_its_bound_is():
    bound = CachePolicy.objects.get(namespace="patient_data").l1_max_entries
    (draft,) = _l1_drafts_with([bound, int(0.1 * bound)])
    assert draft.evidence["l1_fullest_process_entries"] == bound


def test_raising_two_bounds_stays_within_the_process_l1_budget_together(settings):
    """Each namespace was offered up to half of a process's L1 memory on its own: two such proposals (and the
    namespaces left as they are) together asked for more than CACHE_L1_MAX_BYTES."""
    settings.CACHE_L1_MAX_BYTES = 100 * 2**20
    for namespace in ("patient_data", "vital_signs"):
        policy = CachePolicy.objects.get(namespace=namespace)
        policy.l1_max_entries = 10_000
        policy.save()
        # Full at its bound and evicting a third of its lookups, 3 KiB an entry: doubling takes 60 MiB.
        CacheStat.objects.create(namespace=namespace, tier="l1", process="api-1", hits=200, misses=100,
                                 evictions=100, entries=10_000, bytes=10_000 * 3 * 2**10)  # fmt: skip
    # A third namespace, full and not evicting, already takes 30 MiB of every process's L1.
    medications = CachePolicy.objects.get(namespace="medications")
    medications.l1_max_entries = 10_000
    medications.save()
    CacheStat.objects.create(namespace="medications", tier="l1", process="api-1", hits=300, misses=10,
                             entries=10_000, bytes=10_000 * 3 * 2**10)  # fmt: skip
    figures = cache_optimizer.namespace_figures(window=timedelta(hours=1), now=timezone.now())
    drafts = [d for d in cache_optimizer.recommendations_for_all(figures, target=0.8) if d.kind == "cache_l1_entries"]
    footprint = {
        f["namespace"]: f["l1_bytes"] / f["l1_entries"] * f["l1_max_entries"] for f in figures if f["l1_entries"]
    }
    for draft in drafts:
        (figure,) = [f for f in figures if f["namespace"] == draft.subject]
        footprint[draft.subject] = figure["l1_bytes"] / figure["l1_entries"] * draft.change["l1_max_entries"]
    assert drafts and sum(footprint.values()) <= settings.CACHE_L1_MAX_BYTES  # before: 50 + 50 + 30 MiB
