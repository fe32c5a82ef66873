"""A cgroup's CPU usage counter that goes backwards (reset: the cgroup recreated, a v1 counter written to 0)
never yields a negative CPU, in the monitor's own sample or in a pod's publish. The cgroup is a fake folder or
a fake counter (no cgroup can be reset on the machine the tests run on); time is the test's own."""

from __future__ import annotations

from types import SimpleNamespace

from apps.resources import cgroup, pools


class Ticks:
    """Stands in for time: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _limits(readings: list[int]) -> cgroup.Limits:
    counter = iter(readings)
    return cgroup.Limits(source="cgroup v2", cpus=1.0, memory_bytes=None, usage_usec=lambda: next(counter),
                         memory_in_use=lambda: 0)  # fmt: skip


def test_a_reset_during_the_sample_is_measured_again_not_read_as_negative():
    ticks = Ticks()
    # 5 s of CPU, then the counter starts over; measured again: 0.5 s in 1 s of one core
    limits = _limits([5_000_000, 100_000, 100_000, 600_000])
    assert cgroup.cpu_percent(limits, interval=1.0, sleep=ticks.sleep, clock=ticks.monotonic) == 50.0


def test_two_resets_running_read_zero_not_below():
    ticks = Ticks()
    limits = _limits([5_000_000, 100_000, 4_000_000, 200_000])
    assert cgroup.cpu_percent(limits, interval=1.0, sleep=ticks.sleep, clock=ticks.monotonic) == 0.0


def test_a_pods_publish_after_a_reset_has_no_cpu_then_the_next_is_measured_from_the_new_count(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    root.mkdir()
    files = {"cgroup.controllers": "cpu memory", "cpu.max": "100000 100000", "memory.max": "1000",
             "memory.current": "250", "memory.stat": "inactive_file 0", "cpu.stat": "usage_usec 9000000"}  # fmt: skip
    for name, text in files.items():
        (root / name).write_text(text + "\n")
    ticks = Ticks()
    monkeypatch.setattr(pools, "time", SimpleNamespace(monotonic=ticks.monotonic, time=lambda: ticks.now))
    monkeypatch.setattr(pools, "os", SimpleNamespace(getpid=lambda: 434343))  # a process that never published
    assert pools.pod_figures(root)["cpu_pct"] is None  # its first publish
    (root / "cpu.stat").write_text("usage_usec 1000000\n")  # reset, then 1 s of CPU
    ticks.sleep(5)
    assert pools.pod_figures(root)["cpu_pct"] is None  # before: -160.0
    (root / "cpu.stat").write_text("usage_usec 3500000\n")  # 2.5 s of CPU in the next 5 s: half its one core
    ticks.sleep(5)
    assert pools.pod_figures(root)["cpu_pct"] == 50.0
