"""In a pod the monitor reads the container's cgroup limits, not the node's CPUs and memory.

No cgroup limit can be set on the machine these tests run on, so the cgroup hierarchies are fake folders
laid out as the kernel lays them out (v2 and v1), passed in where /sys/fs/cgroup would be; everything else
(the sample's row, the recommendation) is the real code on PostgreSQL.
"""

from pathlib import Path

import psutil
import pytest

from apps.resources import cgroup, services
from apps.resources.models import ResourceRecommendation
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db

GIB = 2**30
NO_PROC = Path("/nonexistent/proc/self/cgroup")


def _v2(root: Path, *, cpu_max: str = "max 100000", memory_max: str = "max", current: int = 0, inactive: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cpu.max").write_text(f"{cpu_max}\n")
    (root / "cpu.stat").write_text("usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\n")
    (root / "memory.max").write_text(f"{memory_max}\n")
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.stat").write_text(f"anon {current - inactive}\nfile {inactive}\ninactive_file {inactive}\n")
    return root


class BusyCores:
    """Stands in for time: each "second" slept, the container uses `cores` CPU-seconds (cpu.stat grows)."""

    def __init__(self, stat: Path, cores: float, key: str = "usage_usec", scale: int = 1_000_000):
        self.stat, self.cores, self.key, self.scale, self.now = stat, cores, key, scale, 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        lines = self.stat.read_text().splitlines()
        if self.key:
            lines = [
                f"{name} {int(value) + int(seconds * self.cores * self.scale)}" if name == self.key else line
                for line in lines
                for name, _, value in [line.partition(" ")]
            ]
        else:  # v1's cpuacct.usage: one number, in nanoseconds
            lines = [str(int(lines[0]) + int(seconds * self.cores * self.scale))]
        self.stat.write_text("\n".join(lines) + "\n")


def test_a_pod_whose_cpu_limit_is_all_busy_reads_saturated_and_says_so(tmp_path, monkeypatch):
    # one core (a pod limited to 2 on a 64-core node alike; more than this machine's cores would be capped
    # by its cpuset, which is right but machine-dependent)
    root = _v2(tmp_path / "cgroup", cpu_max="100000 100000")
    monkeypatch.setattr(cgroup, "time", BusyCores(root / "cpu.stat", cores=1.0))
    sample = services.resources_sample(cpu_interval=1.0, cgroup_root=root)
    assert (sample.cpu_pct, sample.cpu_source, sample.cpu_limit) == (100.0, "cgroup v2", 1.0)
    # psutil alone reads the node's /proc/stat: nothing here is busy on it
    with use_thresholds({"cpu": 70, "memory": 101, "disk": 101, "pool": 101,
                                                "redis_memory": 101}):  # fmt: skip
        [recommendation] = services.recommendations_update(sample=sample)
    assert recommendation.kind == "cpu" and "100%" in recommendation.message


def test_half_a_quota_in_use_is_fifty_percent(tmp_path):
    root = _v2(tmp_path / "cgroup", cpu_max="50000 50000")  # one core (a bigger quota may be capped by the cpuset)
    busy = BusyCores(root / "cpu.stat", cores=0.5)
    limits = cgroup.limits(root, NO_PROC)
    assert cgroup.cpu_percent(limits, interval=0.5, sleep=busy.sleep, clock=busy.monotonic) == 50.0


def test_memory_is_the_working_set_against_the_pod_limit(tmp_path):
    # 3 GiB limit, 2.5 GiB charged of which 1 GiB is page cache the kernel can drop: 50%
    root = _v2(tmp_path / "cgroup", memory_max=str(3 * GIB), current=int(2.5 * GIB), inactive=GIB)
    sample = services.resources_sample(cpu_interval=0.05, cgroup_root=root)
    assert (sample.memory_pct, sample.memory_source, sample.memory_limit_bytes) == (50.0, "cgroup v2", 3 * GIB)
    # no CPU limit (the manifests set none): the node is what the pod competes for
    assert (sample.cpu_source, sample.cpu_limit) == ("host", None)


def test_a_pod_close_to_its_memory_limit_opens_a_recommendation_the_node_figure_would_miss(tmp_path):
    root = _v2(tmp_path / "cgroup", memory_max=str(4 * GIB), current=int(3.8 * GIB))
    sample = services.resources_sample(cpu_interval=0.05, cgroup_root=root)
    assert sample.memory_pct == 95.0
    services.recommendations_update(sample=sample)
    assert ResourceRecommendation.objects.filter(kind="memory", status="open").exists()


def test_without_limits_the_host_figures_are_used(tmp_path):
    root = _v2(tmp_path / "cgroup")  # cpu.max and memory.max both "max"
    assert cgroup.limits(root, NO_PROC) is None
    sample = services.resources_sample(cpu_interval=0.05, cgroup_root=tmp_path / "no-cgroup-here")
    assert (sample.cpu_source, sample.memory_source) == ("host", "host")
    assert sample.memory_limit_bytes is None and 0 < sample.memory_pct < 100


def test_cgroup_v1_limits_are_read_too(tmp_path):
    root = tmp_path / "cgroup"
    for controller, files in {
        "cpu": {"cpu.cfs_quota_us": "150000", "cpu.cfs_period_us": "100000"},
        "cpuacct": {"cpuacct.usage": "123000000000"},
        "memory": {"memory.limit_in_bytes": str(2 * GIB), "memory.usage_in_bytes": str(GIB),
                   "memory.stat": f"cache 1\ntotal_inactive_file {GIB // 2}\n"},
    }.items():  # fmt: skip
        (root / controller).mkdir(parents=True)
        for name, text in files.items():
            (root / controller / name).write_text(text + "\n")
    limits = cgroup.limits(root, NO_PROC)
    cpus = min(1.5, len(psutil.Process().cpu_affinity()))  # a cpuset narrower than the quota caps it
    assert (limits.source, limits.cpus, limits.memory_bytes) == ("cgroup v1", cpus, 2 * GIB)
    assert cgroup.memory_percent(limits) == 25.0
    busy = BusyCores(root / "cpuacct" / "cpuacct.usage", cores=0.75, key="", scale=1_000_000_000)
    assert cgroup.cpu_percent(limits, interval=2.0, sleep=busy.sleep, clock=busy.monotonic) == pytest.approx(
        100 * 0.75 / limits.cpus, abs=0.1
    )
    # v1's "no limit": a quota of -1 and the largest page-aligned int64
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup.limits(root, NO_PROC) is None


def test_a_runtime_sharing_the_hosts_cgroup_namespace_is_found_through_proc_self_cgroup(tmp_path):
    root = _v2(tmp_path / "cgroup")  # the host's root: no limits
    _v2(root / "kubepods.slice" / "pod-a" / "ctr", memory_max=str(GIB), current=GIB // 4)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/kubepods.slice/pod-a/ctr\n")
    limits = cgroup.limits(root, proc)
    assert limits.memory_bytes == GIB and cgroup.memory_percent(limits) == 25.0


def test_a_memory_limit_over_the_nodes_memory_is_no_limit(tmp_path):
    """Kubernetes lets a pod's memory limit exceed its node's memory: 2 GiB in use of a limit twice the node's
    read a few percent while the node itself ran out (the kubelet evicts at the node's figure, not the
    limit's). Such a limit is read as none: the node's figure, said to be the node's."""
    node = psutil.virtual_memory().total
    root = _v2(tmp_path / "cgroup", cpu_max="100000 100000", memory_max=str(2 * node), current=2 * GIB)
    sample = services.resources_sample(cpu_interval=0.01, cgroup_root=root)
    assert (sample.memory_source, sample.memory_limit_bytes) == ("host", None)
    assert sample.cpu_source == "cgroup v2"  # its CPU limit still holds
