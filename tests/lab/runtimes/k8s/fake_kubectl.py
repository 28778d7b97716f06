"""A stand-in for the `kubectl` program, installed by the tests as LAB_KUBECTL_BIN.

It keeps the lab's Deployments and the API's pods in a JSON file, answers the commands
the Kubernetes runtime uses (version, get --raw /readyz, kustomize, apply, get, rollout
status/restart, delete, set env, scale, top, logs, port-forward) and records every call,
with the objects it was given on standard input (a JSON List, as the runtime sends). A
tiny controller keeps the API's pods at the Deployment's replica count and template: a
changed template replaces them, a deleted pod is replaced by a new one that turns ready
at the next listing. Standard library only.

Behaviour is set with environment variables:
  FAKE_KUBECTL_DIR         folder of state.json and calls.jsonl (required)
  FAKE_KUBECTL_RENDER      the file `kubectl kustomize` prints
  FAKE_KUBECTL_NO_CLUSTER  when set, commands that need a cluster fail as with no cluster
  FAKE_KUBECTL_ROLLOUT     `fail`: rollout status exceeds its progress deadline
  FAKE_KUBECTL_NO_METRICS  when set, `top` fails as without a metrics-server
  FAKE_KUBECTL_FORWARD     `fail`: port-forward exits with an error
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

NO_CLUSTER = (
    "The connection to the server localhost:8080 was refused - did you specify the right "
    "host or port?"
)


def root() -> Path:
    return Path(os.environ["FAKE_KUBECTL_DIR"])


def load() -> dict[str, Any]:
    path = root() / "state.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"deployments": {}, "pods": [], "created": 0, "env": {}}


def save(state: dict[str, Any]) -> None:
    (root() / "state.json").write_text(json.dumps(state))


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(code)


def template_hash(deployment: dict[str, Any]) -> str:
    text = json.dumps(deployment["spec"]["template"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def reconcile(state: dict[str, Any]) -> None:
    """The API's ReplicaSet: pods of the current template, as many as wanted."""
    api = state["deployments"].get("api")
    if api is None:
        state["pods"] = []
        return
    wanted = api["spec"].get("replicas", 1)
    current = template_hash(api)
    pods = [p for p in state["pods"] if p["hash"] == current]
    while len(pods) > wanted:
        pods.pop()
    while len(pods) < wanted:
        state["created"] += 1
        pods.append(
            {
                "name": f"api-{current[:6]}-{state['created']:05d}",
                "hash": current,
                "ready": not state.get("replacing"),
                "restarts": 0,
            }
        )
    state["pods"] = pods


