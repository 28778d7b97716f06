"""The native runtime behind the lab's contract: NativeStack (stack.py) driven as the
command line and the experiments expect."""

from __future__ import annotations

import os
import signal

from rich.console import Console

from lab.core import LOCUST, LOCUST_CONF, REPO, Deployment
from lab.errors import LabError
from lab.runtimes.contract import (
    Endpoints,
    GeneratorPlacement,
    LoadOptions,
    Runtime,
)
from lab.runtimes.native import cgroups
from lab.runtimes.native.demo import demo
from lab.runtimes.native.processes import run_attached
from lab.runtimes.native.settings import NativeSettings
from lab.runtimes.native.stack import NativeStack, describe
from lab.runtimes.native.state import State, StateError
from lab.runtimes.native.status import render

NOT_RUNNING = "the native stack is not running; start it with `make up`"
LOCUST_WEB_PORT = 8089
# What a shell reports for a program that Ctrl-C stopped.
INTERRUPTED = 130


class NativeRuntime(Runtime):
    name = "native"
    title = "native stack"

    def __init__(
        self,
        settings: NativeSettings | None = None,
        quiet: bool = False,
        console: Console | None = None,
    ) -> None:
        # One settings object: the stack, its run files and this runtime all read it.
        self.settings = settings or NativeSettings()
        self.stack = NativeStack(self.settings, Console(stderr=True, quiet=quiet))
        self.console = console or Console(width=None if Console().is_terminal else 160)

    # ------------------------------------------------------------ lifecycle
    def ensure_available(self) -> None:
        """Nothing to check up front: `up` looks for Traefik, Prometheus and the
        Pushgateway itself and names the missing one; the other verbs need none of them."""

    def configured(self) -> Deployment:
        return self.settings.deployment()

    def up(self, deployment: Deployment) -> None:
        self.stack.up(deployment)

    def scale(self, deployment: Deployment, replace: bool = False) -> None:
        self.stack.scale(deployment, replace=replace)

    def down(self) -> str:
        stopped = self.stack.down()
        return f"stopped {', '.join(stopped)}" if stopped else "nothing was running"

    # ---------------------------------------------------------- observation
    def running_state(self) -> State:
        """The running stack's state, or one message saying what is wrong and what to do."""
        try:
            state = self.stack.state()
        except StateError as exc:
            running = self.stack.still_running()
            alive = f" Still running from this run folder: {describe(running)}." if running else ""
            raise LabError(f"{exc}.{alive}") from None
        if state is None:
            running = self.stack.still_running()
            if running:
                raise LabError(
                    f"there is no state.json, yet processes this run folder started are "
                    f"running ({describe(running)}); `make down` stops them, then `make up`"
                )
            raise LabError(NOT_RUNNING)
        return state

    def current(self) -> Deployment | None:
        state = self.stack.state()
        if state is None or not any(proc.alive() for _, proc in state.all_procs()):
            return None
        return Deployment(state.replicas_wanted, state.cpus, state.memory)

    def require_running(self) -> Deployment:
        state = self.running_state()
        if not any(proc.alive() for _, proc in state.all_procs()):
            raise LabError(f"{NOT_RUNNING} (state.json remains of a run that died)")
        return Deployment(state.replicas_wanted, state.cpus, state.memory)

    def label(self) -> str:
        state = self.stack.state()
        return state.label if state else "unknown"

    def endpoints(self) -> Endpoints:
        """The running stack's addresses (as recorded when it started), else the settings'."""
        s = self.settings
        state = self.stack.state()
        ports = state.ports if state else {}
        return Endpoints(
            api=s.url(ports.get("web", s.web_port)),
            prometheus=s.url(ports.get("prometheus", s.prometheus_port)),
            pushgateway=s.url(ports.get("pushgateway", s.pushgateway_port)),
            scrape_interval_seconds=(
                state.scrape_interval_seconds if state else s.scrape_interval_seconds
            ),
        )

    def replica_urls(self) -> list[str]:
        state = self.stack.state()
        return [self.settings.url(r.port) for r in state.serving()] if state else []

    def status(self) -> None:
        self.running_state()
        # A dead supervisor is reported and started again by every command that finds it.
        revived = self.stack.ensure_supervisor()
        if revived:
            self.console.print(f"[yellow]{revived}[/yellow]", highlight=False)
        render(self.stack, self.running_state(), self.console)

    def logs(self) -> int:
        logs = sorted(self.stack.files.logs.glob("*.log"))
        if not logs:
            raise LabError(f"no logs in {self.stack.files.logs}/; start the stack with `make up`")
        return run_attached(["tail", "-n", "20", "-F", *map(str, logs)])

    def limits_description(self) -> str:
        state = self.stack.state()
        if state is None:
            return "cgroups if writable (decided at start)"
        if state.cgroup_mode == "off":
            return f"none ({state.cgroup_note})"
        return f"{state.cgroup_mode} cgroups"

    # ---------------------------------------------------------------- usage
    def demo(self) -> None:
        demo(self.stack)

    def load(self, options: LoadOptions) -> int:
        """Locust on this machine against Traefik, pushing to the stack's Pushgateway."""
        if options.workers < 1:
            raise LabError(f"WORKERS={options.workers} must be 1 or more")
        self.require_running()
        endpoints = self.endpoints()
        command = [LOCUST, "--config", str(LOCUST_CONF), "--host", endpoints.api]
        if options.workers != 1:
            command += ["--processes", str(options.workers)]
        command += ["--users", str(options.users), "--spawn-rate", f"{options.spawn_rate:g}"]
        if options.headless:
            command += ["--headless", "--run-time", options.run_time]
        else:
            command += ["--web-host", self.settings.host, "--web-port", str(LOCUST_WEB_PORT)]
            self.console.print(
                f"Locust UI on {self.settings.url(LOCUST_WEB_PORT)} against {self.label()}; "
                "Ctrl-C stops the load",
                highlight=False,
            )
        env = {
            "LOCUST_SHAPE": options.shape,
            "LOCUST_ARRIVAL_RATE": f"{options.arrival_rate:g}",
            "LOCUST_CONFIG_LABEL": self.label(),
            "LOCUST_PUSHGATEWAY": endpoints.pushgateway,
            "LOCUST_SCRAPE_INTERVAL": f"{endpoints.scrape_interval_seconds:g}",
            # Sampled client spans, beside the replicas' (lab/traces.py).
            "LAB_TRACES_DIR": str(self.settings.run_dir / "traces"),
            # With WORKERS the master listens for workers where the stack listens (LAB_HOST),
            # not on every interface, unless LOCUST_MASTER_BIND_HOST says otherwise.
            "LOCUST_MASTER_BIND_HOST": os.environ.get(
                "LOCUST_MASTER_BIND_HOST", self.settings.host
            ),
        }
        code = run_attached(command, env=env, cwd=REPO)
        # Ctrl-C is how a web UI session ends, not a failure.
        if not options.headless and code in (INTERRUPTED, -signal.SIGINT):
            return 0
        return code

    def place_load_generator(self, cpus: float) -> GeneratorPlacement:
        """A cgroup beside the replicas' with a CPU quota, for the load generator."""
        state = self.stack.state()
        if state is None or state.cgroup_mode == "off":
            note = state.cgroup_note if state else "the stack is not running"
            raise LabError(f"load_generator.cpus needs cgroups, which are off here ({note})")
        plan = cgroups.CgroupPlan(state.cgroup_mode, state.cgroup_note, state.cgroup_roots)
        cgroup = cgroups.create(plan, "load-generator", cpus, None)
        return GeneratorPlacement(
            command_prefix=tuple(cgroups.wrap([], cgroup)),
            env={"LAB_CGROUP_PROCS": cgroup["procs"]},
            record=cgroup,
        )

    def release_load_generator(self, placement: GeneratorPlacement) -> None:
        cgroups.remove(dict(placement.record))

    # ---------------------------------------------------------------- faults
    def kill_replica(self) -> tuple[str, int]:
        """SIGKILL the newest serving replica (a crash); the supervisor restarts it."""
        state = self.stack.state()
        if state is None or not state.serving():
            raise LabError("no replica to kill: the native stack is not running")
        victim = state.serving()[-1]
        handle = victim.proc.handle()
        if handle is None:
            raise LabError(f"{victim.name} is not running")
        handle.kill()
        return victim.name, victim.restarts

    def recovered(self, name: str, restarts_before: int) -> bool:
        state = self.stack.state()
        if state is None:
            return False
        replica = next((r for r in state.replicas if r.name == name), None)
        return bool(
            replica
            and replica.restarts > restarts_before
            and replica.status == "running"
            and replica.proc.alive()
        )
