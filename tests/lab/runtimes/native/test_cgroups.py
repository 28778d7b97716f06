"""Cgroup handling against a fake cgroup tree (no privileges needed)."""

from __future__ import annotations

from pathlib import Path

from lab.runtimes.native import cgroups


def fake_v2(root: Path) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("\n")
    return root


def test_v2_replica_gets_quota_and_memory_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 0)
    root = fake_v2(tmp_path / "cgroup")

    plan = cgroups.plan("auto", "stack-a", root=root)
    created = cgroups.create(plan, "replica-1", 0.5, 256 * 1024**2)

    assert plan.mode == "v2"
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory"
    folder = Path(created["unified"])
    assert folder == root / "capacity-lab" / "stack-a" / "replica-1"
    assert (folder / "cpu.max").read_text() == "50000 100000"
    assert (folder / "memory.max").read_text() == str(256 * 1024**2)
    assert cgroups.read_limits(created) == (0.5, 256 * 1024**2)
    assert created["procs"] == str(folder / "cgroup.procs")


def test_v2_without_cpu_controller_runs_unlimited_and_says_why(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 0)
    root = fake_v2(tmp_path / "cgroup")
    (root / "cgroup.controllers").write_text("memory pids\n")

    plan = cgroups.plan("auto", "stack-a", root=root)

    assert plan.mode == "off"
    assert "cpu" in plan.note
    assert cgroups.create(plan, "replica-1", 1.0, None) == {}


def test_not_root_or_disabled_means_no_cgroups(monkeypatch) -> None:
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 1000)

    assert "root" in cgroups.plan("auto", "stack-a").note
    assert cgroups.plan("off", "stack-a").note == "disabled by LAB_CGROUPS=off"


def test_v1_limits_and_unlimited_values(tmp_path: Path) -> None:
    plan = cgroups.CgroupPlan(
        "v1", "fake", {"cpu": str(tmp_path / "cpu"), "memory": str(tmp_path / "memory")}
    )
    (tmp_path / "cpu").mkdir()
    (tmp_path / "memory").mkdir()

    limited = cgroups.create(plan, "replica-1", 1.5, 2**30)
    unlimited = cgroups.create(plan, "replica-2", None, None)
    (Path(unlimited["memory"]) / "memory.limit_in_bytes").write_text(str(2**63 - 4096))

    assert Path(limited["cpu"], "cpu.cfs_quota_us").read_text() == "150000"
    assert cgroups.read_limits(limited) == (1.5, 2**30)
    assert cgroups.read_limits(unlimited) == (None, None)
    assert limited["procs"].split(":") == [
        str(tmp_path / "cpu" / "replica-1" / "cgroup.procs"),
        str(tmp_path / "memory" / "replica-1" / "cgroup.procs"),
    ]


def test_oom_kills_are_read_from_the_cgroup(tmp_path: Path) -> None:
    folder = tmp_path / "replica"
    folder.mkdir()
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")

    assert cgroups.oom_kills({"unified": str(folder)}) == 1
    assert cgroups.oom_kills({}) == 0


def test_wrapped_command_joins_the_cgroup_before_it_runs() -> None:
    command = cgroups.wrap(["python", "-m", "api"], {"procs": "/a:/b"})

    assert command[:2] == ["/bin/sh", "-c"]
    assert command[3:] == ["python", "-m", "api"]
    assert "exec" in command[2]
    assert cgroups.wrap(["python"], {}) == ["python"]


def test_two_stacks_never_share_a_cgroup(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: 0)
    root = fake_v2(tmp_path / "cgroup")
    first = cgroups.plan("auto", cgroups.stack_id(tmp_path / "run-a"), root=root)
    second = cgroups.plan("auto", cgroups.stack_id(tmp_path / "run-b"), root=root)

    a = cgroups.create(first, "replica-1", 0.5, None)
    b = cgroups.create(second, "replica-1", 1.0, None)

    assert a["unified"] != b["unified"]
    assert cgroups.read_limits(a)[0] == 0.5
    assert cgroups.read_limits(b)[0] == 1.0
    assert cgroups.stack_id(tmp_path / "run-a") == cgroups.stack_id(tmp_path / "run-a")
