"""A plan above the floor for a whole day on the clock is two KEDA cron windows, also on the night the clocks go
forward: its 23 real hours from 00:00 end at 00:00, and as one window (start and end at one time) KEDA refused
the ScaledObject (manifests.validate: "must differ"), so the export and apply stopped until the next plan."""

from types import SimpleNamespace

import pandas as pd

from apps.scaling import manifests, services
from apps.scaling.manifests import ServiceScaling


def _hours(start: str, above: int, total: int = 24) -> list[dict]:
    first = pd.Timestamp(start)
    return [
        {"at": (first + pd.Timedelta(hours=i)).isoformat(), "replicas": 6 + i % 3 if i < above else 1}
        for i in range(total)
    ]


def test_the_23_hours_of_the_night_the_clocks_go_forward_are_two_windows_keda_accepts(settings):
    settings.TIME_ZONE = "America/New_York"
    # 00:00 EST on 8 March 2026: 02:00 is skipped, 23 real hours later it is 00:00 again.
    windows = services.peak_windows(SimpleNamespace(hours=_hours("2026-03-08T05:00:00+00:00", 23)), floor=2)
    assert [(w["start_hour"], w["end_hour"]) for w in windows] == [(0, 12), (12, 0)], windows
    docs = manifests.documents(ServiceScaling(name="busy", keda_enabled=True, peak_windows=windows))
    assert manifests.validate(docs) == []  # was: "busy-scaledobject.yaml: cron start and end '0 0 * * *': must differ"


def test_a_whole_day_is_still_two_windows_and_a_shorter_run_one(settings):
    settings.TIME_ZONE = "UTC"
    windows = services.peak_windows(SimpleNamespace(hours=_hours("2026-11-20T15:00:00+00:00", 24)), floor=2)
    assert [(w["start_hour"], w["end_hour"]) for w in windows] == [(15, 3), (3, 15)]
    windows = services.peak_windows(SimpleNamespace(hours=_hours("2026-11-20T15:00:00+00:00", 23)), floor=2)
    assert [(w["start_hour"], w["end_hour"]) for w in windows] == [(15, 14)]


def test_the_first_of_the_two_1_00_hours_alone_is_the_hour_on_the_clock(settings):
    """The night the clocks go back, the first 01:00 (05:00Z) ends one real hour later at 01:00 again: a run of
    that hour alone was split into an empty half and raised IndexError (every manifest preview, export and
    checker pass of the policy; before the split, one window KEDA refused)."""
    settings.TIME_ZONE = "America/New_York"
    hours = [{"at": "2026-11-01T04:00:00+00:00", "replicas": 1}, {"at": "2026-11-01T05:00:00+00:00", "replicas": 5},
             {"at": "2026-11-01T06:00:00+00:00", "replicas": 1}]  # fmt: skip
    windows = services.peak_windows(SimpleNamespace(hours=hours), floor=2)
    assert [(w["start_hour"], w["end_hour"], w["replicas"]) for w in windows] == [(1, 2, 5)]
    docs = manifests.documents(ServiceScaling(name="busy", keda_enabled=True, peak_windows=windows))
    assert manifests.validate(docs) == []
