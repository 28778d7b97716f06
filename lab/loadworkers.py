"""`python -m lab.loadworkers`: Locust workers on this host for a master on another one.

When one host cannot generate the load (one Locust process saturates about one core;
deploy/k8s/README.md quotes the measured rate per worker), more hosts join the run:
`make load WORKERS=n` on the stack's host starts the master (web UI) and n local
workers; the master listens for more where the stack listens (LAB_HOST, which must then
be an address the other hosts reach); on every other host with the lab installed

    LOCUST_MASTER_HOST=10.0.0.5 WORKERS=4 .venv/bin/python -m lab.loadworkers

starts 4 more worker processes that join that master on its port 5557. The master hands
them the target URL and its users, and owns the run's id and its Pushgateway group;
workers push only their own CPU there (the generator's saturation check), to the
Pushgateway on the master's host unless LOCUST_PUSHGATEWAY says otherwise. Needs no
stack on this host.
"""

from __future__ import annotations

import os
import sys

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab.attached import run_attached
from lab.core import LOCUST, LOCUST_CONF, REPO
from lab.errors import LabError, reports_errors

PROGRAM = "python -m lab.loadworkers"
# What Locust answers when Ctrl-C stopped it: the normal end of a worker's session.
INTERRUPTED = 130


class WorkerSettings(BaseSettings):
    """Where the master is, and how many worker processes this host adds."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # The address of the host running `make load` (its Locust master); required.
    master_host: str = Field(default="", validation_alias="LOCUST_MASTER_HOST")
    # The master's port for workers (Locust's default).
    master_port: int = Field(default=5557, ge=1, le=65535, validation_alias="LOCUST_MASTER_PORT")
    # Worker processes on this host: one per core the load may use.
    workers: int = Field(default=1, ge=1, le=256, validation_alias="WORKERS")
    # Where the workers push their CPU; empty: port 9091 of the master's host.
    pushgateway: str = Field(default="", validation_alias="LOCUST_PUSHGATEWAY")

    def pushgateway_url(self) -> str:
        return self.pushgateway or f"http://{self.master_host.strip()}:9091"


def worker_command(settings: WorkerSettings) -> list[str]:
    """The Locust command line of this host's workers."""
    host = settings.master_host.strip()
    if not host:
        raise LabError(
            "LOCUST_MASTER_HOST is not set: give the address of the host running `make load` "
            "(its Locust master listens on port 5557 of that host's LAB_HOST for workers)"
        )
    command = [LOCUST, "--config", str(LOCUST_CONF), "--worker"]
    command += ["--master-host", host, "--master-port", str(settings.master_port)]
    if settings.workers > 1:
        # One parent forks the workers; each joins the master on its own.
        command += ["--processes", str(settings.workers)]
    return command


@reports_errors(PROGRAM)
def main() -> int:
    settings = WorkerSettings()
    command = worker_command(settings)
    print(
        f"{settings.workers} Locust worker(s) joining {settings.master_host}:"
        f"{settings.master_port}; Ctrl-C stops them",
        file=sys.stderr,
    )
    # Ctrl-C reaches Locust too; it stops its workers and exits on its own.
    code = run_attached(
        command,
        f"{LOCUST} not found: run `make install` on this host first",
        env={**os.environ, "LOCUST_PUSHGATEWAY": settings.pushgateway_url()},
        cwd=REPO,
    )
    return 0 if code in (INTERRUPTED, -2) else code


if __name__ == "__main__":
    sys.exit(main())
