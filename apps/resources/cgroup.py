"""The container's own CPU and memory, read from its cgroup (v2, else v1).

psutil reads /proc/stat and /proc/meminfo, which in a container are the node's: a pod limited to 2 CPUs or
3 GiB on a 64-core, 256 GiB node reads a few percent while it is throttled or about to be OOM-killed. A
figure with no limit set (Kubernetes' `cpu.max` is "max" when a pod has no CPU limit) is left to psutil:
the node is then what the container competes for.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned int64 (9223372036854771712); anything this large is none.
_V1_UNLIMITED = 2**60


@dataclass(frozen=True)
class Limits:
    source: str  # "cgroup v2" or "cgroup v1"
    cpus: float | None  # the CPU quota in cores; None: no CPU limit
    memory_bytes: int | None  # None: no memory limit
    usage_usec: Callable[[], int]
    memory_in_use: Callable[[], int]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _stat(path: Path, key: str) -> int:
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _own_dir(mount: Path, controller: str, proc_self_cgroup: Path) -> Path:
    """The process's own cgroup under a hierarchy's mount: the mount itself in a cgroup namespace (Kubernetes,
    Docker), else the path /proc/self/cgroup names under it (a runtime sharing the host's namespace).
    `controller` is "" for v2's single hierarchy."""
    for line in (_read(proc_self_cgroup) or "").splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "-", "")
        if controller in controllers.split(",") or controllers == controller:
            own = mount / path.lstrip("/")
            if own != mount and own.is_dir():
                return own
    return mount


def _v2(directory: Path) -> Limits | None:
    cpu_max, memory_max = _read(directory / "cpu.max"), _read(directory / "memory.max")
    if cpu_max is None and memory_max is None:
        return None  # the host's root cgroup, or no v2 hierarchy at all
    cpus = None
    quota, _, period = (cpu_max or "max").partition(" ")
    if quota != "max" and period:
        cpus = int(quota) / int(period)
    memory = int(memory_max) if memory_max and memory_max != "max" else None
    return Limits(
        source="cgroup v2",
        cpus=cpus,
        memory_bytes=memory,
        usage_usec=lambda: _stat(directory / "cpu.stat", "usage_usec"),
        # What the kubelet calls the working set: page cache it can drop does not bring the OOM killer.
        memory_in_use=lambda: (
            int(_read(directory / "memory.current") or 0) - _stat(directory / "memory.stat", "inactive_file")
        ),
    )


def _v1(root: Path, proc_self_cgroup: Path) -> Limits | None:
    cpu = _own_dir(root / "cpu", "cpu", proc_self_cgroup)
    memory = _own_dir(root / "memory", "memory", proc_self_cgroup)
    cpuacct = _own_dir(root / "cpuacct", "cpuacct", proc_self_cgroup)
    quota, period = _read(cpu / "cpu.cfs_quota_us"), _read(cpu / "cpu.cfs_period_us")
    limit = _read(memory / "memory.limit_in_bytes")
    if quota is None and limit is None:
        return None
    cpus = int(quota) / int(period) if quota and period and int(quota) > 0 else None
    memory_bytes = int(limit) if limit and int(limit) < _V1_UNLIMITED else None
    usage = next((d / "cpuacct.usage" for d in (cpuacct, cpu) if (d / "cpuacct.usage").exists()), None)
    return Limits(
        source="cgroup v1",
        cpus=cpus,
        memory_bytes=memory_bytes,
        usage_usec=lambda: int(_read(usage) or 0) // 1000 if usage else 0,  # nanoseconds in v1
        memory_in_use=lambda: (
            int(_read(memory / "memory.usage_in_bytes") or 0) - _stat(memory / "memory.stat", "total_inactive_file")
        ),
    )


def limits(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> Limits | None:
    """This process's cgroup limits, or None outside a cgroup with any (a laptop, a bare VM)."""
    if (root / "cgroup.controllers").exists():
        found = _v2(_own_dir(root, "", proc_self_cgroup))
    else:
        found = _v1(root, proc_self_cgroup)
    if found is not None and found.memory_bytes is not None and found.memory_bytes >= psutil.virtual_memory().total:
        # A limit at or over the node's memory (Kubernetes lets a pod's exceed it) is never what the container
        # runs out of: the node is, so its figure is the node's, not a few percent of a limit it cannot reach.
        found = Limits(**{**found.__dict__, "memory_bytes": None})
    if found is None or (found.cpus is None and found.memory_bytes is None):
        return None
    if found.cpus is not None:  # a cpuset narrower than the quota caps it too
        found = Limits(**{**found.__dict__, "cpus": min(found.cpus, len(os.sched_getaffinity(0)))})
    return found


def cpu_percent(
    found: Limits,
    *,
    interval: float,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> float:
    """The container's CPU over `interval` as a share of its quota (100: every core it may use, busy).

    A usage counter that went backwards was reset meanwhile (the cgroup recreated, a v1 counter written to 0):
    the difference is no measure, and a negative CPU went into the samples, the series and the adaptive limits.
    It is measured again from the new count; reset twice running, the figure is 0, never below."""
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    for _ in range(2):
        used, started = found.usage_usec(), clock()
        sleep(interval)
        used, elapsed = found.usage_usec() - used, clock() - started
        if used >= 0:
            break
        logger.info("The cgroup's CPU usage counter went backwards (reset): measuring again")
    if elapsed <= 0 or not found.cpus:
        return 0.0
    return round(min(100.0, 100 * max(used, 0) / (elapsed * 1e6 * found.cpus)), 1)


def memory_percent(found: Limits) -> float:
    return round(min(100.0, 100 * max(found.memory_in_use(), 0) / found.memory_bytes), 1)
