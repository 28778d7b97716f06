"""Write the JSON schemas the manifest tests validate against (authoring time only).

The tests must run offline, so the schemas are shipped in this folder, one file per kind
the manifests use, each self-contained (only the definitions it reaches). Sources, pinned:

- Kubernetes v1.32.0: the strict standalone schemas of the PyPI package
  `kubernetes-validate==1.32.0` (its `kubernetes-json-schema/v1.32.0-local-strict/`
  folder; strict: an unknown field is an error, as `kubectl apply --validate=strict` and
  the API server's field validation make it).
- Custom resources, from the CRD definitions their projects publish: Traefik v3.7
  (`docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml` of
  traefik/traefik) and the Prometheus Operator v0.93.0
  (`example/prometheus-operator-crd/monitoring.coreos.com_*.yaml`). A CRD's schema lets
  unknown fields through (the API server prunes them silently), so every object that
  lists its properties is closed here (`additionalProperties: false`) unless the CRD
  says `x-kubernetes-preserve-unknown-fields`: a misspelt field then fails the test
  instead of vanishing in the cluster.

Run from the repository root, with the sources unpacked somewhere:

    python deploy/k8s/schemas/extract.py KUBERNETES_SCHEMA_DIR TRAEFIK_CRDS PROM_CRD_DIR
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
KUBERNETES_VERSION = "v1.32.0"
# file name in the kubernetes-validate folder -> (apiVersion, kind)
BUILTIN = {
    "namespace-v1.json": ("v1", "Namespace"),
    "service-v1.json": ("v1", "Service"),
    "configmap-v1.json": ("v1", "ConfigMap"),
    "deployment-apps-v1.json": ("apps/v1", "Deployment"),
    "poddisruptionbudget-policy-v1.json": ("policy/v1", "PodDisruptionBudget"),
    "horizontalpodautoscaler-autoscaling-v2.json": ("autoscaling/v2", "HorizontalPodAutoscaler"),
}
CRDS = {
    ("traefik.io/v1alpha1", "IngressRoute"),
    ("traefik.io/v1alpha1", "Middleware"),
    ("traefik.io/v1alpha1", "ServersTransport"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
REF = re.compile(r"^/api/_definitions\.json#/\$defs/(.+)$")


def file_name(api_version: str, kind: str) -> str:
    """`apps/v1`, `Deployment` -> `deployment-apps-v1.json` (the tests look them up so)."""
    group = api_version.replace("/", "-").replace(".", "-")
    return f"{kind.lower()}-{group}.json"


def _local_refs(node: Any, found: set[str]) -> Any:
    """The node with refs into _definitions.json made local, collecting their names."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                match = REF.match(value) or re.match(r"^#/\$defs/(.+)$", value)
                if match:
                    found.add(match.group(1))
                    out[key] = f"#/$defs/{match.group(1)}"
                    continue
            out[key] = _local_refs(value, found)
        return out
    if isinstance(node, list):
        return [_local_refs(item, found) for item in node]
    return node


def _bundle(root: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """`root` with every definition it reaches, transitively, under $defs."""
    wanted: set[str] = set()
    schema = _local_refs(root, wanted)
    defs: dict[str, Any] = {}
    while wanted - defs.keys():
        name = sorted(wanted - defs.keys())[0]
        defs[name] = _local_refs(definitions[name], wanted)
    schema["$defs"] = dict(sorted(defs.items()))
    return schema


def _python_pattern(pattern: str) -> str:
    """Go's `^(?i)...` as Python reads it: global flags first (`(?i)^...`)."""
    match = re.match(r"^\^(\(\?[a-z]+\))(.*)$", pattern)
    return f"{match.group(1)}^{match.group(2)}" if match else pattern


def _closed(node: Any) -> Any:
    """A CRD schema with every listed object closed to unknown fields."""
    if isinstance(node, dict):
        out = {key: _closed(value) for key, value in node.items()}
        if isinstance(out.get("pattern"), str):
            out["pattern"] = _python_pattern(out["pattern"])
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed(item) for item in node]
    return node


def builtin(folder: Path) -> dict[str, dict[str, Any]]:
    definitions = json.loads((folder / "_definitions.json").read_text())["$defs"]
    out = {}
    for name, (api_version, kind) in BUILTIN.items():
        schema = _bundle(json.loads((folder / name).read_text()), definitions)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"{kind} {api_version} (Kubernetes {KUBERNETES_VERSION}, strict)"
        out[file_name(api_version, kind)] = schema
    return out


def custom(crd_files: list[Path], meta_folder: Path) -> dict[str, dict[str, Any]]:
    definitions = json.loads((meta_folder / "_definitions.json").read_text())["$defs"]
    out = {}
    for path in crd_files:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            version_of = {
                crd.get("metadata", {}).get("annotations", {}).get("operator.prometheus.io/version")
            }
            for version in crd["spec"]["versions"]:
                api_version = f"{group}/{version['name']}"
                if (api_version, kind) not in CRDS:
                    continue
                schema = _closed(version["schema"]["openAPIV3Schema"])
                schema["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
                schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
                schema["properties"]["metadata"] = {
                    "$ref": f"/api/_definitions.json#/$defs/{OBJECT_META}"
                }
                schema["required"] = sorted(
                    {*schema.get("required", []), "apiVersion", "kind", "spec"}
                )
                bundled = _bundle(schema, definitions)
                bundled["$schema"] = "https://json-schema.org/draft/2020-12/schema"
                source = next(iter(version_of - {None}), "") or "Traefik v3.7"
                if source[:1].isdigit():
                    source = f"Prometheus Operator v{source}"
                bundled["title"] = f"{kind} {api_version} ({source}, closed)"
                out[file_name(api_version, kind)] = bundled
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    folder, traefik, prometheus = (Path(a) for a in argv)
    schemas = builtin(folder)
    schemas |= custom([traefik, *sorted(prometheus.glob("monitoring.coreos.com_*.yaml"))], folder)
    missing = {file_name(*pair) for pair in CRDS} - schemas.keys()
    if missing:
        print(f"not found in the CRD files: {sorted(missing)}", file=sys.stderr)
        return 1
    for name, schema in sorted(schemas.items()):
        (HERE / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
