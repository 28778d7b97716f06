"""CPU and memory limits for native replicas, with the kernel mechanism Docker uses.

Each replica gets its own cgroup (v2, or the v1 `cpu` and `memory` hierarchies) under a
`capacity-lab` folder: a CFS quota of CPUS x 100 ms per 100 ms period and a memory limit.
Where this process may not create cgroups (not root, read-only cgroupfs, controllers not
delegated), the plan says why and replicas run unlimited.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from api.cgroup_stats import CGROUP_ROOT, CgroupPaths

LAB_FOLDER = "capacity-lab"
PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupPlan:
    mode: str  # "v2", "v1" or "off"
    note: str
    roots: dict[str, str]

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def _off(reason: str) -> CgroupPlan:
    return CgroupPlan("off", reason, {})


def plan(wanted: str, stack: str, root: Path = CGROUP_ROOT) -> CgroupPlan:
    """Find where replica cgroups can be made, creating the stack's parent folder.

    Each stack gets a folder of its own (`capacity-lab/<stack>`), so two stacks on one
    machine (a user's and a test's) never share, overwrite or remove each other's cgroups.
    """
    if wanted == "off":
        return _off("disabled by LAB_CGROUPS=off")
    if os.geteuid() != 0:
        return _off("not running as root, and creating cgroups needs root")
    try:
        if (root / "cgroup.controllers").exists():
            return _plan_v2(root, stack)
        return _plan_v1(root, stack)
    except OSError as exc:
        return _off(f"cannot create cgroups ({exc.strerror}: {exc.filename})")


def stack_id(run_dir: Path) -> str:
    """A short, stable name for the stack that owns `run_dir`."""
    return "stack-" + hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]


def _plan_v2(root: Path, stack: str) -> CgroupPlan:
    available = (root / "cgroup.controllers").read_text().split()
    missing = {"cpu", "memory"} - set(available)
    if missing:
        return _off(f"the cgroup v2 controllers {sorted(missing)} are not available")
    enabled = (root / "cgroup.subtree_control").read_text().split()
    if not {"cpu", "memory"} <= set(enabled):
        (root / "cgroup.subtree_control").write_text("+cpu +memory")
    lab = root / LAB_FOLDER
    lab.mkdir(exist_ok=True)
    (lab / "cgroup.subtree_control").write_text("+cpu +memory")
    folder = lab / stack
    folder.mkdir(exist_ok=True)
    (folder / "cgroup.subtree_control").write_text("+cpu +memory")
    _probe([folder])
    return CgroupPlan("v2", f"cgroup v2 under {folder}", {"unified": str(folder)})


def _plan_v1(root: Path, stack: str) -> CgroupPlan:
    own = CgroupPaths.of_process(root=root)
    if own is None or own.version != 1:
        return _off("no writable cgroup v1 cpu and memory hierarchies found")
    cpu, memory = own.cpu / LAB_FOLDER / stack, own.memory / LAB_FOLDER / stack
    cpu.mkdir(parents=True, exist_ok=True)
    memory.mkdir(parents=True, exist_ok=True)
    _probe([cpu, memory])
    return CgroupPlan(
        "v1", f"cgroup v1 under {cpu} and {memory}", {"cpu": str(cpu), "memory": str(memory)}
    )


def _probe(parents: list[Path]) -> None:
    """Create and remove a child, so a read-only or undelegated tree fails here, clearly."""
    for parent in parents:
        probe = parent / f"probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()


def create(plan_: CgroupPlan, name: str, cpus: float | None, memory: int | None) -> dict[str, str]:
    """Make the replica's cgroup with its limits; returns its folders and procs files."""
    if not plan_.enabled:
        return {}
    if plan_.mode == "v2":
        folder = Path(plan_.roots["unified"]) / name
        folder.mkdir(exist_ok=True)
        quota = "max" if cpus is None else str(int(cpus * PERIOD_US))
        (folder / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        (folder / "memory.max").write_text("max" if memory is None else str(memory))
        # Docker's default: no swap beyond the memory limit.
        swap = folder / "memory.swap.max"
        if swap.exists():
            swap.write_text("0")
        return {"unified": str(folder), "procs": str(folder / "cgroup.procs")}
    cpu = Path(plan_.roots["cpu"]) / name
    mem = Path(plan_.roots["memory"]) / name
    cpu.mkdir(exist_ok=True)
    mem.mkdir(exist_ok=True)
    (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (cpu / "cpu.cfs_quota_us").write_text("-1" if cpus is None else str(int(cpus * PERIOD_US)))
    (mem / "memory.limit_in_bytes").write_text("-1" if memory is None else str(memory))
    return {
        "cpu": str(cpu),
        "memory": str(mem),
        "procs": f"{cpu / 'cgroup.procs'}:{mem / 'cgroup.procs'}",
    }


def read_limits(cgroup: dict[str, str]) -> tuple[float | None, int | None]:
    """The CPU quota (cores) and memory limit (bytes) the kernel holds for a replica."""
    if "unified" in cgroup:
        folder = Path(cgroup["unified"])
        quota, period = (folder / "cpu.max").read_text().split()
        raw_memory = (folder / "memory.max").read_text().strip()
        cpus = None if quota == "max" else int(quota) / int(period)
        return cpus, None if raw_memory == "max" else int(raw_memory)
    quota = int((Path(cgroup["cpu"]) / "cpu.cfs_quota_us").read_text())
    period = int((Path(cgroup["cpu"]) / "cpu.cfs_period_us").read_text())
    memory = int((Path(cgroup["memory"]) / "memory.limit_in_bytes").read_text())
    return (None if quota < 0 else quota / period), (None if memory >= 1 << 60 else memory)


def remove(cgroup: dict[str, str], timeout: float = 5.0) -> None:
    """Remove a replica's cgroup once its processes are gone (retried briefly)."""
    folders = [Path(cgroup[key]) for key in ("unified", "cpu", "memory") if key in cgroup]
    deadline = time.monotonic() + timeout
    for folder in folders:
        while folder.exists():
            try:
                folder.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)


def remove_lab_folders(roots: dict[str, str]) -> None:
    """Remove the stack's folders, and the lab's when no other stack is left in it."""
    for folder in roots.values():
        for path in (Path(folder), Path(folder).parent):
            with contextlib.suppress(OSError):
                path.rmdir()


def remove_stack_leftovers(stack: str, root: Path = CGROUP_ROOT) -> None:
    """Remove a stack's cgroups when its state (which names them) is lost: its folders are
    found where `plan` puts them. Only empty cgroups can be removed, so this runs after its
    processes are stopped and never touches a live one."""
    if os.geteuid() != 0:
        return
    folders = [root / LAB_FOLDER / stack]
    own = CgroupPaths.of_process(root=root)
    if own is not None and own.version == 1:
        folders += [own.cpu / LAB_FOLDER / stack, own.memory / LAB_FOLDER / stack]
    for folder in folders:
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if child.is_dir():
                remove({"unified": str(child)}, timeout=1.0)
        remove_lab_folders({"stack": str(folder)})


def wrap(command: list[str], cgroup: dict[str, str]) -> list[str]:
    """Run `command` inside the cgroup from its first instruction: a shell writes its own
    pid into cgroup.procs, then becomes the command (exec keeps the pid)."""
    if not cgroup:
        return command
    script = (
        'IFS=:; for f in $LAB_CGROUP_PROCS; do echo $$ > "$f" || '
        '{ echo "cannot join the cgroup $f (no permission for cgroups?); run as root or set '
        'LAB_CGROUPS=off" >&2; exit 97; }; done; exec "$0" "$@"'
    )
    return ["/bin/sh", "-c", script, *command]


def oom_kills(cgroup: dict[str, str]) -> int:
    """Processes the kernel killed in this cgroup for exceeding its memory limit."""
    if "unified" in cgroup:
        path = Path(cgroup["unified"]) / "memory.events"
    elif "memory" in cgroup:
        path = Path(cgroup["memory"]) / "memory.oom_control"
    else:
        return 0
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except OSError:
        pass
    return 0
