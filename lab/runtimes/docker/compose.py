"""`docker compose` and `docker` run as programs: command lines, errors, parsed answers.

Everything the runtime knows about containers comes from `docker inspect`, whose JSON is
stable across Docker versions, rather than from `docker compose ps`, whose format changed
(a JSON array before Compose 2.21, one object per line since).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.attached import run_attached
from lab.errors import LabError
from lab.runtimes.docker.settings import PROJECT, SERVICE, DockerSettings

PASSWORD = "GRAFANA_ADMIN_PASSWORD"
# Compose interpolates the whole file for every command, and the file refuses to be read
# without Grafana's password. Commands that create nothing (ps, logs, down) get this
# stand-in when no password is set, so `make down` works even without a .env.
PASSWORD_STAND_IN = "unused-by-this-command"
CREATING_VERBS = frozenset({"up", "run", "create", "start", "restart"})
# The group of the Docker socket, which the socket proxy joins (docker-compose.yaml).
DOCKER_GID = "DOCKER_GID"
NOT_RUNNING = "the Docker stack is not running; start it with `make up RUNTIME=docker`"


@dataclass(frozen=True)
class Container:
    """One container as `docker inspect` describes it."""

    id: str
    name: str
    service: str
    state: str
    # healthy, unhealthy, starting; empty when the container has no health check.
    health: str
    config: str
    nano_cpus: int
    memory: int
    created: str

    @property
    def replica(self) -> str:
        """The replica's name: the short id, also its host name and Prometheus label."""
        return self.id[:12]

    @property
    def cpus(self) -> float | None:
        return self.nano_cpus / 1e9 if self.nano_cpus else None

    @property
    def memory_limit(self) -> int | None:
        return self.memory or None

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> Container:
        state = data.get("State") or {}
        labels = (data.get("Config") or {}).get("Labels") or {}
        host = data.get("HostConfig") or {}
        return cls(
            id=data["Id"],
            name=str(data.get("Name", "")).lstrip("/"),
            service=labels.get("com.docker.compose.service", ""),
            state=state.get("Status", ""),
            health=(state.get("Health") or {}).get("Status", ""),
            config=labels.get("lab.config", ""),
            nano_cpus=int(host.get("NanoCpus") or 0),
            memory=int(host.get("Memory") or 0),
            created=str(data.get("Created", "")),
        )


def dotenv_value(path: Path, key: str) -> str:
    """The value of `key` in a .env file ("" when absent); enough for KEY=VALUE lines."""
    if not path.is_file():
        return ""
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == key:
            return value.strip().strip("'\"")
    return ""


def _current_context(environ: Mapping[str, str]) -> str:
    """The Docker CLI's context: DOCKER_CONTEXT, else config.json's, else "default"."""
    if environ.get("DOCKER_CONTEXT"):
        return environ["DOCKER_CONTEXT"]
    folder = environ.get("DOCKER_CONFIG") or str(Path(environ.get("HOME", "/")) / ".docker")
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return "default"
    context = config.get("currentContext") if isinstance(config, dict) else None
    return context if isinstance(context, str) and context else "default"


def docker_socket_group(
    socket: Path, environ: Mapping[str, str] = os.environ, platform: str = sys.platform
) -> str | None:
    """The group id that may use `socket`, when containers mounting it reach the engine
    the CLI talks to; None when that is not known.

    It is not known on macOS and Windows (the engine and its socket live in a VM), when
    DOCKER_HOST or a context other than `default` points elsewhere (Docker Desktop on
    Linux, rootless Docker, a remote engine), or when only root may use the socket.
    """
    if not platform.startswith("linux"):
        return None
    host = environ.get("DOCKER_HOST", "")
    if host and host != f"unix://{socket}":
        return None
    if _current_context(environ) != "default":
        return None
    try:
        status = socket.stat()
    except OSError:
        return None
    group_may_use = status.st_mode & 0o060 == 0o060
    if not stat.S_ISSOCK(status.st_mode) or not group_may_use or status.st_gid == 0:
        return None
    return str(status.st_gid)


