"""One contract: every runtime implements all of it, callers never probe, no import cycle."""

from __future__ import annotations

import ast
import inspect
import subprocess
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.runtimes.contract import Runtime, UnsupportedError
from lab.runtimes.docker.runtime import DockerRuntime
from lab.runtimes.docker.settings import DockerSettings
from lab.runtimes.k8s.runtime import K8sRuntime
from lab.runtimes.native.runtime import NativeRuntime
from tests.support import PYTHON, REPO

ABILITIES = sorted(Runtime.__abstractmethods__)
PACKAGES = ("lab", "monitoring")


def test_the_contract_declares_every_ability_the_lab_uses() -> None:
    assert set(ABILITIES) >= {
        "up", "scale", "down", "status", "logs", "demo", "label", "endpoints", "current",
        "replica_urls", "kill_replica", "recovered", "place_load_generator", "load",
    }  # fmt: skip
    for name in ABILITIES:
        method = getattr(Runtime, name)
        assert method.__doc__, f"Runtime.{name} says what it does"
        assert inspect.signature(method).return_annotation != inspect.Signature.empty, name


@pytest.mark.parametrize("runtime", [NativeRuntime, DockerRuntime, K8sRuntime])
def test_each_runtime_implements_every_ability(runtime: type[Runtime]) -> None:
    assert not runtime.__abstractmethods__
    for name in ABILITIES:
        assert getattr(runtime, name) is not getattr(Runtime, name), f"{runtime.name}.{name}"
        own = inspect.signature(getattr(runtime, name))
        declared = inspect.signature(getattr(Runtime, name))
        assert list(own.parameters) == list(declared.parameters), f"{runtime.name}.{name}"


def test_what_docker_cannot_do_fails_with_a_clear_error(tmp_path: Path) -> None:
    docker = DockerRuntime(DockerSettings(docker_bin=str(tmp_path / "no-docker")))

    for call in (
        lambda: docker.place_load_generator(1.0),
        docker.kill_replica,
        lambda: docker.recovered("x", 0),
    ):
        with pytest.raises(UnsupportedError) as error:
            call()
        assert isinstance(error.value, LabError)
        assert "RUNTIME=native" in str(error.value)
    assert docker.replica_urls() == []


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _top_level_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Lab modules `path` imports when it is imported (not those inside functions)."""
    imported = set()
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in modules:
                imported.add(name)
    return imported


def test_no_module_of_the_lab_imports_itself_back() -> None:
    modules = _modules()
    graph = {name: _top_level_imports(path, modules) for name, path in modules.items()}
    # A package's own __init__ runs before its modules: importing a.b imports a first.
    for name in list(graph):
        parent = name.rpartition(".")[0]
        if parent in graph:
            graph[name].add(parent)
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycles.append([*path[path.index(name) :], name])
            return
        for target in graph[name]:
            visit(target, [*path, name])

    for name in graph:
        visit(name, [])
    assert cycles == []


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    """Each module first, on its own: an import that works only after another module
    was imported (a hidden cycle) fails here."""
    names = [n for n in _modules() if not n.endswith("__main__")]
    script = (
        "import subprocess, sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "def alone(name):\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True)\n"
        "    return (name, r.stderr.decode()[-300:]) if r.returncode else None\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    print([f for f in pool.map(alone, sys.argv[1:]) if f])\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", script, *names], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_callers_never_ask_a_runtime_what_it_can_do() -> None:
    probes = ("hasattr(", "getattr(runtime", "getattr(self.runtime", "isinstance(runtime")
    for name, path in _modules().items():
        text = path.read_text()
        for probe in probes:
            assert probe not in text, f"{name} probes a runtime with {probe}"
        assert "type: ignore[attr-defined]" not in text, name
