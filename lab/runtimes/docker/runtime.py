"""Start and change the Docker stack so that every replica always carries the right labels.

A container's labels and environment are fixed when it is created, and its `config`
label (`r2-c1.0-m1g`) names the replica count as well as the limits: after almost any
change of the deployment the running replicas describe the old one. Compose would
recreate them all at once; instead they are replaced one at a time: a new replica is
added with `up --no-recreate --scale` (which creates it from the current settings) and
waited on until healthy, then an old one is stopped (it drains on SIGTERM: /ready turns
503, Traefik takes it out, requests in flight finish) and removed. Compose never scales
down by itself here, because which container it would pick is not ours to choose.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from lab.core import Deployment, format_cpus, format_memory
from lab.errors import LabError
from lab.runtimes.contract import (
    Endpoints,
    GeneratorPlacement,
    LoadOptions,
    Runtime,
    UnsupportedError,
)
from lab.runtimes.docker.compose import NOT_RUNNING, Compose, Container
from lab.runtimes.docker.demo import demo as run_demo
from lab.runtimes.docker.load import INTERRUPTED, run_load
from lab.runtimes.docker.settings import (
    PROMETHEUS_PORT,
    PUSHGATEWAY_PORT,
    SCRAPE_INTERVAL_SECONDS,
    SERVICE,
    WEB_PORT,
    DockerSettings,
)
from lab.runtimes.docker.status import render
from lab.runtimes.scrape import Targets, wait_scraped


def deployment_env(deployment: Deployment) -> dict[str, str]:
    """The variables docker-compose.yaml reads; 0 means unlimited to Docker."""
    return {
        "REPLICAS": str(deployment.replicas),
        "CPUS": "0" if deployment.cpus is None else format_cpus(deployment.cpus),
        "MEMORY": "0" if deployment.memory is None else format_memory(deployment.memory),
        "CONFIG": deployment.label,
        # Names Traefik's prediction router, which cannot hold a dot: the same name as the
        # native runtime's (lab/runtimes/native/configs.py, predict_router).
        "CONFIG_ROUTER": deployment.label.replace(".", "_"),
    }


def _nano_cpus(cpus: float | None) -> int:
    return 0 if cpus is None else round(cpus * 1e9)


def serves(container: Container, deployment: Deployment) -> bool:
    """Whether the container runs with the deployment's label and limits."""
    return (
        container.state == "running"
        and container.config == deployment.label
        and container.nano_cpus == _nano_cpus(deployment.cpus)
        and container.memory == (deployment.memory or 0)
    )


