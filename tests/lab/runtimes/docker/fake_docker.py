"""A stand-in for the `docker` program, installed on PATH by the tests as `docker`.

It keeps the api containers of one compose project in a JSON file, answers the commands
the Docker runtime uses (compose up/ps/down/rm/logs/version, inspect, stop, rm, stats,
logs, info) and records every call with the variables compose would read. It refuses
what the runtime must never ask for: compose scaling the api service down, or
recreating replicas.

Behaviour is set with environment variables:
  FAKE_DOCKER_DIR        folder of state.json and calls.jsonl (required)
  FAKE_DOCKER_HEALTH     health of new replicas: healthy (default), unhealthy, exited
  FAKE_DOCKER_STARTING   inspections a new replica stays `starting` (default 0)
  FAKE_DOCKER_NO_ENGINE  when set, `docker info` fails like a stopped daemon
  FAKE_DOCKER_FAIL       when it occurs in the joined arguments, fail with
  FAKE_DOCKER_MESSAGE    this message on stderr
  FAKE_DOCKER_LOAD_EXIT  exit code of `compose up` of the Locust services (default 0)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

RECORDED = (
    "REPLICAS",
    "CPUS",
    "MEMORY",
    "CONFIG",
    "WORKERS",
    "GRAFANA_ADMIN_PASSWORD",
    "DOCKER_GID",
)
UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
GLOBAL_OPTIONS = {"--project-name", "-p", "--file", "-f", "--profile", "--project-directory"}


def root() -> Path:
    return Path(os.environ["FAKE_DOCKER_DIR"])


def load() -> dict[str, Any]:
    state = root() / "state.json"
    if state.exists():
        return json.loads(state.read_text())
    return {"containers": [], "created": 0}


def save(state: dict[str, Any]) -> None:
    (root() / "state.json").write_text(json.dumps(state))


def running(state: dict[str, Any]) -> int:
    return sum(c["State"]["Status"] == "running" for c in state["containers"])


def record(argv: list[str], state: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if k in RECORDED or k.startswith("LOCUST_")}
    with (root() / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps({"argv": argv, "env": env, "running": running(state)}) + "\n")


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(code)


def memory_bytes(text: str) -> int:
    text = text.lower()
    unit = text[-1] if text[-1] in UNITS else ""
    return int(float(text[: len(text) - len(unit)]) * UNITS[unit])


def new_container(state: dict[str, Any]) -> dict[str, Any]:
    state["created"] += 1
    number = state["created"]
    health = os.environ.get("FAKE_DOCKER_HEALTH", "healthy")
    return {
        "Id": f"{number:012x}" + "ab" * 26,
        "Name": f"/capacity-lab-api-{number}",
        "Created": f"2026-01-01T00:00:{number:02d}Z",
        "State": {
            "Status": "exited" if health == "exited" else "running",
            "Health": {"Status": "starting"},
        },
        "Config": {
            "Labels": {
                "com.docker.compose.project": "capacity-lab",
                "com.docker.compose.service": "api",
                "lab.config": os.environ.get("CONFIG", "r2-c1.0-m1g"),
            }
        },
        "HostConfig": {
            "NanoCpus": round(float(os.environ.get("CPUS", "1")) * 1e9),
            "Memory": memory_bytes(os.environ.get("MEMORY", "1g")),
        },
        "fake": {"starting": int(os.environ.get("FAKE_DOCKER_STARTING", "0")), "health": health},
    }


def compose(args: list[str], state: dict[str, Any]) -> None:
    while args and args[0] in GLOBAL_OPTIONS:
        args = args[2:]
    verb, rest = args[0], args[1:]
    if verb == "version":
        print("Docker Compose version v2.31.0")
    elif verb == "up":
        compose_up(rest, state)
    elif verb == "ps" and "--quiet" in rest:
        for c in state["containers"]:
            print(c["Id"])
    elif verb == "ps":
        rows = [{"Service": "traefik", "Name": "capacity-lab-traefik-1", "State": "running"}]
        rows += [
            {"Service": "api", "Name": c["Name"][1:], "State": c["State"]["Status"]}
            for c in state["containers"]
        ]
        print("\n".join(json.dumps(row) for row in rows))
    elif verb == "down":
        state["containers"] = []
    elif verb in {"rm", "logs"}:
        return
    else:
        fail(f"fake docker: compose {verb} is not expected")


def compose_up(rest: list[str], state: dict[str, Any]) -> None:
    scale, services, i = {}, [], 0
    while i < len(rest):
        if rest[i] in {"--scale", "--exit-code-from"}:
            if rest[i] == "--scale":
                name, count = rest[i + 1].split("=")
                scale[name] = int(count)
            i += 2
            continue
        if not rest[i].startswith("-"):
            services.append(rest[i])
        i += 1
    if services and "api" not in services:
        raise SystemExit(int(os.environ.get("FAKE_DOCKER_LOAD_EXIT", "0")))
    present = state["containers"]
    wanted = scale.get("api", int(os.environ.get("REPLICAS", "2")))
    if wanted < len(present):
        fail(f"fake docker: compose asked to scale api down from {len(present)} to {wanted}")
    config = os.environ.get("CONFIG")
    if "--no-recreate" not in rest and any(
        c["Config"]["Labels"]["lab.config"] != config for c in present
    ):
        fail("fake docker: compose would recreate every replica at once")
    while len(present) < wanted:
        present.append(new_container(state))


def inspect(ids: list[str], state: dict[str, Any]) -> None:
    found = []
    for container in state["containers"]:
        if container["Id"] in ids:
            fake = container["fake"]
            if container["State"]["Status"] == "running":
                if fake["starting"] > 0:
                    fake["starting"] -= 1
                else:
                    container["State"]["Health"]["Status"] = fake["health"]
            found.append({k: v for k, v in container.items() if k != "fake"})
    if len(found) != len(ids):
        fail("Error: No such object")
    print(json.dumps(found))


def main() -> None:
    argv = sys.argv[1:]
    state = load()
    record(argv, state)
    if os.environ.get("FAKE_DOCKER_FAIL") and os.environ["FAKE_DOCKER_FAIL"] in " ".join(argv):
        fail(os.environ.get("FAKE_DOCKER_MESSAGE", "failed"))
    command, args = argv[0], argv[1:]
    if command == "info":
        if os.environ.get("FAKE_DOCKER_NO_ENGINE"):
            fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
        print("28.2.2")
    elif command == "compose":
        compose(args, state)
    elif command == "inspect":
        inspect(args, state)
    elif command == "stop":
        for c in state["containers"]:
            if c["Id"] == args[0]:
                c["State"] = {"Status": "exited", "Health": {"Status": "unhealthy"}}
    elif command == "rm":
        state["containers"] = [c for c in state["containers"] if c["Id"] != args[0]]
    elif command == "stats":
        ids = [a for a in args if not a.startswith("-") and not a.startswith("{")]
        for i, container_id in enumerate(ids):
            row = {"ID": container_id[:12], "CPUPerc": f"{50 + i}.00%", "MemUsage": "120MiB / 1GiB"}
            print(json.dumps(row))
    elif command == "logs":
        print("model verified\nlistening on 0.0.0.0:8001")
    else:
        fail(f"fake docker: {command} is not expected")
    save(state)


if __name__ == "__main__":
    main()