def json_objects(text: str) -> list[dict[str, Any]]:
    """`--format json` output: a JSON array (older Compose) or one object per line."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _reason(result: subprocess.CompletedProcess[str]) -> str:
    """The line that says what went wrong: the last one, less usage hints."""
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Run '", "Usage:"))]
    return lines[-1] if lines else f"exit code {result.returncode}"


class Compose:
    """The lab's compose project and the docker program, with errors for people."""

    def __init__(self, settings: DockerSettings) -> None:
        self.settings = settings

    @property
    def env_file(self) -> Path:
        return self.settings.compose_file.parent / ".env"

    def password_set(self) -> bool:
        return bool(os.environ.get(PASSWORD) or dotenv_value(self.env_file, PASSWORD))

    def compose_argv(self, args: Sequence[str], profiles: Sequence[str] = ()) -> list[str]:
        argv = [self.settings.docker_bin, "compose", "--project-name", PROJECT]
        argv += ["--file", str(self.settings.compose_file)]
        for profile in profiles:
            argv += ["--profile", profile]
        return [*argv, *args]

    def environment(self, args: Sequence[str], extra: Mapping[str, str]) -> dict[str, str]:
        env = {**os.environ, **extra}
        if args and args[0] not in CREATING_VERBS and not self.password_set():
            env[PASSWORD] = PASSWORD_STAND_IN
        # A DOCKER_GID chosen in the environment or in .env wins; compose reads .env itself.
        if not env.get(DOCKER_GID) and not dotenv_value(self.env_file, DOCKER_GID):
            group = docker_socket_group(self.settings.docker_socket, env)
            if group is not None:
                env[DOCKER_GID] = group
        return env

    def _missing(self) -> str:
        return (
            f"{self.settings.docker_bin!r} not found: install Docker Engine with the compose "
            "plugin, or use RUNTIME=native"
        )

    def _run(self, argv: list[str], what: str, env: Mapping[str, str] | None = None) -> str:
        try:
            result = subprocess.run(
                argv, env=dict(env) if env is not None else None, capture_output=True, text=True
            )
        except FileNotFoundError:
            raise LabError(self._missing()) from None
        if result.returncode != 0:
            raise LabError(f"`docker {what}` failed: {_reason(result)}")
        return result.stdout

    def compose(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        profiles: Sequence[str] = (),
    ) -> str:
        """Run `docker compose <args>` and return its output; LabError when it fails."""
        argv = self.compose_argv(args, profiles)
        return self._run(argv, f"compose {args[0]}", self.environment(args, env or {}))

    def stream(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        profiles: Sequence[str] = (),
    ) -> int:
        """Run `docker compose <args>` attached to the terminal; its exit code.

        Ctrl-C reaches compose too, which then stops what it attached to: wait for it
        instead of killing it half-way.
        """
        argv = self.compose_argv(args, profiles)
        return run_attached(argv, self._missing(), env=self.environment(args, env or {}))

    def docker(self, *args: str) -> str:
        """Run `docker <args>` (no compose) and return its output."""
        return self._run([self.settings.docker_bin, *args], args[0])

    def require_engine(self) -> None:
        try:
            self.docker("compose", "version")
        except LabError as exc:
            raise LabError(
                f"`docker compose` is not available ({exc}); install the Docker Compose "
                "plugin (v2.24 or newer), or use RUNTIME=native"
            ) from None
        try:
            self.docker("info", "--format", "{{.ServerVersion}}")
        except LabError as exc:
            raise LabError(
                f"the Docker engine does not answer ({exc}); start it, or use RUNTIME=native"
            ) from None

    def container_ids(self, service: str = SERVICE) -> list[str]:
        """Every container of `service`, running or not: compose counts them all."""
        return self.compose(["ps", "--all", "--quiet", service]).split()

    def inspect(self, ids: Sequence[str]) -> list[Container]:
        if not ids:
            return []
        return [Container.from_inspect(item) for item in json.loads(self.docker("inspect", *ids))]

    def replicas(self) -> list[Container]:
        """The api containers, oldest first."""
        return sorted(self.inspect(self.container_ids()), key=lambda c: (c.created, c.id))

    def services(self) -> list[dict[str, Any]]:
        """`docker compose ps` of every service, one dict each."""
        return json_objects(self.compose(["ps", "--all", "--format", "json"]))

    def stats(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`docker stats` of the containers, by short id."""
        if not ids:
            return {}
        out = self.docker("stats", "--no-stream", "--format", "{{json .}}", *ids)
        return {str(row.get("ID", ""))[:12]: row for row in json_objects(out)}

    def log_tail(self, container_id: str, lines: int = 10) -> str:
        try:
            result = subprocess.run(
                [self.settings.docker_bin, "logs", "--tail", str(lines), container_id],
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            return ""
        return (result.stdout + result.stderr).strip()