class DockerRuntime(Runtime):
    name = "docker"
    title = "Docker stack"

    def __init__(
        self,
        settings: DockerSettings | None = None,
        prometheus: Targets | None = None,
        say: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or DockerSettings()
        self.compose = Compose(self.settings)
        self._prometheus = prometheus
        self.say = say or (lambda message: print(message, file=sys.stderr, flush=True))
        self.sleep = sleep
        self.clock = clock

    @property
    def prometheus(self) -> Targets:
        if self._prometheus is None:
            from monitoring.prom import Prometheus

            self._prometheus = Prometheus(self.settings.url(PROMETHEUS_PORT))
        return self._prometheus

    # ------------------------------------------------------------------ Runtime
    def ensure_available(self) -> None:
        self.compose.require_engine()

    def configured(self) -> Deployment:
        return self.settings.deployment()

    def endpoints(self) -> Endpoints:
        s = self.settings
        return Endpoints(
            api=s.url(WEB_PORT),
            prometheus=s.url(PROMETHEUS_PORT),
            pushgateway=s.url(PUSHGATEWAY_PORT),
            scrape_interval_seconds=SCRAPE_INTERVAL_SECONDS,
        )

    def current(self) -> Deployment | None:
        running = [c for c in self.compose.replicas() if c.state == "running"]
        if not running:
            return None
        return Deployment(len(running), running[0].cpus, running[0].memory_limit)

    def require_running(self) -> Deployment:
        running = self.current()
        if running is None:
            raise LabError(NOT_RUNNING)
        return running

    def label(self) -> str:
        """The running deployment's `config` label, or `unknown`."""
        labels = [c.config for c in self.compose.replicas() if c.state == "running"]
        return max(set(labels), key=labels.count) if labels else "unknown"

    def up(self, deployment: Deployment) -> None:
        self.compose.require_engine()
        if not self.compose.password_set():
            raise LabError(
                "GRAFANA_ADMIN_PASSWORD is not set: `cp .env.example .env` and choose one there"
            )
        existing = self.compose.replicas()
        env = deployment_env(deployment)
        if existing:
            # Already up: start whatever else is missing without touching the replicas
            # (their count pinned by --scale), then change them one at a time.
            self.say(f"the Docker stack is up; bringing it to {deployment.label}")
            scale = f"{SERVICE}={len(existing)}"
            self.compose.compose(["up", "--detach", "--no-recreate", "--scale", scale], env)
            self.scale(deployment)
            return
        self.say(f"building and starting the Docker stack ({deployment.label})")
        # Attached to the terminal: the first build takes minutes and shows its progress.
        code = self.compose.stream(["up", "--detach", "--build"], env)
        if code != 0:
            raise LabError(
                f"`docker compose up` failed with exit code {code} (its output is above)"
            )
        self.wait_ready(deployment)

    def scale(self, deployment: Deployment, replace: bool = False) -> None:
        """Bring the replicas to `deployment`; `replace` also renews the ones that already
        match it (so they start with new API_* settings from the environment)."""
        replicas = self.compose.replicas()
        if not replicas:
            raise LabError(NOT_RUNNING)
        env = deployment_env(deployment)
        wanted = deployment.replicas
        # Containers that do not run serve nothing, and compose would start them again
        # when it next scales: they go first.
        for broken in [c for c in replicas if c.state != "running"]:
            self._retire(broken)
        replicas = [c for c in replicas if c.state == "running"]
        fresh = [c for c in replicas if serves(c, deployment) and not replace]
        stale = [c for c in replicas if c not in fresh]
        if len(replicas) < wanted:
            fresh += self._add(env, wanted)
        for position, old in enumerate(stale):
            if len(fresh) < wanted:
                present = len(fresh) + len(stale) - position
                fresh += self._add(env, present + 1)
            self._retire(old)
        while len(fresh) > wanted:
            self._retire(fresh.pop())
        self.wait_ready(deployment)

    # ------------------------------------------------------------------ steps
    def _add(self, env: dict[str, str], count: int) -> list[Container]:
        """Scale the api service up to `count` containers; the new ones once healthy."""
        before = set(self.compose.container_ids())
        self.say(f"adding {count - len(before)} replica(s) for {env['CONFIG']}")
        scale = f"{SERVICE}={count}"
        self.compose.compose(
            ["up", "--detach", "--no-deps", "--no-recreate", "--scale", scale, SERVICE], env
        )
        new = [c for c in self.compose.replicas() if c.id not in before]
        self._wait_healthy([c.id for c in new])
        return self.compose.inspect([c.id for c in new])

    def _retire(self, container: Container) -> None:
        """Stop one replica (it drains on SIGTERM within stop_grace_period) and remove it."""
        self.say(f"retiring replica {container.replica} ({container.config or 'no label'})")
        self.compose.docker("stop", container.id)
        self.compose.docker("rm", container.id)

    def _wait_healthy(self, ids: Sequence[str]) -> None:
        deadline = self.clock() + self.settings.ready_timeout_seconds
        while True:
            containers = self.compose.inspect(ids)
            for c in containers:
                # A replica that exits (a model that fails verification) restarts in a loop.
                if c.state in {"exited", "dead", "restarting"}:
                    raise LabError(self._failure(c, f"is {c.state}"))
                if c.health == "unhealthy":
                    raise LabError(self._failure(c, "is unhealthy"))
            if all(c.health == "healthy" for c in containers):
                return
            if self.clock() >= deadline:
                late = next(c for c in containers if c.health != "healthy")
                raise LabError(
                    self._failure(
                        late, f"not healthy after {self.settings.ready_timeout_seconds:.0f} s"
                    )
                )
            self.sleep(self.settings.poll_interval_seconds)

    def _failure(self, container: Container, what: str) -> str:
        tail = self.compose.log_tail(container.id).splitlines()[-3:]
        detail = f"; its last log lines: {' | '.join(tail)}" if tail else ""
        return f"replica {container.replica} ({container.name}) {what}{detail}"

    def wait_ready(self, deployment: Deployment) -> None:
        """Every replica healthy with the deployment's label, and scraped by Prometheus."""
        # Health first: a replica that fails is reported with its own log lines.
        self._wait_healthy(self.compose.container_ids())
        replicas = self.compose.replicas()
        wrong = [c for c in replicas if not serves(c, deployment)]
        if len(replicas) != deployment.replicas or wrong:
            raise LabError(
                f"expected {deployment.replicas} replica(s) of {deployment.label}, found "
                + ", ".join(f"{c.replica} ({c.config}, {c.state})" for c in replicas)
            )
        wait_scraped(
            self.prometheus,
            SERVICE,
            {c.replica for c in replicas},
            deployment.label,
            timeout_seconds=self.settings.ready_timeout_seconds,
            poll_seconds=self.settings.poll_interval_seconds,
            sleep=self.sleep,
            clock=self.clock,
        )
        self.say(f"{deployment.label}: {deployment.replicas} replica(s) healthy and scraped")

    def down(self) -> str:
        # The load profile's containers too; volumes (Prometheus, Grafana, Tempo) stay.
        self.compose.compose(["down", "--remove-orphans"], profiles=["load"])
        return "Docker stack stopped; its volumes (Prometheus, Grafana, Tempo data) are kept"

    def replica_urls(self) -> list[str]:
        """Empty: replicas publish no port of their own (only Traefik reaches them), so
        nothing on this machine can call one replica directly."""
        return []

    def status(self) -> None:
        """Services, then each replica's limits, health, CPU and memory (docker stats)."""
        render(self.compose)

    def logs(self) -> int:
        code = self.compose.stream(["logs", "--follow", "--tail", "20"], profiles=["load"])
        return 0 if code == INTERRUPTED else code

    def limits_description(self) -> str:
        return "cgroups"

    def demo(self) -> None:
        run_demo(self, self.settings)

    def load(self, options: LoadOptions) -> int:
        """Locust's master and workers as containers of the `load` profile."""
        return run_load(self.compose, self.settings, self.label(), options)

    def place_load_generator(self, cpus: float) -> GeneratorPlacement:
        raise UnsupportedError(
            "load_generator.cpus needs the native runtime with cgroups: with Docker, the "
            "experiments' Locust runs on this machine without a CPU budget; remove it from "
            "the plan or use RUNTIME=native"
        )

    def release_load_generator(self, placement: GeneratorPlacement) -> None:
        """Nothing to release: `place_load_generator` never creates anything here."""

    def kill_replica(self) -> tuple[str, int]:
        raise UnsupportedError(
            "the docker runtime cannot kill a replica as a crash would (failover is "
            "measured with RUNTIME=native)"
        )

    def recovered(self, name: str, restarts_before: int) -> bool:
        raise UnsupportedError(
            "the docker runtime does not kill replicas, so none recovers (failover is "
            "measured with RUNTIME=native)"
        )
