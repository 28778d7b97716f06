"""scripts/install.sh as a fresh machine runs it: the programs missing, apt-get at hand.

The real apt-get is replaced by a fake that "installs" a package by writing its programs
into a folder on PATH, so the script's own logic (what it finds missing, the policy file
that keeps daemons from starting, its clean-up, its messages) runs for real, offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

SCRIPT = REPO / "scripts" / "install.sh"
PROGRAMS = {
    "prometheus": ["prometheus", "promtool"],
    "prometheus-pushgateway": ["prometheus-pushgateway"],
    "wrk": ["wrk"],
}
# What `install.sh --test` adds: the browser of the dashboard test.
TEST_PROGRAMS = {"chromium": ["chromium"]}
# What the script itself calls besides bash builtins.
TOOLS = ["bash", "sort", "chmod", "rm", "cat", "touch", "mkdir", "tail", "env"]

FAKE_APT_GET = """#!/bin/bash
# Records each call; `install` writes the packages' programs into $FAKE_INSTALL_DIR and
# notes whether the policy file that declines service starts was in place meanwhile.
echo "$*" >> "$FAKE_LOG"
if [ "$1" = "install" ]; then
  [ -x "$FAKE_POLICY" ] && echo "policy present" >> "$FAKE_LOG"
  [ -n "${FAKE_BREAK:-}" ] && exit 0
  for arg in "$@"; do
    case "$arg" in
      prometheus) programs="prometheus promtool" ;;
      prometheus-pushgateway) programs="prometheus-pushgateway" ;;
      wrk) programs="wrk" ;;
      chromium) programs="chromium" ;;
      *) programs="" ;;
    esac
    for program in $programs; do
      printf '#!/bin/sh\\nexit 0\\n' > "$FAKE_INSTALL_DIR/$program"
      chmod +x "$FAKE_INSTALL_DIR/$program"
    done
  done
fi
"""


class Machine:
    """A PATH without the lab's programs, a fake apt-get and a venv that is up to date."""

    def __init__(self, root: Path, uid: int = 0) -> None:
        self.root = root
        self.bin = root / "bin"
        self.installed = root / "installed"
        self.policy = root / "policy-rc.d"
        self.log = root / "apt.log"
        self.venv = root / "venv"
        for folder in (self.bin, self.installed, self.venv / "bin"):
            folder.mkdir(parents=True)
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is needed to run install.sh"
            (self.bin / tool).symlink_to(found)
        self._script("id", f"#!/bin/sh\necho {uid}\n")
        self._script("apt-get", FAKE_APT_GET)
        # An up-to-date venv: the Python half of the script has nothing to do.
        (self.venv / "bin" / "python").symlink_to(sys.executable)
        stamp = self.venv / ".installed"
        stamp.touch()
        newer = (REPO / "pyproject.toml").stat().st_mtime + 1
        os.utime(stamp, (newer, newer))

    def _script(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.bin}{os.pathsep}{self.installed}",
            "HOME": str(self.root),
            "VENV": str(self.venv),
            "POLICY_RC_D": str(self.policy),
            "FAKE_LOG": str(self.log),
            "FAKE_POLICY": str(self.policy),
            "FAKE_INSTALL_DIR": str(self.installed),
            **extra,
        }
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def installed_packages(self) -> list[str]:
        """The packages of the `apt-get install` call, options left out."""
        install = next(call for call in self.calls() if call.startswith("install "))
        return sorted(word for word in install.split()[1:] if not word.startswith("-"))


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_install_on_a_fresh_machine_installs_the_programs_and_exits_zero(
    machine: Machine,
) -> None:
    result = machine.run()

    assert result.returncode == 0, result.stderr
    for programs in PROGRAMS.values():
        for program in programs:
            assert (machine.installed / program).exists(), program
    calls = machine.calls()
    assert calls[0].startswith("update")
    assert machine.installed_packages() == sorted(PROGRAMS)
    assert "policy present" in calls
    assert not machine.policy.exists()


def test_install_for_the_tests_adds_the_browser(machine: Machine) -> None:
    result = machine.run("--test")

    assert result.returncode == 0, result.stderr
    assert machine.installed_packages() == sorted({**PROGRAMS, **TEST_PROGRAMS})
    for programs in TEST_PROGRAMS.values():
        for program in programs:
            assert (machine.installed / program).exists(), program


def test_install_without_test_leaves_the_test_programs_out(machine: Machine) -> None:
    assert machine.run().returncode == 0

    assert not set(TEST_PROGRAMS) & set(machine.installed_packages())


def test_install_leaves_an_existing_policy_file_in_place(machine: Machine) -> None:
    machine.policy.write_text("#!/bin/sh\nexit 0\n")
    machine.policy.chmod(0o755)

    result = machine.run()

    assert result.returncode == 0, result.stderr
    assert machine.policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_second_install_finds_everything_and_calls_no_apt_get(machine: Machine) -> None:
    assert machine.run().returncode == 0
    machine.log.unlink()

    again = machine.run()

    assert again.returncode == 0, again.stderr
    assert machine.calls() == []


def test_install_only_asks_for_the_packages_that_are_missing(machine: Machine) -> None:
    for program in ("prometheus", "promtool", "prometheus-pushgateway"):
        path = machine.installed / program
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)

    result = machine.run()

    assert result.returncode == 0, result.stderr
    assert machine.installed_packages() == ["wrk"]


def test_install_says_so_when_apt_get_leaves_a_program_missing(machine: Machine) -> None:
    result = machine.run(FAKE_BREAK="1")

    assert result.returncode == 1
    assert "still not on PATH" in result.stderr
    assert "Traceback" not in result.stderr
    assert not machine.policy.exists()


def test_install_without_root_prints_the_command_to_run(tmp_path: Path) -> None:
    machine = Machine(tmp_path, uid=1000)

    result = machine.run()

    assert result.returncode == 1
    assert "sudo apt-get update && sudo apt-get install -y" in result.stderr
    for package in PROGRAMS:
        assert package in result.stderr
    assert machine.calls() == []
    assert not machine.policy.exists()