def pod_json(state: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    template = state["deployments"]["api"]["spec"]["template"]
    return {
        "metadata": {"name": pod["name"], "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
        "status": {
            "phase": "Running",
            "containerStatuses": [{"ready": pod["ready"], "restartCount": pod["restarts"]}],
        },
    }


def deployment_json(name: str, obj: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    ready = (
        sum(p["ready"] for p in state["pods"]) if name == "api" else obj["spec"].get("replicas", 1)
    )
    return {**obj, "status": {"readyReplicas": ready}}


def get(args: list[str], state: dict[str, Any]) -> None:
    what = args[0]
    if what in {"pods", "pod"}:
        reconcile(state)
        items = [pod_json(state, p) for p in state["pods"]]
        # A replacement pod turns ready once it has been seen (it started meanwhile).
        for pod in state["pods"]:
            pod["ready"] = True
        print(json.dumps({"items": items}))
    elif what == "deployments":
        items = [deployment_json(n, o, state) for n, o in sorted(state["deployments"].items())]
        print(json.dumps({"items": items}))
    elif what.startswith("deployment/"):
        name = what.split("/", 1)[1]
        if name not in state["deployments"]:
            fail(f'Error from server (NotFound): deployments.apps "{name}" not found')
        print(json.dumps(deployment_json(name, state["deployments"][name], state)))
    else:
        fail(f"fake kubectl: get {what} is not expected")


def main() -> None:
    argv = sys.argv[1:]
    options, args = {}, list(argv)
    while args and args[0] in {"--context", "--namespace"}:
        options[args[0]] = args[1]
        args = args[2:]
    state = load()
    stdin = sys.stdin.read() if "-" in args and "--filename" in args else ""
    objects = json.loads(stdin)["items"] if stdin else []
    with (root() / "calls.jsonl").open("a") as calls:
        record = {"argv": argv, "args": args, "options": options, "objects": objects}
        calls.write(json.dumps(record) + "\n")
    command = args[0]
    cluster = command not in {"version", "kustomize"}
    if cluster and os.environ.get("FAKE_KUBECTL_NO_CLUSTER"):
        fail(NO_CLUSTER)
    if command == "version":
        print("Client Version: v1.32.4\nKustomize Version: v5.5.0")
    elif command == "get" and args[1] == "--raw":
        print("ok")
    elif command == "kustomize":
        print(Path(os.environ["FAKE_KUBECTL_RENDER"]).read_text())
    elif command == "apply":
        for obj in objects:
            if obj["kind"] == "Deployment":
                state["deployments"][obj["metadata"]["name"]] = obj
        reconcile(state)
        print("\n".join(f"{o['kind'].lower()}/{o['metadata']['name']} configured" for o in objects))
    elif command == "get":
        get(args[1:], state)
    elif command == "rollout" and args[1] == "status":
        if os.environ.get("FAKE_KUBECTL_ROLLOUT") == "fail":
            fail(f'error: deployment "{args[2].split("/")[1]}" exceeded its progress deadline')
        reconcile(state)
        for pod in state["pods"]:
            pod["ready"] = True
        print(f'deployment "{args[2].split("/")[1]}" successfully rolled out')
    elif command == "rollout" and args[1] == "restart":
        api = state["deployments"]["api"]
        annotations = api["spec"]["template"]["metadata"].setdefault("annotations", {})
        annotations["kubectl.kubernetes.io/restartedAt"] = str(state["created"])
        reconcile(state)
    elif command == "delete" and args[1] == "pod":
        state["pods"] = [p for p in state["pods"] if p["name"] != args[2]]
        state["replacing"] = True
        reconcile(state)
        state["replacing"] = False
    elif command == "delete":
        state["deployments"], state["pods"] = {}, []
    elif command == "set":
        state["env"][args[2]] = dict(a.split("=", 1) for a in args[3:])
    elif command == "scale":
        name = args[1].split("/", 1)[1]
        replicas = int(args[2].split("=", 1)[1])
        state["deployments"].setdefault(name, {"spec": {}})["spec"]["replicas"] = replicas
    elif command == "top":
        if os.environ.get("FAKE_KUBECTL_NO_METRICS"):
            fail("error: Metrics API not available")
        for i, pod in enumerate(state["pods"]):
            print(f"{pod['name']}   {250 + i}m   {120 + i}Mi")
    elif command == "logs":
        print("[pod/api-1/api] model verified")
    elif command == "port-forward":
        save(state)
        if os.environ.get("FAKE_KUBECTL_FORWARD") == "fail":
            fail(f'Error from server (NotFound): services "{args[1].split("/")[1]}" not found')
        if not args[2].startswith(":"):
            # Attached to the terminal (the Locust UI): ends as Ctrl-C would end it.
            print(f"Forwarding from 127.0.0.1:{args[2].split(':')[0]} -> 8089", flush=True)
            raise SystemExit(130)
        port = 40000 + int(hashlib.sha256(args[1].encode()).hexdigest(), 16) % 20000
        print(f"Forwarding from 127.0.0.1:{port} -> {args[2].lstrip(':')}", flush=True)
        while True:
            time.sleep(60)
    else:
        fail(f"fake kubectl: {command} is not expected")
    save(state)


if __name__ == "__main__":
    main()
